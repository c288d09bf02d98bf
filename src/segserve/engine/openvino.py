"""Parts of SAM 3 run by OpenVINO on the CPU: exact, and faster than eager torch.

Two parts convert: the vision encoder (ViT + FPN neck) and the detector (DETR encoder and decoder,
mask head, scoring) for text concepts. Measured on the full-size model, 2-core AVX2 CPU, fp32
(bench/README.md): one vision pass 31-33 s with OpenVINO vs 37 s with torch (sdpa) on a quiet
machine, outputs within 2.3e-5 of torch; the text detector (split as engine/detector.py) ~1.2x
faster than the same split on torch, within ~1e-5. OpenVINO fuses the layer norms, GELU, RoPE and
residual adds around the matmuls, which torch runs as separate passes over memory.
`INFERENCE_PRECISION_HINT=f32` keeps it exact: on CPUs with AMX or AVX-512 BF16, OpenVINO would
otherwise pick bf16.

Converting (tracing through torch) takes minutes and peaks at ~23 GB for the ViT (the process
holding the whole model), ~10 GB for the detector, so each converted part is saved once to a disk
cache, keyed by what determines it (model id, weights fingerprint, input size, library versions,
the detector graph's source); later starts read it in seconds. The
conversion runs in a child process (`python -m segserve.engine.openvino`, or ahead of time:
`segserve convert`), so its peak is returned to the system when it ends instead of staying in the
server's heap.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import torch

from segserve.engine.loading import release_mapped_pages
from segserve.engine.openvino_graphs import example_inputs, input_shapes, part_module, traceable

log = logging.getLogger(__name__)

Levels = tuple[torch.Tensor, ...]

# Models smaller than this (by their ViT) stay on torch: conversion costs more than it can save
# (tests' tiny model), and OpenVINO's gain is in the big matmul-bound layers.
MIN_PARAMETERS = 50_000_000
# The parts that convert, what each is called in messages, and its file in the cache.
PARTS = ("vision", "detector")
_NAMES = {"vision": "vision encoder", "detector": "detector"}
_FILES = {"vision": "vision_encoder.xml", "detector": "detector.xml"}
# Peak memory of a converting process per parameter of the part, measured on the full-size model
# (OpenVINO 2026.4): 22.7 GB max RSS for the ViT's 454M, the whole model loaded as the child loads
# it; 9.9 GB for the detector's 25M likewise (measured before engine/detector.py's split; its
# activations at 72x72 tokens, not its weights, dominate).
CONVERT_BYTES_PER_PARAMETER = {"vision": 50, "detector": 400}
# The child's exit status when the checkpoint on disk is not the model in memory (see `convert_in_child`).
_EXIT_OTHER_WEIGHTS = 3


def available() -> bool:
    _block_telemetry()  # before the first `import openvino`, which imports the telemetry package
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


_core: Any = None  # see `shared_core`
_core_lock = threading.Lock()


def shared_core() -> Any:
    """The process's one `openvino.Core`, kept until the process ends.

    The CPU plugin that each Core creates (OpenVINO 2026.4) points the creating thread's signal
    stack (`sigaltstack`) at memory of its own, and when the plugin dies it restores the stack it
    found there and frees its own. With two Cores destroyed in any order but the reverse of their
    creation, the thread is left with a freed signal stack, and the next signal handled on it (the
    glossary's SIGHUP, Ctrl-C, a TERM from the process manager) kills the process with SIGSEGV. One
    Core that never dies never frees its stack (tests/engine/test_openvino.py). It is also
    OpenVINO's advice: a Core is the plugins' registry, meant to be one per application. Made under
    a lock: two threads loading at once must not make a second Core and drop it.
    """
    global _core
    with _core_lock:
        if _core is None:
            _block_telemetry()
            import openvino as ov

            _core = ov.Core()
        return _core


def _block_telemetry() -> None:
    """OpenVINO's model converter reports usage to Google Analytics unless a consent file in the
    home directory says no, and a self-hosted service must not phone home. With its optional
    `openvino_telemetry` import blocked, the converter falls back to its own no-op stub."""
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes `import` raise ImportError


class NotEnoughMemoryError(RuntimeError):
    """A conversion would not fit in this machine's available memory."""


class OtherWeightsError(RuntimeError):
    """The checkpoint on disk is not the model the caller holds: other weights, or none loadable."""


# --- converted parts ---------------------------------------------------------------------------


class _Converted:
    """A part of `Sam3Model`, read from the disk cache or converted first (in a child process)."""

    part = "vision"

    def __init__(self, model: Any, image_size: int, cache_dir: Path, model_id: str, *, check_memory: bool = False):
        """With `check_memory` ("auto"), a conversion this machine has not the memory for raises
        `NotEnoughMemoryError` instead of starting."""
        module = part_module(model, self.part)
        key = _cache_key(module, image_size, _key_name(model_id, self.part))
        path = cache_path(cache_dir, key, self.part)
        core = shared_core()
        # Every input shape fixed: the engine feeds one image at the processor's size, and the
        # detector one concept per inference (`OpenVINODetector`). With static shapes the CPU plugin
        # packs the weights while compiling and keeps no transposed copy of them (the ViT: 2.6 instead
        # of 4.9 GB after its first inference), and plans one activation arena of known size.
        shapes = dict(enumerate(input_shapes(model, self.part, image_size)))
        self.compiled = _read_cache(core, path, shapes)
        if self.compiled is None and check_memory:
            enough, have, need = enough_memory_to_convert(module, self.part)
            if not enough:
                raise NotEnoughMemoryError(
                    f"converting the {_NAMES[self.part]} needs ~{need:.0f} GiB of memory and {have:.1f} GiB are "
                    "available; convert ahead of time with `segserve convert` on a machine that has it"
                )
        if self.compiled is None:
            # A warning, so a CLI user sees why this first start takes minutes.
            log.warning("converting the %s to OpenVINO in a child process (once per model; minutes)", _NAMES[self.part])
            if not convert_in_child(self.part, model_id, image_size, Path(cache_dir), key):
                # Only this process has these weights (a model built in code, or a checkpoint changed
                # since it was loaded): convert here, peak memory and all.
                log.warning("the checkpoint %s is not the model in memory; converting in this process", model_id)
                convert(self.part, model, image_size, path)
            self.compiled = _load_verified(core, path, shapes)
        self.request = self.compiled.create_infer_request()

    def _infer(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        result = self.request.infer({i: t.numpy() for i, t in enumerate(tensors)}, share_outputs=False)
        return [torch.from_numpy(result[out]) for out in self.compiled.outputs]


class OpenVINOVisionEncoder(_Converted):
    """Callable like `Sam3Model.get_vision_features`: pixel_values (1, 3, S, S) -> the three output groups."""

    part = "vision"

    def __init__(self, model: Any, image_size: int, cache_dir: Path, model_id: str, *, check_memory: bool = False):
        self.levels = len(model.config.vision_config.scale_factors)
        super().__init__(model, image_size, cache_dir, model_id, check_memory=check_memory)

    def __call__(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, Levels, Levels]:
        """-> (ViT output, FPN levels, their position encodings), like `get_vision_features`."""
        backbone, *rest = self._infer([pixel_values.float()])
        return backbone, tuple(rest[: self.levels]), tuple(rest[self.levels :])


class OpenVINODetector(_Converted):
    """The per-concept detector for text concepts, callable like `detector.TextDetector`: (the
    image's `DetectorImageState` tensors, text features (N, 32, D), attention mask (N, 32)) ->
    (pred_logits, presence_logits, query embeddings, their bias, pixel embeddings).

    Compiled for one concept: N concepts are N inferences. Per concept that is as fast as a batch
    (and ~5 % faster than a dynamic N), and its memory does not grow with N: compiled for a dynamic
    N, each concept in a pass added ~1 GB of activations that the plugin kept for later passes.
    """

    part = "detector"

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *image, text, mask = (t.contiguous() for t in tensors)
        rows = [self._infer([*image, text[i : i + 1], mask[i : i + 1]]) for i in range(len(text))]
        if len(rows) == 1:
            return tuple(rows[0])
        return tuple(torch.cat(outputs) for outputs in zip(*rows, strict=True))


def cache_path(cache_dir: Path | str, key: str, part: str = "vision") -> Path:
    return Path(cache_dir).expanduser() / key / _FILES[part]


def _key_name(model_id: str, part: str) -> str:
    # The vision key is what it was before the detector converted too, so existing caches stay valid.
    # The detector's graph is segserve's own code (engine/detector.py): its source is in the key, so
    # a changed graph is converted again instead of read stale.
    if part == "vision":
        return model_id
    from segserve.engine import detector, openvino_graphs

    source = b"".join(Path(m.__file__).read_bytes() for m in (detector, openvino_graphs))
    return f"{model_id}#{part}#{hashlib.sha256(source).hexdigest()[:12]}"


def _read_cache(core: Any, path: Path, shapes: dict[int, tuple[int, ...]] | None = None) -> Any:
    """The compiled cached model, or None when there is none or it is unusable."""
    if not path.is_file():
        return None
    try:
        compiled = _load_verified(core, path, shapes)
    except Exception as exc:  # a truncated, edited or half-written cache: never a stuck server
        log.warning("the OpenVINO cache %s is unusable (%s); converting it again", path, exc)
        return None
    log.info("OpenVINO model read from %s", path)
    return compiled


def convert(part: str, model: Any, image_size: int, path: Path) -> None:
    """Trace `model`'s `part` through OpenVINO's converter and save it at `path` (the memory-hungry step)."""
    _block_telemetry()
    import openvino as ov

    with torch.no_grad():
        converted = ov.convert_model(traceable(model, part), example_input=example_inputs(model, part, image_size))
    _save(ov, converted, path)


def convert_in_child(part: str, model_id: str, image_size: int, cache_dir: Path, key: str) -> bool:
    """Convert `model_id`'s `part` in a child process, into `cache_dir`/`key`.

    False when the child's checkpoint fingerprints differently from `key` (the model in memory is
    not the one on disk); raises RuntimeError, with the child's last lines, when it fails.
    """
    command = [sys.executable, "-m", "segserve.engine.openvino", "--model", model_id, "--part", part]
    command += ["--cache-dir", str(cache_dir), "--image-size", str(image_size), "--expect-key", key]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == _EXIT_OTHER_WEIGHTS:
        return False
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"the conversion process ended with status {done.returncode}: {tail}")
    return True


def convert_checkpoint(
    model_id: str,
    cache_dir: Path | str,
    parts: tuple[str, ...] = PARTS,
    image_size: int | None = None,
    expect_key: str | None = None,
) -> list[tuple[str, Path, bool]]:
    """Convert (where not cached yet) `parts` of the checkpoint `model_id`: what `segserve convert`
    and the server's child process run. Returns (part, the cached model's path, whether it was
    converted now) per part; raises `OtherWeightsError` if `expect_key` (one part) does not match."""
    _block_telemetry()
    from transformers import Sam3Model, Sam3Processor

    from segserve.engine.loading import resolve_checkpoint

    try:
        # Resolved as the engine does (the local snapshot, or one probe of the hub): no retry loops.
        source = resolve_checkpoint(model_id)
        model = Sam3Model.from_pretrained(source, dtype=torch.float32).eval()
    except Exception as exc:  # e.g. a model built in code under a name that is no checkpoint (the bench's)
        if expect_key is None:
            raise
        raise OtherWeightsError(f"{model_id} could not be loaded here: {exc}") from exc
    if image_size is None:
        image_size = int(Sam3Processor.from_pretrained(source).image_processor.size["height"])
    done = []
    for part in parts:
        key = _cache_key(part_module(model, part), image_size, _key_name(model_id, part))
        if expect_key is not None and key != expect_key:
            raise OtherWeightsError(f"{model_id} on disk is not the model in memory")
        path = cache_path(cache_dir, key, part)
        fresh = _read_cache(shared_core(), path) is None
        if fresh:
            convert(part, model, image_size, path)
        done.append((part, path, fresh))
    return done


def enough_memory_to_convert(module: torch.nn.Module, part: str = "vision") -> tuple[bool, float, float]:
    """(enough?, GiB available, GiB converting `module` as `part` needs), from /proc/meminfo's MemAvailable.

    Where that can't be read (not Linux), the answer is yes: the child process then fails alone.
    """
    needed = sum(p.numel() for p in module.parameters()) * CONVERT_BYTES_PER_PARAMETER[part] / 2**30
    try:
        with open("/proc/meminfo") as fh:
            fields = dict(line.split(":", 1) for line in fh)
        available = int(fields["MemAvailable"].split()[0]) * 1024 / 2**30
    except (OSError, KeyError, ValueError):
        return True, float("nan"), needed
    return available >= needed, available, needed


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


def _load_verified(core: Any, path: Path, shapes: dict[int, tuple[int, ...]] | None = None) -> Any:
    """The cached model, compiled, if its files are exactly the ones `_save` wrote; raises otherwise.

    `shapes` fixes input shapes before compiling. A cache from before the digest existed is trusted
    once it reads and compiles, then gets one.
    """
    sidecar = path.with_suffix(".sha256")
    files = (path, path.with_suffix(".bin"))
    if sidecar.is_file() and sidecar.read_text().strip() != _digest(*files):
        raise ValueError("its files do not match the digest written with them")
    model = core.read_model(path)
    if shapes:
        model.reshape({i: list(shape) for i, shape in shapes.items()})
    compiled = _compile(core, model)
    del model
    # The plugin computes from its packed copy; the mmapped IR's pages would stay in RSS (1.8 GB for the ViT).
    release_mapped_pages(path.with_suffix(".bin"))
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


def should_use(
    backend: str,
    vision_encoder: torch.nn.Module,
    device: torch.device,
    dtype: torch.dtype,
    setting: str = "vision_backend",
) -> bool:
    """Resolve a backend setting (`vision_backend`, `detector_backend`): "auto" picks OpenVINO for a
    full-size fp32 model (judged by its ViT) on the CPU when installed."""
    if backend == "torch":
        return False
    usable = device.type == "cpu" and dtype == torch.float32
    if backend == "openvino":
        if not usable:
            raise ValueError(f"{setting}='openvino' runs on the CPU in float32 only; use 'torch' or 'auto'")
        if not available():
            raise ValueError(f"{setting}='openvino' needs the openvino package: pip install 'segserve[cpu]'")
        return True
    if backend != "auto":
        raise ValueError(f"{setting} must be 'auto', 'torch' or 'openvino', got {backend!r}")
    big = sum(p.numel() for p in vision_encoder.parameters()) >= MIN_PARAMETERS
    return usable and big and available()


def main(argv: list[str] | None = None) -> int:
    """The conversion child process: `python -m segserve.engine.openvino --model ID --cache-dir DIR`."""
    parser = argparse.ArgumentParser(prog="python -m segserve.engine.openvino")
    parser.add_argument("--model", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--part", choices=PARTS, action="append", help="what to convert (default: all)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--expect-key", help="refuse (status 3) unless the checkpoint fingerprints to this key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("SEGSERVE_LOG_LEVEL", "WARNING").upper())
    parts = tuple(args.part or PARTS)
    if args.expect_key and len(parts) != 1:
        parser.error("--expect-key is the key of one --part")
    try:
        done = convert_checkpoint(args.model, args.cache_dir, parts, args.image_size, args.expect_key)
    except OtherWeightsError as exc:
        print(exc, file=sys.stderr)
        return _EXIT_OTHER_WEIGHTS
    for _, path, _ in done:
        print(path)
    return 0


def _cache_key(module: torch.nn.Module, image_size: int, model_id: str) -> str:
    """What a converted part depends on. The weights are fingerprinted by a strided sample of
    every tensor (hashing all 1.8 GB of the ViT would cost seconds at each start)."""
    import openvino
    import transformers

    h = hashlib.sha256()
    for part in (model_id, str(image_size), openvino.__version__, transformers.__version__, torch.__version__):
        h.update(part.encode() + b"\0")
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            flat = tensor.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 64)].float().cpu().numpy().tobytes()
            h.update(name.encode() + str(tuple(tensor.shape)).encode() + sample)
    return h.hexdigest()[:24]


if __name__ == "__main__":
    sys.exit(main())
