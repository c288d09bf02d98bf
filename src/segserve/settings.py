"""One place for every knob, limit and default. Read from `SEGSERVE_*` variables or a `.env` file.

Nothing else in segserve reads `os.environ`: the server and the CLI build one `Settings()` and hand
it down; library code that is given none uses `Settings.defaults()`, which ignores the environment.
The per-request fields (threshold, ..., everything_mode) are reused as-is by `SegmentOptions`, so
their defaults, ranges and descriptions exist once, here.

>>> Settings.defaults().replace(max_queue=2).max_queue
2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The 80 COCO object categories: vocabulary-mode's default list of concepts.
COCO_CATEGORIES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


MaskFormat = Literal["rle", "polygon", "none"]
MASK_FORMATS: tuple[str, ...] = get_args(MaskFormat)
EverythingMode = Literal["grid", "vocabulary"]
EVERYTHING_MODES: tuple[str, ...] = get_args(EverythingMode)
VisionBackend = Literal["auto", "torch", "openvino"]
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
LabelLanguage = Literal["en", "zh"]
LABEL_LANGUAGES: tuple[str, ...] = get_args(LabelLanguage)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGSERVE_", env_file=".env", extra="ignore")

    # --- model -------------------------------------------------------------------------------
    model: str = "facebook/sam3"  # Hugging Face repo id or local checkpoint directory
    model_name: str = "sam3"  # the `model` value clients send; `GET /v1/models` lists it
    device: str | None = None  # "cuda", "mps", "cpu"; None picks cuda > mps > cpu
    dtype: str | None = None  # "bfloat16", "float16", "float32"; None: bf16 on CUDA, fp32 elsewhere
    # torch.compile the ViT layers (exact to ~1e-5; ~40-130 s once, at warm-up; needs a C++ compiler on
    # CPU). Off: no faster than eager on the 2-core CPU measured (bench/README.md)
    compile_vision: bool = False
    # Who runs the ViT: "auto" = OpenVINO for a full-size fp32 model on the CPU when `openvino` is
    # installed (exact to ~2e-5, ~15 % faster; converted once into openvino_cache_dir), else torch
    vision_backend: VisionBackend = "auto"
    # Who runs the per-concept detector for text concepts (engine/detector.py; exemplar boxes always
    # run on torch): "auto" = OpenVINO where vision_backend's "auto" would pick it (exact to ~1e-5,
    # ~1.2x faster than torch), else torch
    detector_backend: VisionBackend = "auto"
    openvino_cache_dir: Path = Path("~/.cache/segserve/openvino")  # converted parts (`segserve convert`), by model
    # seconds for the one request that checks the hub answers before downloading a model not in the
    # local cache; no answer fails the load at once instead of huggingface_hub's minutes of retries
    hub_probe_timeout: float = Field(5.0, gt=0)

    # --- per-request defaults: a request may override each (SegmentOptions reuses these fields) --
    threshold: float = Field(0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="minimum confidence kept")
    mask_threshold: float = Field(0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="mask probability cut-off")
    max_segments: int = Field(100, ge=1, le=10_000, description="cap on segments, applied after sorting by confidence")
    mask_format: MaskFormat = Field(
        "rle", description="`rle` (COCO RLE, base64), `polygon` (outlines) or `none` (boxes only)"
    )
    everything_mode: EverythingMode = Field(
        "grid", description="what an empty prompt runs: `grid` (SAM-style, label 'object') or `vocabulary`"
    )
    label_language: LabelLanguage = Field(
        "en", description="language of vocabulary-mode labels: `en`, or `zh` (Chinese, from segserve's lexicon)"
    )

    # --- prompts and the engine ----------------------------------------------------------------
    max_concepts: int = Field(16, ge=1, le=256)  # concepts per prompt
    max_concept_chars: int = Field(200, ge=1)  # characters per concept
    max_boxes: int = Field(16, ge=1, le=1024)  # exemplar boxes per request, over all concepts
    max_points: int = Field(32, ge=1, le=1024)  # interactive-mode points per request
    glossary: Path | None = None  # Chinese terms added to the lexicon: `term<TAB>English` per line; SIGHUP reloads
    concept_batch: int = Field(16, ge=1)  # concepts per detector pass (bounds memory)
    grid_points: int = Field(32, ge=1, le=128)  # grid mode: prompt points per side (32 -> 1024 points)
    grid_batch: int = Field(16, ge=1)  # grid mode: points decoded per tracker pass (bounds memory; 64 was no faster)
    pred_iou_thresh: float = Field(0.88, ge=0.0, le=1.0)  # grid mode: keep masks whose predicted IoU reaches this
    stability_thresh: float = Field(0.95, ge=0.0, le=1.0)  # grid mode: keep masks stable when the cut moves +-1 logit
    nms_thresh: float = Field(0.7, gt=0.0, le=1.0)  # everything mode: mask IoU at which the weaker mask is a duplicate
    min_region_area: int = Field(100, ge=0)  # grid mode: masks of fewer pixels (of the input image) are dropped
    vocabulary: str = ", ".join(COCO_CATEGORIES)  # vocabulary mode: comma-separated concepts (default COCO's 80)

    # --- caches ------------------------------------------------------------------------------
    cache: bool = True  # keep vision and text features of recent inputs (off: every request runs the ViT)
    cache_mb: float = Field(0, ge=0)  # vision-feature cache in MiB; 0 = room for ~4 images
    text_cache_size: int = Field(256, ge=0)  # concepts whose text features are kept

    # --- HTTP server -------------------------------------------------------------------------
    host: str = "127.0.0.1"  # bind address
    port: int = Field(8000, ge=0, le=65535)  # bind port
    api_keys: str = ""  # comma-separated bearer tokens accepted
    api_keys_file: Path | None = None  # file with one key per line (# comments allowed)
    api_key: str = ""  # the key `segserve segment --server` sends (SEGSERVE_API_KEY)
    no_auth: bool = False  # serve without keys (logs a warning); only for local use
    metrics_require_key: bool = False  # /metrics asks for an API key too (off: open, like /healthz, for scrapers)
    max_queue: int = Field(16, ge=0)  # requests waiting beyond the running ones (0: refuse whenever busy)
    workers: int = Field(1, ge=1)  # inference threads (1 is right for one GPU)
    request_timeout: float = Field(300.0, gt=0)  # seconds a request may wait + run -> 504
    # Slow and numerous clients: a held connection costs a socket and, mid-upload, a place in the queue.
    header_timeout: float = Field(10.0, gt=0)  # seconds for a request's headers, from its first byte -> 408
    body_timeout: float = Field(30.0, gt=0)  # seconds the body may stall between two chunks -> 408
    body_total_timeout: float = Field(600.0, gt=0)  # seconds for a whole body (20 MiB at ~35 KiB/s) -> 408
    max_connections: int = Field(256, ge=1)  # open connections; a request on one more -> 503 + Retry-After
    retry_after: int = Field(5, ge=1)  # seconds advertised in Retry-After with a 429
    warmup: bool = True  # run one inference before /readyz says ready
    log_level: LogLevel = "info"  # the server's log verbosity (segserve serve --log-level)
    exit_on_load_error: bool = True  # exit non-zero when the model fails to load (off: stay up, /readyz 503)
    # seconds in-flight requests get after SIGTERM; those still unanswered then get 503 shutting_down.
    # Keep it below the orchestrator's own (Kubernetes' terminationGracePeriodSeconds: 30 by default)
    shutdown_grace: float = Field(25.0, ge=0)

    # --- image intake ------------------------------------------------------------------------
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1)  # upload / download size limit
    max_image_pixels: int = Field(50_000_000, ge=1)  # width x height limit, checked before decoding
    max_aspect_ratio: float = Field(100.0, ge=1.0)  # long side / short side limit (bounds preprocessing memory)
    max_form_fields: int = Field(1000, ge=1)  # multipart/urlencoded fields per request
    max_field_bytes: int = Field(1024 * 1024, ge=1)  # bytes in one text field (data URIs go in JSON)
    max_json_bytes: int = Field(28 * 1024 * 1024, ge=1)  # JSON body limit (base64 of max_image_bytes)
    max_json_depth: int = Field(32, ge=2, le=500)  # nesting of arrays/objects in a JSON body
    url_timeout: float = Field(10.0, gt=0)  # seconds for a whole URL fetch, redirects included
    url_max_redirects: int = Field(5, ge=0)  # redirects followed, each re-checked
    url_allow: str = ""  # comma-separated hosts or CIDRs exempt from the private-address ban

    # --- segserve annotate ---------------------------------------------------------------------
    annotate_prefetch: int = Field(2, ge=1, le=64)  # threads reading/fetching + decoding images ahead of the model
    annotate_queue: int = Field(4, ge=1, le=256)  # decoded images held ahead of the model (bounds memory)
    annotate_concurrency: int = Field(4, ge=1, le=256)  # requests in flight with --server
    annotate_retries: int = Field(8, ge=0)  # tries per image after a 429/503 from --server before it fails
    annotate_backoff: float = Field(1.0, gt=0)  # first wait (s) after a 429/503 without Retry-After; doubles
    annotate_ray_actors: int = Field(1, ge=1)  # Ray Data actors, each holding one model (--ray)
    annotate_ray_batch_size: int = Field(4, ge=1)  # images per map_batches call on an actor (--ray)
    annotate_labelstudio_prefix: str = "/data/local-files/?d="  # Label Studio task image = this + the file's key

    @field_validator("vocabulary")
    @classmethod
    def _vocabulary_names_something(cls, value: str) -> str:
        if not value.replace(",", " ").replace(";", " ").strip():
            raise ValueError("the vocabulary needs at least one concept, e.g. 'person, car, dog'")
        return value

    @classmethod
    def defaults(cls) -> Settings:
        """The built-in defaults, whatever the environment says: what library code uses when given nothing."""
        return cls.model_construct()

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with `changes` applied; the environment is not read again."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def api_key_list(self) -> list[str]:
        """Keys from `api_keys` and `api_keys_file`, in that order, blanks and comments dropped."""
        keys = [k.strip() for k in self.api_keys.split(",") if k.strip()]
        if self.api_keys_file is not None:
            for line in Path(self.api_keys_file).read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    keys.append(line)
        return keys
