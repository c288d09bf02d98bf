"""`AppState`: what the routes share - settings, the segmenter, keys, readiness, metrics, the worker -
on `app.state.segserve`. It loads the model and warms it up in the background at start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
import numpy as np
from starlette.concurrency import run_in_threadpool

from segserve.api.auth import KeyChecker
from segserve.api.metrics import Metrics
from segserve.api.worker import InferenceWorker
from segserve.engine.base import Segmenter
from segserve.errors import SegserveError
from segserve.settings import Settings
from segserve.types import SegmentRequest

log = logging.getLogger("segserve.api")

# Answers to requests cut short by a shutdown must leave this long before the grace period ends.
SHUTDOWN_MARGIN_S = 1.0


def decode_slots(settings: Settings) -> int:
    """Images whose headers are checked at once, on threads, before their request is queued (the
    pixels are decoded later by the job, on the worker). Many threads at once hold the GIL in turns
    and starve the event loop: 17 decodes together (a full queue's worth) turned ~1 ms refusals into
    600 ms ones (bench/README.md, Overload)."""
    return settings.workers


class AppState:
    """Everything the routes need, on `app.state.segserve`."""

    def __init__(self, settings: Settings, segmenter: Segmenter | None, keys: KeyChecker):
        self.settings = settings
        self.segmenter = segmenter
        self.keys = keys
        self.ready = False
        self.draining = False  # SIGTERM received: no new work; /readyz says 503
        self.load_error: str | None = None
        self.started_at = int(time.time())
        # Called once when the model fails to load and `settings.exit_on_load_error` is on: the
        # runner stops the server so the process exits non-zero (`segserve serve` sets it).
        self.on_fatal: Callable[[], None] | None = None
        self.metrics = Metrics(get_engine_stats=lambda: getattr(self.segmenter, "stats", None))
        # Threads for header checks, made in the lifespan (they belong to its event loop): see `decode_slots`.
        self.decode_limiter: anyio.CapacityLimiter | None = None
        self.worker = InferenceWorker(
            workers=settings.workers,
            max_queue=settings.max_queue,
            retry_after=settings.retry_after,
            on_depth=self._on_depth,
        )

    def begin_shutdown(self, grace: float) -> None:
        """The process was asked to stop: refuse new requests, and answer the ones still waiting with
        503 just before the `grace` seconds the server gives them run out (a JSON answer, where the
        server would otherwise cut them off)."""
        self.draining = True
        margin = min(SHUTDOWN_MARGIN_S, grace / 2)
        self.worker.abandon_at(time.monotonic() + grace - margin)

    def _on_depth(self, waiting: int, running: int) -> None:
        self.metrics.queue_depth.set(waiting)
        self.metrics.running.set(running)

    async def load_and_warm_up(self) -> None:
        """Load the model (if none was injected) and run one inference, off the event loop."""
        settings = self.settings
        try:
            if self.segmenter is None:
                log.info("loading model %s", settings.model)
                self.segmenter = await run_in_threadpool(_load_segmenter, settings)
            if settings.warmup:
                started = time.perf_counter()
                await self.worker.run(self._warm_up, timeout=max(settings.request_timeout, 600.0))
                log.info("warm-up inference took %.2fs", time.perf_counter() - started)
        except Exception as exc:
            self.load_error = exc.message if isinstance(exc, SegserveError) else f"{type(exc).__name__}: {exc}"
            if settings.exit_on_load_error and self.on_fatal is not None:
                log.debug("model load failure", exc_info=True)
                log.error(
                    "the model could not be loaded or warmed up: %s -- exiting (set SEGSERVE_EXIT_ON_LOAD_ERROR=0 "
                    "to stay up and answer 503 instead)",
                    self.load_error,
                )
                self.on_fatal()
            else:
                log.exception("the model could not be loaded or warmed up; /readyz stays 503")
            return
        self.ready = True
        log.info("ready: serving %r", settings.model_name)

    def _warm_up(self) -> None:
        assert self.segmenter is not None
        # The engine's own warm-up pays every request kind's one-off costs (the tracker, the
        # vocabulary's text, OpenCV); without one, one small real inference pays the first call's.
        warm_up = getattr(self.segmenter, "warm_up", None)
        if callable(warm_up):
            warm_up()
            return
        image = np.full((64, 64, 3), 127, dtype=np.uint8)
        request = SegmentRequest.resolve(self.settings, prompt="object")
        self.segmenter.segment(image, request.concepts, request.options)


def _load_segmenter(settings: Settings) -> Segmenter:
    """The engine `settings` describes, imported and loaded on a worker thread: importing
    transformers' SAM 3 takes 1-14 s (warm or cold disk cache), and on the event loop it left
    /healthz and /readyz unanswered for that long."""
    from segserve.engine.sam3 import Sam3Segmenter  # torch and transformers: only when serving

    return Sam3Segmenter.from_settings(settings)
