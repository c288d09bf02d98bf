# segserve: SAM 3 segmentation API on a CUDA GPU (also runs on CPU, slowly).
#   docker build -t segserve .
#   docker run --gpus all -p 8000:8000 -e SEGSERVE_API_KEYS=change-me -e HF_TOKEN=hf_... \
#     -v segserve-cache:/cache segserve
# The base ships torch with CUDA; pick another tag with --build-arg BASE_IMAGE=...
ARG BASE_IMAGE=pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface \
    SEGSERVE_HOST=0.0.0.0 \
    SEGSERVE_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# The server extra only: torch/torchvision already come with the base image and satisfy the pins.
# DL3013 wants `pkg==version`: this installs the local source tree, whose pyproject bounds its deps.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[server]" \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin segserve \
    && mkdir -p /cache/huggingface \
    && chown -R segserve:segserve /cache

# Numeric, so Kubernetes' runAsNonRoot can verify it without the image's /etc/passwd.
USER 10001:10001
# Model weights (several GB) are downloaded once into this volume, not into the image.
VOLUME ["/cache"]
EXPOSE 8000

# Loading SAM 3 and the warm-up take a while on first start: a long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "-m", "segserve.api.healthcheck"]

# uvicorn handles SIGTERM: running requests finish (SEGSERVE_SHUTDOWN_GRACE), then exit 0.
STOPSIGNAL SIGTERM
CMD ["segserve", "serve"]
