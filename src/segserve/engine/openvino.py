"""The vision encoder (ViT + FPN neck) run by OpenVINO on the CPU: exact, and faster than eager torch.

Measured on the full-size model, 2-core AVX2 CPU, fp32 (bench/README.md): one vision pass 31-33 s
with OpenVINO vs 37 s with torch (sdpa), outputs within 2.3e-5 of torch. OpenVINO fuses the
layer norms, GELU, RoPE and residual adds around the matmuls, which torch runs as separate passes
over memory. `INFERENCE_PRECISION_HINT=f32` keeps it exact: on CPUs with AMX or AVX-512 BF16,
OpenVINO would otherwise pick bf16.

Converting the 450M-parameter ViT (tracing it through torch) takes minutes, so the converted model
is saved once to a disk cache, keyed by what determines it (model id, weights fingerprint, input
size, library versions); later starts read it in seconds.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

Levels = tuple[torch.Tensor, ...]

# Vision encoders smaller than this stay on torch: conversion costs more than it can save (tests'
# tiny model), and OpenVINO's gain is in the big matmul-bound layers.
MIN_PARAMETERS = 50_000_000


def available() -> bool:
    _block_telemetry()  # before the first `import openvino`, which imports the telemetry package
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _block_telemetry() -> None:
    """OpenVINO's model converter reports usage to Google Analytics unless a consent file in the
    home directory says no, and a self-hosted service must not phone home. With its optional
    `openvino_telemetry` import blocked, the converter falls back to its own no-op stub."""
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes `import` raise ImportError


class _Outputs(torch.nn.Module):
    """The vision encoder with a flat tuple of tensors as output, which tracing needs."""

    def __init__(self, vision_encoder: torch.nn.Module):
        super().__init__()
        self.vision_encoder = vision_encoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.vision_encoder(pixel_values)
        return (out.last_hidden_state, *out.fpn_hidden_states, *out.fpn_position_encoding)


class OpenVINOVisionEncoder:
    """Callable like `Sam3Model.get_vision_features`: pixel_values (1, 3, S, S) -> the three output groups."""

    def __init__(self, vision_encoder: torch.nn.Module, image_size: int, cache_dir: Path, model_id: str):
        _block_telemetry()
        import openvino as ov

        self.levels = len(vision_encoder.config.scale_factors)
        key = _cache_key(vision_encoder, image_size, model_id)
        path = Path(cache_dir).expanduser() / key / "vision_encoder.xml"
        core = ov.Core()
        self.compiled = None
        if path.is_file():
            try:
                self.compiled = _load_verified(core, path)
                log.info("OpenVINO vision encoder read from %s", path)
            except Exception as exc:  # a truncated, edited or half-written cache: never a stuck server
                log.warning("the OpenVINO cache %s is unusable (%s); converting the vision encoder again", path, exc)
        if self.compiled is None:
            # A warning, so a CLI user sees why this first start takes minutes (and ~15 GB of memory).
            log.warning("converting the vision encoder to OpenVINO: once per model, minutes for SAM 3")
            example = torch.zeros(1, 3, image_size, image_size)
            with torch.no_grad():
                model = ov.convert_model(_Outputs(vision_encoder).eval(), example_input=example)
            _save(ov, model, path)
            self.compiled = _compile(core, model)
        self.request = self.compiled.create_infer_request()

    def __call__(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, Levels, Levels]:
        """-> (ViT output, FPN levels, their position encodings), like `get_vision_features`."""
        result = self.request.infer({0: pixel_values.float().numpy()}, share_outputs=False)
        tensors = [torch.from_numpy(result[out]) for out in self.compiled.outputs]
        backbone, rest = tensors[0], tensors[1:]
        return backbone, tuple(rest[: self.levels]), tuple(rest[self.levels :])


def _compile(core: Any, model: Any) -> Any:
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})


def _save(ov: Any, model: Any, path: Path) -> None:
    """Write the .xml/.bin pair and the digest that vouches for them; each file lands whole (temp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.xml")
    ov.save_model(model, tmp, compress_to_fp16=False)  # fp16 weights would not be exact
    digest = _digest(tmp, tmp.with_suffix(".bin"))
    tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
    tmp.replace(path)
    sidecar = path.with_suffix(".sha256")
    sidecar.with_suffix(".tmp").write_text(digest)
    sidecar.with_suffix(".tmp").replace(sidecar)


def _load_verified(core: Any, path: Path) -> Any:
    """The cached model, compiled, if its files are exactly the ones `_save` wrote; raises otherwise.

    A cache from before the digest existed is trusted once it reads and compiles, then gets one.
    """
    sidecar = path.with_suffix(".sha256")
    files = (path, path.with_suffix(".bin"))
    if sidecar.is_file() and sidecar.read_text().strip() != _digest(*files):
        raise ValueError("its files do not match the digest written with them")
    compiled = _compile(core, core.read_model(path))
    if not sidecar.is_file():
        sidecar.write_text(_digest(*files))
    return compiled


def _digest(*files: Path) -> str:
    """SHA-256 over the files' bytes (a few seconds for SAM 3's 1.8 GB, against minutes to reconvert)."""
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def should_use(backend: str, vision_encoder: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    """Resolve `vision_backend`: "auto" picks OpenVINO for a full-size fp32 model on the CPU when installed."""
    if backend == "torch":
        return False
    usable = device.type == "cpu" and dtype == torch.float32
    if backend == "openvino":
        if not usable:
            raise ValueError("vision_backend='openvino' runs on the CPU in float32 only; use 'torch' or 'auto'")
        if not available():
            raise ValueError("vision_backend='openvino' needs the openvino package: pip install 'segserve[cpu]'")
        return True
    if backend != "auto":
        raise ValueError(f"vision_backend must be 'auto', 'torch' or 'openvino', got {backend!r}")
    big = sum(p.numel() for p in vision_encoder.parameters()) >= MIN_PARAMETERS
    return usable and big and available()


def _cache_key(vision_encoder: torch.nn.Module, image_size: int, model_id: str) -> str:
    """What the converted model depends on. The weights are fingerprinted by a strided sample of
    every tensor (hashing all 1.8 GB would cost seconds at each start)."""
    import openvino
    import transformers

    h = hashlib.sha256()
    for part in (model_id, str(image_size), openvino.__version__, transformers.__version__, torch.__version__):
        h.update(part.encode() + b"\0")
    with torch.no_grad():
        for name, tensor in vision_encoder.state_dict().items():
            flat = tensor.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 64)].float().cpu().numpy().tobytes()
            h.update(name.encode() + str(tuple(tensor.shape)).encode() + sample)
    return h.hexdigest()[:24]
