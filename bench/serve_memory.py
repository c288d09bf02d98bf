"""A real server's memory and cold start: peak RSS after each phase, time to /readyz, first request.

    python bench/serve_memory.py --tiny                 # checks the script in a minute
    python bench/serve_memory.py --full [--convert]     # full-size SAM 3, random weights (~20 min on 2 cores)
    python bench/serve_memory.py --model DIR            # any checkpoint directory
    SEGSERVE_VISION_BACKEND=torch SEGSERVE_DETECTOR_BACKEND=torch python bench/serve_memory.py --full --no-grid
                                                        # the torch baseline (SEGSERVE_* reach the server)

Starts `segserve serve` (a subprocess, default settings but the model, the OpenVINO cache and no
auth), waits for /readyz, then sends: one concept (the first request), three concepts, and an
empty prompt in grid mode, all on one photo. After each phase it reads the server's VmHWM (peak
resident memory since start) and VmRSS from /proc. With `--convert`, `segserve convert` runs
first, so the server reads a converted cache (its child-process peak is reported separately).
Issue 15's target: the server's peak under 8 GB on the full-size model.

`--full` builds a full-size random `sam3_video` checkpoint once (~3.8 GB, into
~/.cache/segserve/bench/full-sam3); speed and memory depend only on the architecture.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

FULL_CHECKPOINT = Path("~/.cache/segserve/bench/full-sam3").expanduser()


def make_full_sam3(path: Path) -> Path:
    """`facebook/sam3`'s architecture with random weights and the tests' byte-level tokenizer."""
    import torch
    from transformers import CLIPTokenizer, Sam3ImageProcessor, Sam3Processor, Sam3VideoConfig, Sam3VideoModel

    from segserve.testing import _byte_vocab

    if (path / "config.json").is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    vocab, merges = _byte_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 32
    torch.manual_seed(0)
    Sam3VideoModel(Sam3VideoConfig()).eval().save_pretrained(path)
    Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=tokenizer).save_pretrained(path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak since start) and VmRSS of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _photo_jpeg(shift: int = 0) -> bytes:
    """skimage's astronaut at 960x720, rolled by `shift` pixels: other content, same compute."""
    import numpy as np
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    pixels = np.roll(np.asarray(Image.fromarray(data.astronaut()).resize((960, 720))), shift, axis=1)
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def run(args: argparse.Namespace) -> None:
    if args.tiny:
        from segserve.testing import make_tiny_sam3

        model = make_tiny_sam3(Path(tempfile.mkdtemp()) / "tiny-sam3")
    elif args.full:
        model = make_full_sam3(FULL_CHECKPOINT)
    else:
        model = Path(args.model)
    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="openvino-"))
    env = {**os.environ, "SEGSERVE_MODEL": str(model), "SEGSERVE_OPENVINO_CACHE_DIR": str(cache)}
    rows: list[tuple[str, str]] = []
    if args.convert:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "segserve.cli", "convert"], env=env, check=True)
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows.append(
            ("`segserve convert` (ahead of time)", f"{time.perf_counter() - start:.0f} s, peak {child_peak:.0f} MiB")
        )

    port = _free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "segserve.cli", "serve", "--no-auth", "--port", str(port), "--request-timeout", "3600"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if args.quiet else None,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=3600) as client:
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server exited with status {server.returncode}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            ready = time.perf_counter() - start
            mem = _memory_mib(server.pid)
            rows.append(("start -> /readyz 200 (load, conversion if needed, warm-up)", f"{ready:.1f} s"))
            phases = [("after start (model loaded + warm-up)", mem)]
            requests = (
                ("first request, 1 concept", {"prompt": "person"}),
                ("3 concepts, new image content", {"prompt": "person, rocket, flag", "threshold": "0.0"}),
                ("everything, grid mode", {"prompt": "", "everything_mode": "grid"}),
            )[: 2 if args.no_grid else 3]
            for shift, (name, fields) in enumerate(requests):
                image = _photo_jpeg(shift * 7)  # each phase on its own content: the vision cache can't answer it
                began = time.perf_counter()
                answer = client.post(
                    "/v1/images/segmentation", files={"image": ("a.jpg", image)}, data={"model": "sam3", **fields}
                )
                if answer.status_code != 200:
                    raise SystemExit(f"{name}: {answer.status_code} {answer.text}")
                took = time.perf_counter() - began
                what = f"{name} ({took:.1f} s, {answer.json()['num_segments']} segments)"
                phases.append((what, _memory_mib(server.pid)))
    finally:
        server.terminate()
        server.wait(timeout=60)

    print(f"## Server memory and cold start: {'tiny' if args.tiny else model}\n")
    print("| measure | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\n| after | peak RSS (VmHWM), MiB | RSS now, MiB |")
    print("|---|---|---|")
    for name, fields in phases:
        print(f"| {name} | {fields['VmHWM']:.0f} | {fields['VmRSS']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--tiny", action="store_true", help="the tiny test model")
    which.add_argument("--full", action="store_true", help="full-size SAM 3, random weights (built once)")
    which.add_argument("--model", help="a checkpoint directory")
    parser.add_argument("--convert", action="store_true", help="run `segserve convert` before serving")
    parser.add_argument("--cache-dir", help="the OpenVINO cache to use (default: a fresh temporary one)")
    parser.add_argument("--quiet", action="store_true", help="hide the server's log")
    parser.add_argument("--no-grid", action="store_true", help="skip the grid-mode request (~5-10 min on 2 cores)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
