"""Shared by bench/overload.py and bench/first_run.py: a real `segserve serve` subprocess on
127.0.0.1, a lean HTTP/1.1 load client, request bodies and percentiles.

The client is raw asyncio streams over keep-alive connections with the request bytes built once:
on a 2-core machine the load generator shares the CPU with the server, and an HTTP library's
per-request cost (httpx: several ms) would show up in the very latencies being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

API_KEY = "bench-key"
PATH = "/v1/images/segmentation"
T = TypeVar("T")
# One access-log line per request (middleware.py): "<id> POST /v1/... 429 server_busy 1.2ms".
_ACCESS = re.compile(r"segserve\.access: (\S+) (\S+) (\S+) (\d+) (\S+) ([\d.]+)ms")


def photo_jpeg(width: int, height: int, quality: int = 90) -> bytes:
    """skimage's astronaut resized to width x height: a photo-like upload of realistic size."""
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((width, height), Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def multipart_body(jpeg: bytes, fields: dict[str, str]) -> tuple[str, bytes]:
    """(content type, body) of a multipart form with the file part `image`, as the reference client
    sends it."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + jpeg
        + b"\r\n"
    )
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def post_bytes(port: int, content_type: str, body: bytes, request_id: str) -> bytes:
    """The whole POST, ready to write; `request_id` joins it to the server's access-log line."""
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Reply:
    status: int
    seconds: float
    headers: dict[str, str]
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed it."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> Reply:
        started = time.perf_counter()
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=2**20)
        assert self.reader is not None
        self.writer.write(raw)
        # Reading starts before the upload is drained: a 429 may (and should) arrive before the
        # server has read the body.
        drain = asyncio.ensure_future(self.writer.drain())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        await drain
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, time.perf_counter() - started, headers, body)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def percentiles(samples: Iterable[float], qs: tuple[float, ...] = (50, 95, 99)) -> list[float]:
    values = np.asarray(list(samples), dtype=float)
    if len(values) == 0:
        return [float("nan")] * len(qs)
    return [float(np.percentile(values, q)) for q in qs]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the server ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`segserve serve` in a subprocess, its log captured line by line with the time each arrived."""

    def __init__(self, model: Path | float, *flags: str, env: dict[str, str] | None = None):
        """`model`: a checkpoint directory, or a number of seconds: then a stand-in model that
        sleeps that long per request (no CPU), to see the HTTP path without the model's load."""
        self.port = free_port()
        self.started = time.perf_counter()
        base = {k: v for k, v in os.environ.items() if not k.startswith("SEGSERVE_")}
        base.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})})
        if isinstance(model, Path):
            command = [sys.executable, "-m", "segserve.cli", "serve", "--model", str(model)]
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "--sleep", str(model)]
        command += ["--port", str(self.port), "--api-key", API_KEY, *flags]
        self.proc = subprocess.Popen(
            command,
            env=base,
            cwd=tempfile.mkdtemp(),  # no .env of the checkout is read
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.log: list[tuple[float, str]] = []
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append((time.perf_counter(), line.rstrip("\n")))

    def wait_ready(self, timeout: float = 600.0) -> float:
        """Seconds from the process start until /readyz said 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited:\n" + "\n".join(line for _, line in self.log))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(
                        f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n\r\n".encode()
                    )
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"/readyz did not turn 200 within {timeout:.0f} s")

    def access_ms(self, status: int | None = None) -> dict[str, float]:
        """Server-side milliseconds per request id, from the access log."""
        found = {}
        for _, line in self.log:
            m = _ACCESS.search(line)
            if m and (status is None or int(m.group(4)) == status):
                found[m.group(1)] = float(m.group(6))
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def tiny_model() -> Path:
    from segserve.testing import make_tiny_sam3

    return make_tiny_sam3(Path(tempfile.mkdtemp()) / "tiny-sam3")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop when it is installed (uvicorn's own loop: the client stays cheap)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


class SleepingSegmenter:
    """A stand-in model: sleeps (holding its worker thread, using no CPU) and finds nothing."""

    model_id = "sleeping"

    def __init__(self, seconds: float):
        self.seconds = seconds

    def segment(self, image: Any, concepts: Any = (), options: Any = None) -> Any:
        from segserve.types import SegmentationResult

        time.sleep(self.seconds)
        return SegmentationResult.empty(image.shape[:2])


def _serve_sleeping(argv: list[str]) -> int:
    """`python bench/loadgen.py --sleep S --port P --api-key K [--max-queue N] [--workers N]`: the real
    app and runner (`segserve serve`'s) around `SleepingSegmenter(S)`."""
    import argparse

    from segserve.api.app import create_app
    from segserve.api.serve import configure_logging
    from segserve.api.serve import run as serve
    from segserve.settings import Settings

    parser = argparse.ArgumentParser()
    for flag, kind in (
        ("--sleep", float),
        ("--port", int),
        ("--api-key", str),
        ("--max-queue", int),
        ("--workers", int),
    ):
        parser.add_argument(flag, type=kind)
    args = parser.parse_args(argv)
    known = {"max_queue": args.max_queue, "workers": args.workers}
    settings = Settings(api_keys=args.api_key, port=args.port, **{k: v for k, v in known.items() if v is not None})
    configure_logging()
    return serve(settings, app=create_app(settings, SleepingSegmenter(args.sleep)))


if __name__ == "__main__":
    sys.exit(_serve_sleeping(sys.argv[1:]))
