"""What an empty prompt costs: segment-everything's grid and vocabulary modes vs a one-concept request.

    python bench/everything.py                    # full-size SAM 3, random weights (~15 min on 2 CPU cores)
    python bench/everything.py --tiny             # the tiny test model: checks the script in seconds
    python bench/everything.py --vocabulary 16    # a shorter vocabulary (the default is COCO's 80)

Speed does not depend on the values of the weights, only on the architecture (docs/performance.md),
so the detector is `Sam3Model(Sam3VideoConfig().detector_config)` and the tracker the
`Sam3TrackerModel` that segserve builds from the same config, both randomly initialised, the
tracker sharing the detector's ViT exactly as `load_tracker` arranges it for a real checkpoint.

The image is encoded once (one ViT pass, which every request on a new image pays); each mode is
then timed on the cached vision features and cached text features, as a server answers a second
request on the same image. The ratios are to a one-concept request on the same cached features.
Random weights predict IoUs around 0.5, so SAM's 0.88 / 0.95 filters keep nothing: the "default
filters" row is the tracker's cost; the "open filters" row keeps every one of the 3 x 1024
candidates through NMS and upsampling, an upper bound for post-processing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch


def build(tiny: bool, vocabulary: tuple[str, ...]):
    """A `Sam3Segmenter` (+ tracker) with random weights: the full-size architecture, or the tiny one."""
    from transformers import Sam3ImageProcessor, Sam3Model, Sam3Processor, Sam3TrackerModel, Sam3VideoConfig

    from segserve.engine.sam3 import Sam3Segmenter
    from segserve.engine.tracker import tracker_config
    from segserve.testing import make_tiny_sam3, tiny_sam3_config

    # The tiny checkpoint's byte-level tokenizer encodes any text; token ids only index embeddings.
    tiny_dir = make_tiny_sam3(tempfile.mkdtemp(prefix="segserve-bench-"))
    tiny_processor = Sam3Processor.from_pretrained(tiny_dir)
    if tiny:
        config = tiny_sam3_config(len(tiny_processor.tokenizer))
        processor = tiny_processor
    else:
        config = Sam3VideoConfig()
        processor = Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=tiny_processor.tokenizer)
    torch.manual_seed(0)
    detector = Sam3Model(config.detector_config).eval()
    # The tracker's own ViT is never used (segserve shares the detector's): build it 1 layer deep so
    # the bench does not allocate a second 450M-parameter copy, then swap in the detector's.
    cfg = tracker_config(config)
    cfg.vision_config.backbone_config.num_hidden_layers = 1
    cfg.vision_config.backbone_config.global_attn_indexes = [0]
    tracker = Sam3TrackerModel(cfg).eval()
    tracker.vision_encoder.backbone = detector.vision_encoder.backbone
    seg = Sam3Segmenter(
        detector, processor, model_id="bench-random", vocabulary=", ".join(vocabulary), grid_points=8 if tiny else 32
    )
    seg.grid.tracker = tracker
    return seg


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median seconds of `repeat` calls, and the last call's result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    from segserve.settings import COCO_CATEGORIES
    from segserve.types import SegmentOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test architecture (a smoke run)")
    parser.add_argument("--vocabulary", type=int, default=80, help="first N COCO categories (default all 80)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the median is reported")
    args = parser.parse_args(argv)

    vocabulary = COCO_CATEGORIES[: args.vocabulary]
    started = time.perf_counter()
    seg = build(args.tiny, vocabulary)
    print(f"built in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    rng = np.random.default_rng(0)
    # A smooth picture (upsampled noise) rather than pixel noise: closer to the masks of a photo.
    small = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    from PIL import Image

    rgb = np.asarray(Image.fromarray(small).resize((960, 720), Image.BICUBIC))
    options = SegmentOptions()
    grid_options = options.model_copy(update={"everything_mode": "grid"})
    vocabulary_options = options.model_copy(update={"everything_mode": "vocabulary"})

    with torch.inference_mode():
        vision, _ = timed(lambda: seg.encode_image(rgb), 1)  # the one ViT pass; cached from here on
        seg.encode_text(["cat", *vocabulary])  # text features cached too: only the modes are timed
        seg.segment(rgb, ["cat"], options)  # first-call costs (allocator, kernel choice) paid outside the timings
        one, r_one = timed(lambda: seg.segment(rgb, ["cat"], options), args.repeat)
        grid, r_grid = timed(lambda: seg.segment(rgb, [], grid_options), args.repeat)
        vocab, r_vocab = timed(lambda: seg.segment(rgb, [], vocabulary_options), args.repeat)
        seg.grid.settings = seg.settings.replace(pred_iou_thresh=0.0, stability_thresh=0.0, min_region_area=0)
        open_options = grid_options.model_copy(update={"threshold": 0.0})
        grid_open, r_open = timed(lambda: seg.segment(rgb, [], open_options), args.repeat)

    n_points = seg.settings.grid_points**2
    passes = -(-len(vocabulary) // seg.settings.concept_batch)
    arch = "tiny test architecture" if args.tiny else "full-size SAM 3 architecture (Sam3VideoConfig defaults)"
    print(
        f"{arch}, random weights; {platform.machine()} CPU, {torch.get_num_threads()} threads, fp32, "
        f"torch {torch.__version__}; image 960x720; vision features and text features cached; "
        f"median of {args.repeat} run(s). One ViT pass (paid once per new image): {vision:.1f}s.\n"
    )
    print("| request (empty prompt unless named) | seconds | x one-concept | + ViT pass, x one-concept | segments |")
    print("|---|---|---|---|---|")
    rows = [
        ("one concept (`cat`), for reference", one, r_one),
        (f"grid, {n_points} points, default filters (tracker cost)", grid, r_grid),
        (f"grid, {n_points} points, open filters (all {3 * n_points} candidates post-processed)", grid_open, r_open),
        (f"vocabulary, {len(vocabulary)} concepts in {passes} detector passes", vocab, r_vocab),
    ]
    for name, seconds, result in rows:
        print(
            f"| {name} | {seconds:.2f} | {seconds / one:.1f} | {(seconds + vision) / (one + vision):.2f} "
            f"| {len(result)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
