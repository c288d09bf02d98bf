"""`--server URL`: a running segserve does the segmenting; this machine reads, sends and journals.

At most `annotate_concurrency` requests are in flight. A 429 (queue full) or 503 (warming up,
restarting) is not a failure of the image: the request waits the server's `Retry-After` (else
`annotate_backoff` seconds, doubling) and is sent again, up to `annotate_retries` times. Images are
read here (URLs through the same SSRF-safe fetcher as the server's) and uploaded, so the server
sees the same bytes as a local run and an image's size is known even when nothing is found in it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from segserve.annotate.runner import Outcome, failure
from segserve.annotate.sources import ImageRef, read_bytes
from segserve.client import ServerUnreachableError
from segserve.errors import (
    AuthenticationError,
    ModelNotReadyError,
    ServerBusyError,
    ShuttingDownError,
    TooManyConnectionsError,
)
from segserve.settings import Settings
from segserve.types import SegmentRequest

_FATAL = (AuthenticationError, ServerUnreachableError)
_RETRIED = (ServerBusyError, ModelNotReadyError, ShuttingDownError, TooManyConnectionsError)
_MAX_WAIT = 60.0  # seconds: a Retry-After beyond this is capped so a Ctrl-C is never far away


class _Skipped(Exception):
    """A stop was asked while the image waited to be retried: it stays pending in the journal."""


class RemoteBackend:
    def __init__(
        self,
        server: str,
        api_key: str | None,
        prompt: str,
        request: SegmentRequest,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        from segserve.client import Client

        self.settings, self.prompt, self.request = settings, prompt, request
        self.client = Client(server, api_key=api_key, transport=transport)
        self.name = f"{server.rstrip('/')} ({self.client.model})"
        options = request.options.model_dump()
        options["mask_format"] = "rle"
        self.options = options

    def run(self, refs: Sequence[ImageRef], stop: threading.Event) -> Iterator[tuple[ImageRef, Outcome]]:
        width = self.settings.annotate_concurrency
        todo = iter(refs)
        running: dict[Future, ImageRef] = {}
        with ThreadPoolExecutor(width, thread_name_prefix="annotate-send") as pool:
            try:
                while True:
                    while len(running) < width and not stop.is_set():
                        ref = next(todo, None)
                        if ref is None:
                            break
                        running[pool.submit(self._one, ref, stop)] = ref
                    if not running:
                        return
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        ref = running.pop(future)
                        try:
                            yield ref, future.result()
                        except _Skipped:
                            continue
            finally:
                for future in running:
                    future.cancel()
                self.client.close()

    def _one(self, ref: ImageRef, stop: threading.Event) -> Outcome:
        try:
            data = read_bytes(ref, self.settings)
        except Exception as exc:
            return failure(exc)
        delay = self.settings.annotate_backoff
        for attempt in range(self.settings.annotate_retries + 1):
            try:
                return self.client.segment(data, prompt=self.prompt, **self.options)
            except _FATAL:
                raise  # every image would fail the same way: stop the run, the journal keeps its place
            except _RETRIED as exc:
                if attempt == self.settings.annotate_retries:
                    return exc
                asked = _retry_after(exc)
                wait_s = min(delay if asked is None else asked, _MAX_WAIT)
                delay *= 2
                if stop.wait(wait_s):
                    raise _Skipped from None
            except Exception as exc:  # the image's own error (413, 422, ...) or the server's: journaled
                return failure(exc)
        raise AssertionError("unreachable")


def _retry_after(exc: Any) -> float | None:
    """The server's Retry-After in seconds (the delta form segserve sends); None when absent."""
    value = {k.lower(): v for k, v in exc.headers.items()}.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
