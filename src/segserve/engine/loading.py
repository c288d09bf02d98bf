"""Where and how a checkpoint is loaded: device and dtype choice, and load errors that say what to do."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch

from segserve.errors import InvalidParameterError, ModelLoadError

DEFAULT_MODEL = "facebook/sam3"

log = logging.getLogger("segserve.engine")

# What a cached hub snapshot must hold to load without the network; a partial download lacks one.
_NEEDED_FILES = ("config.json", "processor_config.json")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")

# Linux's madvise advice that drops a mapping's resident pages (see `release_mapped_pages`).
_MADV_DONTNEED = 4

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def select_device(device: str | torch.device | None = None) -> torch.device:
    """`None` picks cuda > mps > cpu; a device asked for by name must exist here.

    Raises `InvalidParameterError` (param "device") for an unknown or absent device, so a missing
    GPU is a one-line message at start-up, not a traceback on the first request.
    """
    mps = getattr(torch.backends, "mps", None)
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidParameterError(f"Unknown device {device!r}; use cuda, mps or cpu.", param="device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError("The device is cuda but no CUDA GPU is visible here; use cpu.", param="device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidParameterError(
            f"The device is {dev} but only {torch.cuda.device_count()} CUDA GPU(s) are visible.", param="device"
        )
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise InvalidParameterError(
            "The device is mps but Apple's Metal is not available here; use cpu.", param="device"
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidParameterError(f"Unsupported device {device!r}; use cuda, mps or cpu.", param="device")
    return dev


def select_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`None` gives bf16 on CUDA and fp32 elsewhere (CPU bf16 matmuls are slow without AMX)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise InvalidParameterError(
            f"Unknown dtype {dtype!r}; use one of {', '.join(sorted(_DTYPES))}.", param="dtype"
        ) from None


def _looks_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).exists()


def check_local_path(source: str) -> None:
    """A path-looking model that does not exist gets a clear message instead of a hub lookup."""
    if not _looks_local(source):
        return
    path = Path(source).expanduser()
    if not path.is_dir():
        raise ModelLoadError(
            f"No SAM 3 checkpoint directory at {path}. Point SEGSERVE_MODEL (or --model) at a folder "
            "holding config.json, model.safetensors and the processor files, e.g. one made with "
            "`hf download facebook/sam3 --local-dir ./sam3`."
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{path} is not a SAM 3 checkpoint: it has no config.json. Download one with "
            "`hf download facebook/sam3 --local-dir ./sam3` and set SEGSERVE_MODEL to that folder."
        )


def load_error_message(source: str, exc: Exception) -> str:
    """Turn hub/network/file errors into a sentence that says what to do."""
    name = type(exc).__name__
    text = str(exc)
    reason = f"({name}: {text.splitlines()[0][:300] if text else 'no detail'})"
    how = (
        f"To use {source}: accept the licence on https://huggingface.co/{source}, log in with "
        "`hf auth login` (or set HF_TOKEN), and make sure this machine can reach the hub — or set "
        "SEGSERVE_MODEL (or --model) to a local copy made with "
        f"`hf download {source} --local-dir ./sam3`."
    )
    if "Gated" in name or "gated" in text or "401" in text or "403" in text:
        return f"The model {source} is gated and this machine is not authorised to download it. {how} {reason}"
    if "RepositoryNotFound" in name or "404" in text:
        return (
            f"No model named {source} on the Hugging Face hub (or it is private). Check the name, or {how[0].lower()}"
            f"{how[1:]} {reason}"
        )
    return f"Could not load the SAM 3 checkpoint {source}. {how} {reason}"


def resolve_checkpoint(source: str, probe_timeout: float = 5.0) -> str:
    """Where to load `source` from, decided in at most one short request to the hub.

    A local directory is checked and returned. A hub id already in the local Hugging Face cache
    gives its snapshot directory, so loading never touches the network (`hf download` updates it).
    Otherwise, with `HF_HUB_OFFLINE=1`, or when one HEAD of its config.json (no retries, at most
    `probe_timeout` seconds) fails, a `ModelLoadError` says what to do. Without this,
    huggingface_hub retries each of the checkpoint's files with backoff, ~3.5 minutes of
    "Retrying in 8s" lines before the same failure on a machine with no route to the hub.
    """
    check_local_path(source)
    if _looks_local(source):
        return source
    cached = cached_snapshot(source)
    if cached is not None:
        log.info("loading %s from the local Hugging Face cache (%s)", source, cached)
        return cached
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    if constants.is_offline_mode():
        raise ModelLoadError(
            f"The model {source} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and "
            f"HF_HUB_OFFLINE=1 forbids downloading it. {_how_to_get(source, offline=True)}"
        )
    try:
        # retry_on_errors=False (the default): one request, the answer to "can we download at all?"
        get_hf_file_metadata(hf_hub_url(source, "config.json"), timeout=probe_timeout)
    except (HfHubHTTPError, HFValidationError) as exc:  # gated, missing, a bad name: the hub answered
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status is not None and (status >= 500 or status == 429):  # answered, but only "not now"
            raise ModelLoadError(_unreachable(source, exc, constants.HF_HUB_CACHE)) from exc
        raise ModelLoadError(load_error_message(source, exc)) from exc
    except Exception as exc:  # DNS, refused, timeout, proxy: the transport's own exception types
        raise ModelLoadError(_unreachable(source, exc, constants.HF_HUB_CACHE)) from exc
    return source


def _unreachable(source: str, exc: Exception, cache: str) -> str:
    detail = str(exc).splitlines()[0][:200] if str(exc) else "no detail"
    return (
        f"Could not load the SAM 3 checkpoint {source}: the Hugging Face hub did not answer "
        f"({type(exc).__name__}: {detail}) and {source} is not in the local cache ({cache}). "
        f"{_how_to_get(source)}"
    )


def cached_snapshot(source: str) -> str | None:
    """The local snapshot directory of hub id `source`'s main revision when it holds a loadable
    checkpoint (config, processor, weights), else None."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(source, local_files_only=True))
    except Exception:  # not cached, incomplete, or not a valid repo id: all mean "not here"
        return None
    if all((folder / name).is_file() for name in _NEEDED_FILES) and any((folder / w).is_file() for w in _WEIGHTS):
        return str(folder)
    return None


def _how_to_get(source: str, offline: bool = False) -> str:
    return (
        f"Download it where the hub is reachable with `hf download {source}` (after accepting its licence "
        "on huggingface.co and `hf auth login`, for a gated model), or set SEGSERVE_MODEL (or --model) to "
        f"a local copy made with `hf download {source} --local-dir ./sam3`."
        + ("" if offline else " On a machine without the hub, set HF_HUB_OFFLINE=1 to skip even this check.")
    )


def release_mapped_pages(path: Path | str) -> int:
    """Unmap from this process the resident pages of its mappings of `path`; returns the bytes advised.

    Weights read by mmap (safetensors, OpenVINO's IR) stay mapped while anything holds the file, and
    every page ever read counts in this process's RSS until the kernel runs short of memory, even
    when nothing reads it again: OpenVINO's CPU plugin computes from its own packed copy after
    compiling but keeps the IR mapped (1.8 GB of the ViT); the torch ViT's pages stay mapped with
    the checkpoint after the ViT moves to the meta device. `madvise(MADV_DONTNEED)` on a file
    mapping drops this process's page-table entries: the pages stay in the page cache, and a later
    read faults them back in from the file. A private mapping in which a page was written (copy on
    write: anonymous pages in it) would lose the write, so such a mapping is left alone. Neither
    library offers this (OpenVINO 2026.4 without mmap keeps the same bytes as anonymous memory).
    Linux only; elsewhere a no-op.
    """
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    target = str(Path(path).resolve())
    regions: list[list[int]] = []  # [start, end, anonymous kB] of each mapping of `target`
    current = -1  # the end address of the mapping whose fields are being read, if it is one of those
    with open("/proc/self/smaps") as fh:
        for line in fh:
            fields = line.split(maxsplit=5)
            if fields[0].endswith(":"):  # a field of the mapping above ("Anonymous:     0 kB")
                if fields[0] == "Anonymous:" and regions and regions[-1][1] == current:
                    regions[-1][2] = int(fields[1])
                continue
            current = -1
            if len(fields) == 6 and fields[5].strip() == target:
                start, end = (int(v, 16) for v in fields[0].split("-"))
                regions.append([start, end, 0])
                current = end
    advised = 0
    for start, end, written in regions:
        if written == 0 and madvise(start, end - start, _MADV_DONTNEED) == 0:
            advised += end - start
    return advised
