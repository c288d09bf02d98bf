"""`segserve annotate` against a plain loop, its memory over 2,000 images, and Ray with 1 vs 2 actors.

    python bench/annotate.py                 # all three tables on the tiny model (~10 min on 2 cores)
    python bench/annotate.py --only memory   # or: overhead, ray
    python bench/annotate.py --full          # the overhead table on full-size SAM 3 (random weights; slow)

Tables (markdown):
  overhead  images/s of `annotate()` (prefetch pool, journal commits, exports at the end) vs a plain
            loop of read + `decode_image` + `Sam3Segmenter.segment` over the same folder, alternating
            runs in one process; the ratio is what holds on a shared machine.
  memory    RSS at image 200 and image 2,000 of one annotate run (growth must stay under 5 %).
  ray       a local Ray (num_cpus=2) with 1 and 2 actors, wall time including actor start-up.
The images are scikit-image's sample photos, resized and shifted so no two are alike.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segserve.annotate import annotate
from segserve.annotate.sources import list_images, load_image
from segserve.settings import Settings
from segserve.types import SegmentRequest

PROMPT = "person, cat, rocket"
OPTIONS = {"threshold": 0.25, "max_segments": 10}


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> Path:
    from skimage import data

    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "cat", "hubble_deep_field")
    bases = [np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB").resize(size)) for name in names]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.roll(bases[i % len(bases)], shift=(i // len(bases)) % size[1], axis=0)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Recorder:
    """The segmenter, noting RSS after chosen image counts."""

    def __init__(self, segmenter: Any, marks: tuple[int, ...]) -> None:
        self.segmenter, self.marks, self.n, self.rss = segmenter, marks, 0, {}
        self.model_id = segmenter.model_id

    def segment(self, *args: Any, **kwargs: Any) -> Any:
        result = self.segmenter.segment(*args, **kwargs)
        self.n += 1
        if self.n in self.marks:
            self.rss[self.n] = rss_mib()
        return result


def plain_loop(segmenter: Any, folder: Path, settings: Settings) -> int:
    request = SegmentRequest.resolve(settings, prompt=PROMPT, **OPTIONS)
    n = 0
    for ref in list_images(folder).images:
        segmenter.segment(load_image(ref, settings), request.concepts, request.options)
        n += 1
    return n


def overhead(segmenter: Any, work: Path, n: int, size: tuple[int, int], rounds: int) -> None:
    folder = make_photos(work / f"overhead-{size[0]}x{size[1]}", n, size)
    settings = Settings.defaults()
    loop_rates, annotate_rates = [], []
    for r in range(rounds):
        # Each run starts cold: the same images went through the other path just before, and a
        # vision-cache hit there would skip the ViT (most of a full-size image's time).
        segmenter.vision_cache.clear()
        segmenter.text_cache.clear()
        start = time.perf_counter()
        plain_loop(segmenter, folder, settings)
        loop_rates.append(n / (time.perf_counter() - start))
        segmenter.vision_cache.clear()
        segmenter.text_cache.clear()
        start = time.perf_counter()
        summary = annotate(folder, work / f"out-{size[0]}-{r}", PROMPT, formats=["coco"], segmenter=segmenter,
                           **OPTIONS)  # fmt: skip
        annotate_rates.append(summary.done / (time.perf_counter() - start))
    ratio = statistics.median(a / b for a, b in zip(annotate_rates, loop_rates))
    print(f"| {Path(segmenter.model_id).name} | {size[0]}x{size[1]} | {n} | "
          f"{statistics.median(loop_rates):.2f} | {statistics.median(annotate_rates):.2f} | {ratio:.3f} |")  # fmt: skip


def memory(segmenter: Any, work: Path, n: int) -> None:
    folder = make_photos(work / "memory", n, (160, 120))
    recorder = Recorder(segmenter, (200, n))
    start = time.perf_counter()
    summary = annotate(folder, work / "out-memory", PROMPT, formats=["coco", "yolo", "labelstudio"],
                       segmenter=recorder, **OPTIONS)  # fmt: skip
    wall = time.perf_counter() - start
    a, b = recorder.rss[200], recorder.rss[n]
    print(f"| {n} | {summary.done} | {sum(summary.instances.values())} | {a:.0f} | {b:.0f} | "
          f"{100 * (b - a) / a:+.2f} % | {wall:.0f} s |")  # fmt: skip


def ray_actors(model: Path, work: Path, n: int) -> None:
    import ray

    folder = make_photos(work / "ray", n, (160, 120))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for actors in (1, 2):
            settings = Settings.defaults().replace(model=str(model), device="cpu", annotate_ray_actors=actors)
            start = time.perf_counter()
            summary = annotate(folder, work / f"out-ray-{actors}", PROMPT, settings=settings, ray=True, **OPTIONS)
            wall = time.perf_counter() - start
            print(f"| {actors} | {n} | {wall:.1f} s | {summary.done / wall:.2f} |")
    finally:
        ray.shutdown()


def full_size_segmenter() -> Any:
    sys.path.insert(0, str(Path(__file__).parent))
    from engine_vs_reference import build
    from segserve.engine.sam3 import Sam3Segmenter

    _, model, processor, what = build(tiny=False)
    del _
    # torch runs the parts: the overhead ratio does not depend on the backend, and converting this
    # in-memory model to OpenVINO would cost ~10 minutes and ~15 GB first.
    segmenter = Sam3Segmenter(
        copy.copy(model), processor, model_id="full-size (random)", vision_backend="torch", detector_backend="torch"
    )
    print(f"model: {what}")
    return segmenter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("overhead", "memory", "ray"))
    parser.add_argument("--full", action="store_true", help="the overhead table on full-size SAM 3 only")
    parser.add_argument("--images", type=int, default=2000, help="images in the memory run (with --only ray: Ray's)")
    parser.add_argument("--full-images", type=int, default=6, help="images per run with --full")
    parser.add_argument("--rounds", type=int, default=2, help="alternated loop/annotate rounds with --full")
    args = parser.parse_args()
    import torch

    from segserve.engine.sam3 import Sam3Segmenter
    from segserve.testing import make_tiny_sam3

    work = Path(tempfile.mkdtemp(prefix="segserve-bench-annotate-"))
    print(f"torch threads: {torch.get_num_threads()}; work dir: {work}\n")
    if args.full:
        print("| model | image | images | loop img/s | annotate img/s | annotate / loop |\n|---|---|---|---|---|---|")
        overhead(full_size_segmenter(), work, args.full_images, (960, 720), rounds=args.rounds)
        return
    model = make_tiny_sam3(work / "tiny-sam3")
    segmenter = Sam3Segmenter.from_pretrained(model, device="cpu")
    if args.only in (None, "overhead"):
        print("| model | image | images | loop img/s | annotate img/s | annotate / loop |\n|---|---|---|---|---|---|")
        for size in ((160, 120), (640, 480)):
            overhead(segmenter, work, 40, size, rounds=3)
        print()
    if args.only in (None, "memory"):
        print("| images | done | instances | RSS @200 (MiB) | RSS @last (MiB) | growth | wall |")
        print("|---|---|---|---|---|---|---|")
        memory(segmenter, work, args.images)
        print()
    if args.only in (None, "ray"):
        print("| actors | images | wall (incl. start-up) | img/s |\n|---|---|---|---|")
        ray_actors(model, work, args.images if args.only == "ray" else 80)


if __name__ == "__main__":
    main()
