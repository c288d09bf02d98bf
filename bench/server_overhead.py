"""What the HTTP server adds on top of the engine: decode + queue + RLE + JSON + HTTP, in ms.

    python bench/server_overhead.py [--repeats 20]

A real uvicorn server on 127.0.0.1 serving the tiny test model, a 1920x1080 JPEG upload and a
prompt whose answer has ~20 segments at full resolution, sent with httpx over a real socket;
against the bare `Sam3Segmenter.segment` call on the already-decoded pixels. The tiny model
keeps the engine's share small so the server's own cost is what is measured; that cost depends
on the image and the number of masks, not on the model. The vision cache is warm for both (the
same image every time), as in the playground's "change the prompt, run again".
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from segserve.engine.sam3 import Sam3Segmenter
from segserve.images import decode_image
from segserve.settings import Settings
from segserve.testing import make_tiny_sam3
from segserve.types import SegmentOptions

SIZE = (1080, 1920)  # (h, w)
# The tiny random model has 20 queries per concept, all scoring ~0.25: threshold 0 keeps them all.
OPTIONS = SegmentOptions(threshold=0.0, mask_threshold=0.5, max_segments=100)
PROMPT = "cat"


def photo_jpeg() -> bytes:
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize(SIZE[::-1], Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app: Any, port: int) -> Any:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start in 30 s")
        time.sleep(0.05)
    return server


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # first call: lazy imports, allocator growth
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    from segserve.api.app import create_app

    path = make_tiny_sam3(Path(tempfile.mkdtemp()) / "tiny-sam3")
    segmenter = Sam3Segmenter.from_pretrained(path, device="cpu")
    jpeg = photo_jpeg()
    rgb = decode_image(jpeg)
    result = segmenter.segment(rgb, [PROMPT], OPTIONS)
    n = len(result)

    settings = Settings(no_auth=True, warmup=False, max_segments=OPTIONS.max_segments)
    server = serve(create_app(settings, segmenter=segmenter), port := free_port())
    url = f"http://127.0.0.1:{port}/v1/images/segmentation"
    form = {"model": settings.model_name, "prompt": PROMPT, "threshold": "0", "mask_threshold": "0.5"}
    with httpx.Client(timeout=60) as client:

        def http() -> None:
            response = client.post(url, data=form, files={"image": ("photo.jpg", jpeg, "image/jpeg")})
            response.raise_for_status()
            assert response.json()["num_segments"] == n, "the server and the engine must answer alike"

        def engine() -> None:
            segmenter.segment(rgb, [PROMPT], OPTIONS)

        # Interleaved in rounds, so drift in the machine's load hits both alike.
        http_ms, engine_ms = [], []
        for _ in range(max(1, args.repeats // 5)):
            http_ms.append(median_ms(http, 5))
            engine_ms.append(median_ms(engine, 5))
        t_http, t_engine = statistics.median(http_ms), statistics.median(engine_ms)
        t_decode = median_ms(lambda: decode_image(jpeg), args.repeats)
        t_rle = median_ms(lambda: result.to_dict("rle"), args.repeats)
        payload = result.to_dict("rle")
        t_json = median_ms(lambda: json.dumps(payload, separators=(",", ":")).encode(), args.repeats)
        body = json.dumps(payload, separators=(",", ":")).encode()
    server.should_exit = True

    print(
        f"## Server overhead: tiny model, CPU, {SIZE[1]}x{SIZE[0]} JPEG upload ({len(jpeg) / 1024:.0f} KiB), "
        f"prompt {PROMPT!r} -> {n} segments, RLE masks, response {len(body) / 1024:.0f} KiB; "
        f"vision cache warm; medians of {args.repeats} ({max(1, args.repeats // 5)} interleaved rounds of 5)\n"
    )
    print("| measure | ms |")
    print("|---|---|")
    print(f"| full HTTP request (httpx -> uvicorn -> segserve app, real socket) | {t_http:.1f} |")
    print(f"| bare engine call `segment(rgb, ...)` | {t_engine:.1f} |")
    print(f"| **server overhead per request** (difference) | **{t_http - t_engine:.1f}** |")
    print(f"| of which: decode the JPEG (`decode_image`) | {t_decode:.1f} |")
    print(f"| of which: masks -> RLE + boxes dict (`to_dict('rle')`) | {t_rle:.1f} |")
    print(f"| of which: `json.dumps` | {t_json:.1f} |")
    rest = t_http - t_engine - t_decode - t_rle - t_json
    print(f"| the rest: multipart parsing, queue hand-off, HTTP both ways | {rest:.1f} |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
