"""segserve's engine against the naive transformers pipeline, side by side in one process.

    python bench/engine_vs_reference.py            # full-size SAM 3, random weights (~15 min on 2 cores)
    python bench/engine_vs_reference.py --tiny     # the tiny test model: checks the script in seconds

Prints markdown tables:
  (a) the naive reference (Sam3Processor + Sam3Model, one full forward per concept, then
      `post_process_instance_segmentation`) vs `Sam3Segmenter.segment`, 1 and 3 concepts, cold cache;
  (b) cold vs cached re-prompt on the same image;
  (d) peak memory of each path;
and the vision encoder's achieved GFLOP/s next to this machine's measured fp32 matmul peak.

The full-size model is `Sam3Model(Sam3Config())` with random weights: the real checkpoint is gated,
and speed depends only on the architecture. Two copies are built from the same seed (the engine
compiles its ViT layers in place; the reference must stay plain eager transformers). Nothing here
says anything about mask quality.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segserve.engine import sam3 as sam3_engine
from segserve.engine.sam3 import Sam3Segmenter
from segserve.types import SegmentOptions

CONCEPTS = ["cat", "person", "rocket"]
NEW_CONCEPT = "flag"  # the re-prompt: a concept the text cache has not seen
IMAGE_SIZE = (720, 960)  # (h, w)
# Random weights score every query near the same value; 0.0 keeps all 200 queries per concept so
# the post-processing cost is the worst case (max_segments caps the upsampling at 100).
OPTIONS = SegmentOptions(threshold=0.0, mask_threshold=0.5, max_segments=100)


# --- the machine --------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_peak_gflops(n: int = 4096, repeats: int = 3) -> float:
    """Best of `repeats` fp32 n^3 matmuls: what this machine's BLAS achieves at best."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def vision_flops(model: Any) -> float:
    """FLOPs of one vision-encoder pass (ViT + FPN neck), counted on the meta device (no compute).

    Eager attention is counted as its two matmuls: the same arithmetic SDPA does.
    """
    from torch.utils.flop_counter import FlopCounterMode
    from transformers.models.sam3.modeling_sam3 import Sam3VisionModel

    config = copy.deepcopy(model.config.vision_config)
    config._attn_implementation = "eager"
    config.backbone_config._attn_implementation = "eager"
    size = int(config.backbone_config.image_size)
    with torch.device("meta"):
        vision = Sam3VisionModel(config).eval()
        pixels = torch.empty(1, 3, size, size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        vision(pixels)
    return float(counter.get_total_flops())


def detector_flops(model: Any) -> float:
    """FLOPs of transformers' detector for one text concept on precomputed vision and text features
    (DETR encoder + decoder, mask head, scoring), counted while `model` runs it once with eager
    attention, like `vision_flops` (attention as its two matmuls). segserve's split detector
    (engine/detector.py) does less arithmetic for the same outputs; its rate below is this
    reference work over its time."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    vision = model.config.vision_config
    grid = int(vision.backbone_config.image_size) // int(vision.backbone_config.patch_size)
    levels = tuple(torch.zeros(1, vision.fpn_hidden_size, int(grid * s), int(grid * s)) for s in vision.scale_factors)
    features = sam3_engine.VisionFeatures(
        fpn_hidden_states=levels,
        fpn_position_encoding=levels,
        backbone=torch.zeros(1, grid * grid, vision.backbone_config.hidden_size),
    )
    width = model.text_projection.out_features
    configs = [model.config, *(getattr(model.config, k) for k in model.config.sub_configs)]
    saved = [c._attn_implementation for c in configs]
    try:
        for c in configs:  # the attention modules read it at each call
            c._attn_implementation = "eager"
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(
                vision_embeds=features.expand(1),
                text_embeds=BaseModelOutputWithPooling(pooler_output=torch.zeros(1, 32, width)),
                attention_mask=torch.ones(1, 32, dtype=torch.long),
            )
    finally:
        for c, impl in zip(configs, saved):
            c._attn_implementation = impl
    return float(counter.get_total_flops())


class DetectorTimer:
    """Records (concepts in the pass, seconds) of each text-concept detector pass the engine makes,
    on whichever backend runs it."""

    def __init__(self, engine: Any):
        self.calls: list[tuple[int, float]] = []
        name = "_ov_detector" if engine._ov_detector is not None else "_text_detector"
        self._wrap(engine, name, rows=lambda args, kwargs: args[-2].shape[0])  # (..., text, mask)

    def _wrap(self, owner: Any, name: str, rows: Callable[[tuple, dict], int]) -> None:
        fn = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            self.calls.append((rows(args, kwargs), time.perf_counter() - start))
            return result

        setattr(owner, name, timed)

    def per_concept(self, concepts: int) -> list[float]:
        """Seconds per concept of the passes that carried `concepts` concepts."""
        return [seconds / n for n, seconds in self.calls if n == concepts]


# --- measuring ----------------------------------------------------------------------------------


def _seconds(fn: Callable[[], Any], label: str = "") -> float:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    if label:
        print(f"  {label}: {elapsed:.2f} s", file=sys.stderr, flush=True)
    return elapsed


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Peak resident memory above the level at entry, sampled every 5 ms: the call's working set."""
    result = {"peak": 0}
    base = _rss_bytes()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            result["peak"] = max(result["peak"], _rss_bytes() - base)
            done.wait(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result["peak"] = max(result["peak"], _rss_bytes() - base)


class Timed:
    """Wraps a bound method and records the seconds of each call (the vision pass, post-processing)."""

    def __init__(self, owner: Any, name: str):
        self.calls: list[float] = []
        self._fn = getattr(owner, name)
        setattr(owner, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = self._fn(*args, **kwargs)
        self.calls.append(time.perf_counter() - start)
        return result


# --- the two pipelines --------------------------------------------------------------------------


def build(tiny: bool) -> tuple[Any, Any, Any, str]:
    """(reference model, engine model, processor, description): two identical copies."""
    from transformers import CLIPTokenizer, Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    if tiny:
        from segserve.testing import make_tiny_sam3

        path = make_tiny_sam3(Path(tempfile.mkdtemp()) / "tiny-sam3")
        processor = Sam3Processor.from_pretrained(path)
        reference = Sam3Model.from_pretrained(path).eval()
        return reference, copy.deepcopy(reference), processor, "tiny random SAM 3 (tests' model)"

    from segserve.testing import _byte_vocab

    # The real CLIP BPE vocabulary is part of the gated checkpoint; a byte-level one tokenises
    # differently, but every prompt is padded to the same 32 tokens, so the compute is identical.
    vocab, merges = _byte_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 32
    processor = Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=tokenizer)
    torch.manual_seed(0)
    reference = Sam3Model(Sam3Config()).eval()
    params = sum(p.numel() for p in reference.parameters()) / 1e6
    what = f"full-size SAM 3 ({params:.0f} M parameters, random weights)"
    return reference, copy.deepcopy(reference), processor, what


def naive(reference: Any, processor: Any, image: np.ndarray, concept: str) -> list[dict]:
    """The transformers model card, as a newcomer would serve it: one full forward per concept."""
    inputs = processor(images=image, text=concept, return_tensors="pt")
    with torch.inference_mode():
        outputs = reference(**inputs)
    return processor.post_process_instance_segmentation(
        outputs, threshold=OPTIONS.threshold, mask_threshold=OPTIONS.mask_threshold, target_sizes=[image.shape[:2]]
    )


def test_image(seed: int = 0) -> np.ndarray:
    """skimage's astronaut resized to 960x720 (a photo, so JPEG-like content), shifted per seed."""
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize(IMAGE_SIZE[::-1], Image.BILINEAR)
    return np.roll(np.asarray(image), seed * 7, axis=1)


# --- the run ------------------------------------------------------------------------------------


def spread(values: list[float], ratio_to: list[float] | None = None) -> str:
    """`0.31 (0.30-0.33)`: the median of the rounds and their range; of ratios round by round when
    `ratio_to` is given (each round's pair shares that round's machine load)."""
    if ratio_to is not None:
        values = [v / r for v, r in zip(values, ratio_to)]
    digits = 3 if ratio_to is not None else 2
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def run(args: argparse.Namespace) -> None:
    if args.repeats < 3 and not args.tiny:
        raise SystemExit("--repeats must be at least 3: a ratio from one round is luck, not a result")
    torch.manual_seed(0)
    size = 1024 if args.tiny else 4096
    peaks = [matmul_peak_gflops(size)]
    print(f"  matmul peak {peaks[0]:.0f} GFLOP/s", file=sys.stderr, flush=True)
    reference, engine_model, processor, what = build(args.tiny)
    flops = vision_flops(reference)
    engine = Sam3Segmenter(
        engine_model, processor, model_id="bench", device=torch.device("cpu"), compile_vision=args.compile
    )
    vision_ours = Timed(engine, "run_vision")  # the ViT + neck only, on a cache miss
    post_ours = Timed(sam3_engine, "detections_to_result")
    vision_ref: list[float] = []
    _time_module(reference.vision_encoder, vision_ref)
    det_flops = detector_flops(reference)
    detector = DetectorTimer(engine)

    # Compilation (and first-touch allocation) happens on the first image: a server pays it once,
    # in its warm-up, before /readyz says ready. It is reported, not counted per request.
    warmup = _seconds(lambda: engine.segment(test_image(seed=1), ["warm-up"], OPTIONS), "warm-up")
    image = test_image()

    def cold(concepts: list[str]) -> float:
        engine.vision_cache.clear()
        engine.text_cache.clear()
        return _seconds(lambda: engine.segment(image, concepts, OPTIONS), f"segserve cold {len(concepts)}")

    rows: dict[str, list[float]] = {k: [] for k in ("naive1", "naive3", "ours1", "ours3", "reprompt", "repeat")}
    mem: dict[str, list[int]] = {"naive": [], "ours": [], "reprompt": []}
    for _ in range(args.repeats):
        # This machine's speed drifts by up to 2x over minutes (host contention it cannot see:
        # bench/README.md), so the peak is taken again each round, next to what it judges.
        peaks.append(matmul_peak_gflops(size))
        # Interleaved, so drift in the machine's load hits both paths alike.
        per_concept = []
        with peak_rss() as m_naive:
            per_concept.append(_seconds(lambda: naive(reference, processor, image, CONCEPTS[0]), "naive"))
        rows["ours1"].append(cold(CONCEPTS[:1]))
        per_concept.append(_seconds(lambda: naive(reference, processor, image, CONCEPTS[1]), "naive"))
        with peak_rss() as m_ours:
            rows["ours3"].append(cold(CONCEPTS))
        per_concept.append(_seconds(lambda: naive(reference, processor, image, CONCEPTS[2]), "naive"))
        with peak_rss() as m_reprompt:
            rows["reprompt"].append(_seconds(lambda: engine.segment(image, [NEW_CONCEPT], OPTIONS), "re-prompt"))
        rows["repeat"].append(_seconds(lambda: engine.segment(image, [NEW_CONCEPT], OPTIONS), "repeat"))
        # The naive pipeline for three concepts is exactly three one-concept calls.
        rows["naive1"].append(statistics.median(per_concept))
        rows["naive3"].append(sum(per_concept))
        mem["naive"].append(m_naive["peak"])
        mem["ours"].append(m_ours["peak"])
        mem["reprompt"].append(m_reprompt["peak"])

    peak = statistics.median(peaks)
    vision_s = statistics.median(vision_ours.calls[1:] or vision_ours.calls)  # not the warm-up's
    vision_ref_s = statistics.median(vision_ref)
    post_s = statistics.median(post_ours.calls[1:] or post_ours.calls)

    print(f"## {what}\n")
    print(
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), fp32, CPU, no GPU. Python {sys.version.split()[0]}."
    )
    print(
        f"Image {IMAGE_SIZE[1]}x{IMAGE_SIZE[0]} (resized to the model's "
        f"{engine.image_size}x{engine.image_size}); concepts {CONCEPTS}; threshold {OPTIONS.threshold} "
        f"(every query kept, up to {OPTIONS.max_segments} masks upsampled: worst-case post-processing). "
        f"Medians and ranges of {args.repeats} interleaved rounds; vision encoder: {engine.vision_backend}; "
        f"detector: {engine.detector_backend}; "
        f"ViT layers compiled: {args.compile}.\n"
    )
    print("### (a) naive reference vs segserve, cold cache\n")
    print("Each cell: the median of the rounds (min-max); ratios are taken round by round.\n")
    print("| path | 1 concept (s) | ratio | 3 concepts (s) | ratio |")
    print("|---|---|---|---|---|")
    naive1, naive3 = spread(rows["naive1"]), spread(rows["naive3"])
    print(f"| naive: Sam3Processor + Sam3Model per concept | {naive1} | 1 | {naive3} | 1 |")
    print(
        f"| segserve `Sam3Segmenter.segment` | {spread(rows['ours1'])} | {spread(rows['ours1'], rows['naive1'])} "
        f"| {spread(rows['ours3'])} | {spread(rows['ours3'], rows['naive3'])} |"
    )
    print("\n### (b) cold vs cached re-prompt on the same image, 1 concept\n")
    print("| request | seconds | ratio to naive 1 concept |")
    print("|---|---|---|")
    print(f"| naive reference (no cache exists) | {spread(rows['naive1'])} | 1 |")
    cold1 = f"{spread(rows['ours1'])} | {spread(rows['ours1'], rows['naive1'])}"
    print(f"| segserve, cold (vision + text computed) | {cold1} |")
    print(
        f"| segserve, re-prompt with a new concept (vision cached) | {spread(rows['reprompt'])} "
        f"| {spread(rows['reprompt'], rows['naive1'])} |"
    )
    print(
        f"| segserve, the same request again (vision + text cached) | {spread(rows['repeat'])} "
        f"| {spread(rows['repeat'], rows['naive1'])} |"
    )
    print("\n### Vision encoder and post-processing\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| vision encoder FLOPs (ViT + FPN neck, counted) | {flops / 1e12:.2f} TFLOP |")
    print(f"| machine's fp32 matmul peak ({size}^3, best of 3; median (min-max) of rounds) | {spread(peaks)} GFLOP/s |")
    print(
        f"| naive reference's vision encoder | {vision_ref_s:.2f} s = {flops / vision_ref_s / 1e9:.0f} GFLOP/s "
        f"({flops / vision_ref_s / 1e9 / peak:.0%} of peak) |"
    )
    print(
        f"| segserve's vision pass (`run_vision`) | {vision_s:.2f} s = {flops / vision_s / 1e9:.0f} GFLOP/s "
        f"({flops / vision_s / 1e9 / peak:.0%} of peak) |"
    )
    print(f"| fp32 floor of the vision encoder (FLOPs / peak) | {flops / peak / 1e9:.2f} s |")
    print(f"| transformers' detector FLOPs per concept (attention as matmuls) | {det_flops / 1e12:.3f} TFLOP |")
    for n in (1, len(CONCEPTS)):
        times = detector.per_concept(n)
        if times:
            rate = det_flops / statistics.median(times) / 1e9
            print(
                f"| segserve's detector ({engine.detector_backend}), {n} concept(s) per pass, per concept "
                f"| {spread(times)} s = {rate:.0f} GFLOP/s ({rate / peak:.0%} of peak) |"
            )
    masks = f"{OPTIONS.max_segments} masks to {IMAGE_SIZE[1]}x{IMAGE_SIZE[0]}"
    print(f"| segserve post-processing (`detections_to_result`, {masks}) | {post_s:.3f} s |")
    print(f"| one-time warm-up (first image{', torch.compile' if args.compile else ''}) | {warmup:.1f} s |")
    print("\n### (d) peak memory\n")
    print("| during | peak RSS above the loaded models (MiB) |")
    print("|---|---|")
    print(f"| naive reference, 1 concept | {statistics.median(mem['naive']) / 2**20:.0f} |")
    print(f"| segserve, 3 concepts, cold | {statistics.median(mem['ours']) / 2**20:.0f} |")
    print(f"| segserve, cached re-prompt | {statistics.median(mem['reprompt']) / 2**20:.0f} |")
    cache = engine.cache_stats()["vision"]
    print(
        f"\nVision cache after the run: {cache['entries']} image(s), {cache['bytes'] / 2**20:.0f} MiB held "
        f"(capacity {cache['capacity'] / 2**20:.0f} MiB + shared position encodings); process peak RSS "
        f"{_max_rss_mib():.0f} MiB with both model copies loaded."
    )


def _time_module(module: torch.nn.Module, into: list[float]) -> None:
    start: list[float] = []
    module.register_forward_pre_hook(lambda *_: start.append(time.perf_counter()))
    module.register_forward_hook(lambda *_: into.append(time.perf_counter() - start.pop()))


def _max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny test model (checks the script quickly)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved rounds (at least 3); medians and spreads are printed"
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="torch.compile the engine's ViT layers (off by default, as in the engine)",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
