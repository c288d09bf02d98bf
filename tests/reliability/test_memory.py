"""Peak memory: with default settings, no request that passes the limits raises a real `segserve
serve`'s peak RSS more than MEMORY_BOUND over the loaded model (tiny random SAM 3, CPU).

The server runs as a subprocess with nothing but the model, device and key set, so every limit is
the shipped default (50 MP, 100:1 aspect ratio, max_segments 100, ...). Its resident set after
load and warm-up (VmRSS once /readyz says ready) is the baseline. Before each request the kernel's
peak counter (VmHWM) is reset to the current RSS through /proc/<pid>/clear_refs; after it, VmHWM -
baseline is that request's growth. Where the reset is not allowed the counter is the peak since
start, which is never lower than a request's own peak, so the assertion still holds for every
shape (the numbers printed are then cumulative).

The shapes are the worst that pass the limits, each at threshold 0 so every query's mask is kept
(the random model's detections are up to 20 per concept):

- on the text path at the pixel limit: the largest square (RLE, then polygon output) and both
  100:1 slivers (707 x 70700 and 70700 x 707, RLE);
- grid everything-mode at the pixel limit (its time is the tracker's 1,024 prompt points; the
  random model's grid masks seldom pass the predicted-IoU and stability cuts, so its peak is
  decoding and preprocessing);
- vocabulary everything-mode (80 COCO concepts, 5 detector passes) at 1831 x 1831. It upsamples up
  to 5 x 125 masks to full size, ~15 ms each per megapixel on 2 cores (~40 s at 3000 x 3000,
  minutes at 50 MP: too long for the suite), so it runs on the smallest square whose chunks fill
  the post-processing's whole per-chunk budget (16 masks of 3.35 MP = postprocess.CHUNK_BYTES,
  256 MiB), which is what bounds its peak; what grows past that with the pixel count (the decoded
  image, a chunk of one 50 MP mask) is what the 50 MP text shapes measure.

The largest part of a 50 MP request's peak is decoding (~670 MiB for a 143 MiB RGB array: Pillow's
4-byte pixels, its `tobytes()` and the writable copy).

Memory is asserted, time is not; each shape prints its growth and wall time (`pytest -s`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageDraw
from serving import free_port, serve_command, server_env, start, stop, wait_for

from segserve.engine.postprocess import CHUNK_BYTES, UPSAMPLE_CHUNK
from segserve.settings import Settings

API_KEY = "memory-test-key"
PATH = "/v1/images/segmentation"
MEMORY_BOUND = 2 * 2**30  # bytes a request may add to the loaded server's RSS: the bound README.md states

_DEFAULTS = Settings.defaults()
SIDE = int(_DEFAULTS.max_image_pixels**0.5)  # 7071: the largest square within the pixel limit
SHORT = int((_DEFAULTS.max_image_pixels / _DEFAULTS.max_aspect_ratio) ** 0.5)  # 707
LONG = int(SHORT * _DEFAULTS.max_aspect_ratio)  # 70700: exactly the 100:1 limit, still under 50 MP
# The smallest square at which one chunk holds UPSAMPLE_CHUNK masks (float32 + bool: 5 bytes a pixel)
# filling CHUNK_BYTES: 1831.
FULL_CHUNK_SIDE = int((CHUNK_BYTES / (5 * UPSAMPLE_CHUNK)) ** 0.5)
TEXT = {"prompt": "cat", "threshold": "0"}
VOCABULARY = {"prompt": "", "threshold": "0", "everything_mode": "vocabulary"}

# (name, (height, width), form fields); the order is the order they run in, on one server.
SHAPES = [
    ("text-square-rle", (SIDE, SIDE), TEXT),
    ("text-square-polygon", (SIDE, SIDE), {**TEXT, "mask_format": "polygon"}),
    ("text-1xN", (SHORT, LONG), TEXT),  # one row of the image in 100 across
    ("text-Nx1", (LONG, SHORT), TEXT),
    ("grid-everything-square", (SIDE, SIDE), {"prompt": "", "threshold": "0"}),
    ("vocabulary-everything-full-chunk", (FULL_CHUNK_SIDE, FULL_CHUNK_SIDE), VOCABULARY),
]


def _png(size: tuple[int, int], variant: int, path: Path) -> Path:
    """A flat-coloured RGB PNG with a few shapes: under 1 MB to upload, `size` pixels to decode.

    Each `variant` has its own background, so no two shapes send the same pixels: a repeat would hit
    the vision-feature cache and skip the full-size preprocessing this test means to measure.
    """
    height, width = size
    image = Image.new("RGB", (width, height), (200, 190, 170 + variant))
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 8, height // 8, width // 2, height // 2), fill=(40, 70, 120))
    draw.ellipse((width // 2, height // 3, width - width // 10, height - height // 10), fill=(180, 40, 30))
    draw.line((0, height - 1, width - 1, 0), fill=(20, 20, 20), width=max(1, min(width, height) // 50))
    image.save(path, format="PNG", compress_level=1)  # flat colour: still a few hundred kB at most
    return path


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024  # the kernel reports kB
    return values


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used: a cost that, unlike wall time, others' load barely moves."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def _reset_peak(pid: int) -> bool:
    """Set VmHWM to the current RSS (Linux 4.0+). False where the kernel or sandbox refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def server(tiny_model_path, tmp_path_factory) -> Iterator[tuple[str, int, int]]:
    """(base URL, pid, baseline RSS) of a real server with default settings, loaded and warmed up."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc (Linux)")
    port = free_port()
    env = server_env(SEGSERVE_MODEL=str(tiny_model_path), SEGSERVE_DEVICE="cpu", SEGSERVE_API_KEYS=API_KEY)
    proc = start(serve_command(port), env, tmp_path_factory.mktemp("cwd"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/readyz", proc)  # ready = model loaded and one warm-up inference run
        yield base, proc.pid, _status(proc.pid)["VmRSS"]
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("variant", "size", "fields"), [(i, s, f) for i, (_, s, f) in enumerate(SHAPES)], ids=[n for n, _, _ in SHAPES]
)
def test_a_worst_case_request_stays_within_the_memory_bound(server, tmp_path, variant, size, fields):
    base, pid, baseline = server
    image = _png(size, variant, tmp_path / "image.png")
    before = _status(pid)["VmRSS"]  # above the baseline by what earlier requests left the allocator holding
    resettable = _reset_peak(pid)
    cpu = _cpu_seconds(pid)
    started = time.perf_counter()
    with image.open("rb") as f:
        r = requests.post(
            base + PATH,
            headers={"Authorization": f"Bearer {API_KEY}"},
            data={"model": "sam3", **fields},
            files={"image": ("image.png", f, "image/png")},
            timeout=280,
        )
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds(pid) - cpu
    peak = _status(pid)["VmHWM"]
    growth = peak - baseline
    kind = "" if resettable else " (peak since start: clear_refs refused)"
    mib = 2**20
    print(
        f"{size[0]}x{size[1]} {fields}: peak +{growth / mib:.0f} MiB over the loaded {baseline / mib:.0f} MiB{kind}"
        f" (+{(peak - before) / mib:.0f} MiB over the RSS just before), {seconds:.1f} s wall, {cpu:.1f} s server CPU"
    )
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert body["num_segments"] == len(body["segments"])
    if fields["prompt"]:
        # The text path at threshold 0 keeps every query whose mask is not empty: there is work to measure.
        assert body["num_segments"] >= 1
        assert body["segments"][0]["mask"]["size"] == list(size)
    assert growth < MEMORY_BOUND, f"+{growth / mib:.0f} MiB over the loaded server's {baseline / mib:.0f} MiB"
