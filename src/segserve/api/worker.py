"""The inference queue: model calls run on worker threads, never on the event loop.

At most `workers` jobs run and at most `max_queue` wait; a job submitted beyond that is refused at
once with 429 `server_busy` (never queued, never a hang). A request can take its place before it
reads its body (`admit()`), so under overload the refusal costs no upload and no decoding. A
waiting job whose client went away is cancelled before it starts, so no model time is spent on an
answer nobody will read. A request that waited and ran longer than its timeout gets 504; its job,
if already running, finishes on its thread (a model call cannot be interrupted) and its result is
dropped. Once the server is stopping
(`abandon_at`), a request still waiting at that moment gets 503 `shutting_down` the same way, while
a response can still be sent.

The threads and their `queue.SimpleQueue` are plain stdlib: `concurrent.futures.Future` gives the
"cancel only if not yet started" semantics (`cancel()` / `set_running_or_notify_cancel()`), which a
ThreadPoolExecutor would also give but without a bound on its queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from segserve.errors import RequestTimeoutError, ServerBusyError, ShuttingDownError

log = logging.getLogger("segserve.worker")
T = TypeVar("T")

# How often a waiting request checks whether its client is still there (seconds).
DISCONNECT_POLL_S = 0.1


class ClientDisconnected(Exception):
    """The client went away while its job waited; the job was dropped."""


class Ticket:
    """A place in the queue, taken by `InferenceWorker.admit()` and used by one job."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = False


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn
        self.future: concurrent.futures.Future = concurrent.futures.Future()


class InferenceWorker:
    def __init__(
        self,
        *,
        workers: int = 1,
        max_queue: int = 16,
        retry_after: int = 5,
        on_depth: Callable[[int, int], None] | None = None,
    ):
        if workers < 1 or max_queue < 0:
            raise ValueError(f"need workers >= 1 and max_queue >= 0, got {workers} and {max_queue}")
        self.workers = workers
        self.max_queue = max_queue
        self.retry_after = retry_after
        self._on_depth = on_depth or (lambda waiting, running: None)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting = 0  # accepted, not started, not cancelled
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._abandon_at: float | None = None  # time.monotonic() after which nobody waits any more

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        for i in range(self.workers):
            # daemon: a model call stuck forever must not keep the process alive after shutdown.
            t = threading.Thread(target=self._loop, name=f"segserve-inference-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float | None = None) -> None:
        """Let running jobs finish (up to `timeout` seconds, and never past `abandon_at`), then end the threads."""
        if self._abandon_at is not None:
            left = max(0.0, self._abandon_at - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._threads = []

    def abandon_at(self, deadline: float) -> None:
        """From `deadline` (a `time.monotonic()` value) on, requests stop waiting for their jobs and get
        503 `shutting_down`: the server is stopping and its grace period is about to run out."""
        self._abandon_at = deadline

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    # --- submission ------------------------------------------------------------------------
    @contextlib.contextmanager
    def admit(self) -> Iterator[Ticket]:
        """Take a place in the queue now, or raise `ServerBusyError`: the check a request makes
        before reading its body. The place is the request's until `run(..., ticket=)` uses it or the
        block ends (a bad request hands it back)."""
        ticket = self._reserve()
        try:
            yield ticket
        finally:
            if not ticket.used:
                with self._lock:
                    self._waiting -= 1
                    self._report()

    def submit(self, fn: Callable[[], T], ticket: Ticket | None = None) -> concurrent.futures.Future:
        """Queue `fn` (in the place `ticket` holds, or a new one): 429 when `workers + max_queue` are in."""
        if not self._threads:
            raise RuntimeError("InferenceWorker.start() was not called")
        if ticket is None:
            ticket = self._reserve()
        elif ticket.used:
            raise RuntimeError("a queue ticket runs one job")
        ticket.used = True
        job = _Job(fn)
        self._queue.put(job)
        return job.future

    def _reserve(self) -> Ticket:
        with self._lock:
            if self._waiting + self._running >= self.workers + self.max_queue:
                raise ServerBusyError(
                    f"The server is busy ({self._running} running, {self._waiting} queued). "
                    f"Retry in {self.retry_after} seconds.",
                    headers={"Retry-After": str(self.retry_after)},
                )
            self._waiting += 1
            self._report()
        return Ticket()

    def cancel(self, future: concurrent.futures.Future) -> bool:
        """Drop a job that has not started. True if it was dropped."""
        with self._lock:
            if future.cancel():
                self._waiting -= 1
                self._report()
                return True
        return False

    async def run(
        self,
        fn: Callable[[], T],
        *,
        timeout: float,
        is_disconnected: Callable[[], Awaitable[bool]] | None = None,
        ticket: Ticket | None = None,
    ) -> T:
        """Submit `fn` (in `ticket`'s place if given) and await its result; 429 when full, 504 after
        `timeout` seconds.

        While the job waits, `is_disconnected()` is polled; if it turns true the job is dropped and
        `ClientDisconnected` is raised.
        """
        future = self.submit(fn, ticket)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wrapped = asyncio.wrap_future(future)
        try:
            while True:
                if self._abandon_at is not None and time.monotonic() >= self._abandon_at:
                    self.cancel(future)  # a running job cannot be stopped: its result is dropped
                    raise ShuttingDownError(
                        "The server is shutting down and could not finish this request in time. Retry; "
                        "another instance (or this one, restarted) will answer.",
                        headers={"Retry-After": str(self.retry_after)},
                    )
                remaining = deadline - loop.time()
                if remaining <= 0:
                    self.cancel(future)
                    raise RequestTimeoutError(
                        f"The request took longer than {timeout:g} seconds (waiting plus running) and was "
                        "abandoned. Retry later, or send a smaller image or fewer concepts."
                    )
                done, _ = await asyncio.wait({wrapped}, timeout=min(remaining, DISCONNECT_POLL_S))
                if done:
                    return wrapped.result()
                # A job already running cannot be stopped; only a waiting one is dropped.
                if (
                    is_disconnected is not None
                    and not future.running()
                    and await is_disconnected()
                    and self.cancel(future)
                ):
                    raise ClientDisconnected()
        except asyncio.CancelledError:
            self.cancel(future)  # the request task itself was cancelled (server shutting down)
            raise

    # --- the threads -----------------------------------------------------------------------
    def _report(self) -> None:
        self._on_depth(self._waiting, self._running)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if not job.future.set_running_or_notify_cancel():
                    continue  # cancelled while waiting; `cancel` already counted it out
                self._waiting -= 1
                self._running += 1
                self._report()
            try:
                result = job.fn()
            except BaseException as exc:  # handed to the awaiting request, which decides the status
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)
            finally:
                with self._lock:
                    self._running -= 1
                    self._report()
