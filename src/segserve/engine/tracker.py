"""The SAM 3 tracker (point/box prompts for one object), built around the detector's ViT.

The checkpoint holds one backbone shared by detector and tracker, so the tracker is created on the
meta device with the detector's `vision_encoder.backbone` put in (same parameter storage, no second
450M-parameter copy) and only its own weights are read from the safetensors.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import torch

from segserve.engine.loading import resolve_checkpoint
from segserve.errors import ModelLoadError

log = logging.getLogger(__name__)

# The tracker's modules that point prompting needs; its memory modules (video) are never loaded.
_TRACKER_MODULES = ("prompt_encoder", "mask_decoder", "shared_image_embedding", "no_memory_embedding")
# `facebook/sam3` stores the tracker as `tracker_model.<module>`; transformers 5.23's save_pretrained
# of a Sam3VideoModel writes `tracker_model.tracker_model.<module>` (its rename applied twice).
_TRACKER_KEY = re.compile(r"^tracker_model\.(?:tracker_model\.)?(.+)$")


def load_tracker(
    source: str,
    backbone: torch.nn.Module,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Any:
    """A `Sam3TrackerModel` from the checkpoint `source`, built around `backbone` (the detector's ViT).

    The tracker is created on the meta device (no memory, no init), its vision backbone replaced by
    the detector's module - the same parameters, one copy - and only its own weights are read from
    the safetensors: `tracker_neck.*` as its FPN neck, `tracker_model.*` as prompt encoder and mask
    decoder. Works on `facebook/sam3` (`tracker_model.<module>`) and on checkpoints written by
    transformers' `Sam3VideoModel.save_pretrained` (`tracker_model.tracker_model.<module>`).
    """
    from transformers import AutoConfig, Sam3TrackerModel

    source = resolve_checkpoint(source)  # a cached hub id: its snapshot, so no network at all
    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as exc:  # hub, network and file errors all arrive as different types
        raise ModelLoadError(f"Could not read the config of {source} to load the SAM 3 tracker: {exc}") from exc
    if getattr(config, "tracker_config", None) is None:
        raise ModelLoadError(
            f"{source} has no SAM 3 tracker (its config is {config.model_type!r}, not 'sam3_video'), which "
            "segment-everything's grid mode needs. Use the full facebook/sam3 checkpoint, or set "
            "SEGSERVE_EVERYTHING_MODE=vocabulary."
        )
    with torch.device("meta"):
        tracker = Sam3TrackerModel(tracker_config(config))
    tracker.vision_encoder.backbone = backbone  # the shared ViT: same storage as the detector's

    state = _read_tracker_weights(source, device=device, dtype=dtype)
    if "shared_image_embedding.positional_embedding" not in state and (
        "prompt_encoder.shared_embedding.positional_embedding" in state
    ):
        # Both hold SAM's random Fourier matrix; a checkpoint may store it once.
        state["shared_image_embedding.positional_embedding"] = state[
            "prompt_encoder.shared_embedding.positional_embedding"
        ]
    expected = {k for k in tracker.state_dict() if not k.startswith("vision_encoder.backbone.")}
    missing = sorted(expected - set(state))
    if missing:
        raise ModelLoadError(
            f"The SAM 3 checkpoint {source} lacks {len(missing)} tracker weights (e.g. {missing[:3]}), which "
            "segment-everything's grid mode needs. Re-download it, or set SEGSERVE_EVERYTHING_MODE=vocabulary."
        )
    tracker.load_state_dict({k: state[k] for k in expected}, strict=False, assign=True)
    # The shared ViT may itself be on the meta device: with OpenVINO running the ViT, the engine
    # drops the torch weights, and the tracker only ever reads the ViT's output.
    still_meta = [
        n
        for n, t in [*tracker.named_parameters(), *tracker.named_buffers()]
        if t.is_meta and not n.startswith("vision_encoder.backbone.")
    ]
    if still_meta:  # a tensor no checkpoint key filled: a layout this loader does not know
        raise ModelLoadError(f"The SAM 3 tracker of {source} did not load completely: {still_meta[:3]} missing.")
    log.info("loaded the SAM 3 tracker of %s (sharing the detector's ViT)", source)
    return tracker.eval()


def tracker_config(config: Any) -> Any:
    """The `Sam3TrackerConfig` of the point-prompt tracker inside a `Sam3VideoConfig` (facebook/sam3's)."""
    from transformers import Sam3TrackerConfig

    tc = config.tracker_config if isinstance(config.tracker_config, dict) else config.tracker_config.to_dict()
    detector_vision = config.detector_config.vision_config
    vision = detector_vision if isinstance(detector_vision, dict) else detector_vision.to_dict()
    return Sam3TrackerConfig(
        # The neck is `tracker_neck`, which Sam3VideoModel builds from the detector's vision config.
        vision_config=vision,
        prompt_encoder_config=tc["prompt_encoder_config"],
        mask_decoder_config=tc["mask_decoder_config"],
    )


def _read_tracker_weights(source: str, device: torch.device | str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The tracker's tensors from the checkpoint's safetensors, renamed to `Sam3TrackerModel`'s keys.

    Reads only those keys (lazily, per tensor), never the 3.4 GB file as a whole.
    """
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for path in _checkpoint_files(source):
        with safe_open(path, framework="pt", device="cpu") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a Mapping
                name = _tracker_name(key)
                if name is not None:
                    tensor = f.get_tensor(key)
                    state[name] = tensor.to(device, dtype if tensor.is_floating_point() else tensor.dtype)
    return state


def _tracker_name(key: str) -> str | None:
    """Checkpoint key -> `Sam3TrackerModel` key, or None for weights the tracker does not use."""
    if key.startswith("tracker_neck."):
        return "vision_encoder.neck." + key[len("tracker_neck.") :]
    match = _TRACKER_KEY.match(key)
    if match and match.group(1).split(".", 1)[0] in _TRACKER_MODULES:
        return match.group(1)
    return None


def _checkpoint_files(source: str) -> list[str]:
    """The safetensors file(s) of a local directory or an already-downloaded hub checkpoint."""
    from transformers.utils import cached_file

    kwargs: dict[str, Any] = {
        "_raise_exceptions_for_missing_entries": False,
        "_raise_exceptions_for_connection_errors": False,
    }
    index = cached_file(source, "model.safetensors.index.json", **kwargs)
    if index:
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        files = [cached_file(source, shard, **kwargs) for shard in shards]
        if all(files):
            return [str(p) for p in files]
    single = cached_file(source, "model.safetensors", **kwargs)
    if single:
        return [str(single)]
    raise ModelLoadError(
        f"No model.safetensors found for {source}; the SAM 3 tracker (segment-everything's grid mode) is "
        "loaded from it. Download the checkpoint with `hf download facebook/sam3 --local-dir ./sam3`."
    )


def tracker_embeddings(tracker: Any, backbone: torch.Tensor) -> list[torch.Tensor]:
    """The tracker's [s0, s1, image embedding] maps from the detector's ViT output (no second ViT pass).

    Operation for operation `Sam3VideoModel.get_vision_features_for_tracker`: the tracker neck's
    first three FPN levels (4x, 2x, 1x), the two high-resolution ones pre-projected by the mask
    decoder, and the no-memory embedding added to the 1x level as SAM 3's image predictor does.
    """
    height, width = tracker.prompt_encoder.image_embedding_size
    spatial = backbone.reshape(backbone.shape[0], height, width, -1).permute(0, 3, 1, 2)
    fpn, _ = tracker.vision_encoder.neck(spatial)
    return [
        tracker.mask_decoder.conv_s0(fpn[0]),
        tracker.mask_decoder.conv_s1(fpn[1]),
        fpn[2] + tracker.no_memory_embedding.reshape(1, -1, 1, 1),
    ]
