"""Where and how a checkpoint is loaded: device and dtype choice, and load errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import torch

from segserve.errors import InvalidParameterError, ModelLoadError

DEFAULT_MODEL = "facebook/sam3"

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


def check_local_path(source: str) -> None:
    """A path-looking model that does not exist gets a clear message instead of a hub lookup."""
    looks_local = source.startswith(("/", "./", "../", "~")) or Path(source).exists()
    if not looks_local:
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
