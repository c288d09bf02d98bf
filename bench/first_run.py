"""The first requests after a fresh start: does anything one-off stall them?

    python bench/first_run.py [--requests 300] [--clients 4]

Starts a real `segserve serve` (subprocess, the tiny test model, default settings), waits for
/readyz, then sends the same mixed, seeded sequence of requests twice on the same server: the
first run after the fresh start, then a second one (steady state). The mix: text prompts of 1-3
concepts drawn from a pool (new concepts keep arriving), empty prompts in grid and vocabulary
mode, polygon and box-only mask formats, JSON bodies with a data URI and with an http URL (served
from 127.0.0.1, allowed with SEGSERVE_URL_ALLOW), at four image sizes. Each request's latency is
kept in order, so a stall shows as outliers and names the kind of request that met it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.server
import json
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import loadgen

SIZES = ((320, 240), (640, 480), (1024, 1024), (1600, 1200))
WORDS = tuple(
    [
        "cat",
        "dog",
        "person",
        "rocket",
        "flag",
        "helmet",
        "glove",
        "suit",
        "sky",
        "moon",
        "tree",
        "car",
        "bus",
        "bike",
        "boat",
        "bird",
        "cup",
        "chair",
        "table",
        "lamp",
        "book",
        "clock",
        "phone",
        "shoe",
        "hat",
        "bag",
        "door",
        "window",
        "road",
        "wall",
        "floor",
    ]
)


@dataclass
class Kind:
    name: str
    fields: dict[str, str]
    size: tuple[int, int]
    body: str  # "upload" | "data_uri" | "url"


def mix(n: int, seed: int = 0) -> list[Kind]:
    """n requests: mostly text prompts, with every other kind spread through the run."""
    rng = random.Random(seed)
    kinds = []
    for _ in range(n):
        size = rng.choice(SIZES)
        roll = rng.random()
        if roll < 0.03:
            kinds.append(Kind("everything, grid", {"prompt": ""}, size, "upload"))
        elif roll < 0.05:
            kinds.append(
                Kind("everything, vocabulary", {"prompt": "", "everything_mode": "vocabulary"}, size, "upload")
            )
        else:
            concepts = ", ".join(rng.sample(WORDS, rng.randint(1, 3)))
            fields = {"prompt": concepts, "threshold": "0.2"}
            body, name = "upload", f"{concepts.count(',') + 1} concept(s)"
            if roll < 0.13:
                fields["mask_format"], name = "polygon", name + ", polygons"
            elif roll < 0.17:
                fields["mask_format"], name = "none", name + ", boxes only"
            elif roll < 0.21:
                body, name = "data_uri", name + ", JSON data URI"
            elif roll < 0.25:
                body, name = "url", name + ", JSON URL"
            kinds.append(Kind(name, fields, size, body))
        kinds[-1].name += f", {size[0]}x{size[1]}"
    return kinds


def serve_files(folder: Path) -> int:
    """A plain HTTP server on 127.0.0.1 for the URL requests; returns its port."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd.server_address[1]


def request_bytes(port: int, kind: Kind, jpegs: dict, files_port: int, tag: str) -> bytes:
    fields = {"model": "sam3", **kind.fields}
    jpeg = jpegs[kind.size]
    if kind.body == "upload":
        content_type, body = loadgen.multipart_body(jpeg, fields)
        return loadgen.post_bytes(port, content_type, body, tag)
    if kind.body == "data_uri":
        image = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    else:
        image = f"http://127.0.0.1:{files_port}/{kind.size[0]}x{kind.size[1]}.jpg"
    return loadgen.post_bytes(port, "application/json", json.dumps({**fields, "image": image}).encode(), tag)


async def run(port: int, raws: list[bytes], clients: int) -> list[tuple[int, float, float]]:
    """(status, start, seconds) per request, in the sequence's order; `clients` at a time."""
    out: list[tuple[int, float, float]] = [(0, 0.0, 0.0)] * len(raws)
    next_index = iter(range(len(raws)))

    async def client() -> None:
        conn = loadgen.Connection(port)
        for i in next_index:
            started = time.perf_counter()
            reply = await conn.request(raws[i])
            out[i] = (reply.status, started, reply.seconds)
        await conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--slowest", type=int, default=8, help="list the N slowest requests of each run")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="for the server process")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    jpegs = {size: loadgen.photo_jpeg(*size) for size in SIZES}
    for (w, h), data in jpegs.items():
        (folder / f"{w}x{h}.jpg").write_bytes(data)
    files_port = serve_files(folder)
    kinds = mix(args.requests)
    env = {"SEGSERVE_URL_ALLOW": "127.0.0.1", **dict(e.split("=", 1) for e in args.env)}
    server = loadgen.Server(loadgen.tiny_model(), env=env)
    runs = []
    try:
        ready_s = server.wait_ready()
        for r in range(2):
            raws = [request_bytes(server.port, k, jpegs, files_port, f"run{r}-{i}") for i, k in enumerate(kinds)]
            started = time.perf_counter()
            results = loadgen.run(run(server.port, raws, args.clients))
            runs.append((results, time.perf_counter() - started))
    finally:
        server.stop()
    warm_up = [line for _, line in server.log if "warm-up" in line]

    print(
        f"## First run after a fresh start: tiny model, CPU, default settings, {args.requests} mixed requests, "
        f"{args.clients} clients; ready {ready_s:.1f} s after start ({'; '.join(warm_up) or 'no warm-up line'})\n"
    )
    print("| run | p50 ms | p95 ms | p99 ms | max ms | not 200 |")
    print("|---|---|---|---|---|---|")
    for name, (results, _) in zip(("first after start", "second (steady)"), runs, strict=True):
        p50, p95, p99 = loadgen.percentiles(s * 1000 for _, _, s in results)
        worst = max(s for _, _, s in results) * 1000
        bad = sum(1 for status, _, _ in results if status != 200)
        print(f"| {name} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {worst:.0f} | {bad} |")
    for name, (results, _) in zip(("first", "second"), runs, strict=True):
        t0 = min(start for _, start, _ in results)
        print(f"\nThe {args.slowest} slowest of the {name} run (index, start, ms, kind):")
        for i in sorted(range(len(results)), key=lambda i: -results[i][2])[: args.slowest]:
            status, start, seconds = results[i]
            print(f"- #{i} at {start - t0:.1f} s: {seconds * 1000:.0f} ms ({status}) {kinds[i].name}")


if __name__ == "__main__":
    main()
