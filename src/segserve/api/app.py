"""`create_app(settings, segmenter=None)`: the FastAPI app. Building it does no work; the lifespan
starts the inference threads and, in the background, loads the model (when none was passed) and
runs one warm-up inference. `/readyz` turns 200 only after both.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from segserve import __version__
from segserve.api.auth import KeyChecker
from segserve.api.errors import install_error_handlers
from segserve.api.metrics import Metrics
from segserve.api.middleware import RequestContextMiddleware
from segserve.api.routes import router
from segserve.api.worker import InferenceWorker
from segserve.engine.base import Segmenter
from segserve.settings import Settings
from segserve.types import SegmentOptions

log = logging.getLogger("segserve.api")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class NoAPIKeyError(ValueError):
    """No key configured and `no_auth` not set: refusing to serve an open endpoint by accident."""


class AppState:
    """Everything the routes need, on `app.state.segserve`."""

    def __init__(self, settings: Settings, segmenter: Segmenter | None, keys: KeyChecker):
        self.settings = settings
        self.segmenter = segmenter
        self.keys = keys
        self.ready = False
        self.load_error: str | None = None
        self.started_at = int(time.time())
        self.accepts_everything_mode = False
        self.metrics = Metrics(get_engine_stats=lambda: getattr(self.segmenter, "stats", None))
        self.worker = InferenceWorker(
            workers=settings.workers,
            max_queue=settings.max_queue,
            retry_after=settings.retry_after,
            on_depth=self._on_depth,
        )

    def _on_depth(self, waiting: int, running: int) -> None:
        self.metrics.queue_depth.set(waiting)
        self.metrics.running.set(running)

    async def load_and_warm_up(self) -> None:
        """Load the model (if none was injected) and run one inference, off the event loop."""
        settings = self.settings
        try:
            if self.segmenter is None:
                from segserve.engine.sam3 import Sam3Segmenter  # torch import: only when serving

                log.info("loading model %s", settings.model)
                self.segmenter = await run_in_threadpool(Sam3Segmenter.from_settings, settings)
            self.accepts_everything_mode = _accepts_keyword(self.segmenter, "everything_mode")
            if settings.warmup:
                started = time.perf_counter()
                await self.worker.run(self._warm_up, timeout=max(settings.request_timeout, 600.0))
                log.info("warm-up inference took %.2fs", time.perf_counter() - started)
        except Exception as exc:
            self.load_error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.exception("the model could not be loaded or warmed up; /readyz stays 503")
            return
        self.ready = True
        log.info("ready: serving %r", settings.model_name)

    def _warm_up(self) -> None:
        # One small real inference: first-call costs (kernel selection, allocator growth) are paid here.
        image = np.full((64, 64, 3), 127, dtype=np.uint8)
        assert self.segmenter is not None
        self.segmenter.segment(image, ["object"], SegmentOptions())


def _accepts_keyword(segmenter: object, name: str) -> bool:
    try:
        params = inspect.signature(segmenter.segment).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError, AttributeError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _serve_docs_offline(app: FastAPI) -> None:
    """`/docs` with Swagger UI from the `swagger-ui-bundle-v2` wheel: FastAPI's default page loads it
    from a CDN, which leaves a blank page on the offline machines people self-host on."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="segserve API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def create_app(settings: Settings, segmenter: Segmenter | None = None) -> FastAPI:
    """The app. Raises `NoAPIKeyError` when no API key is configured and `settings.no_auth` is off."""
    keys = settings.api_key_list()
    if not keys and not settings.no_auth:
        raise NoAPIKeyError(
            "No API key is configured. Set SEGSERVE_API_KEYS=key1,key2 (or SEGSERVE_API_KEYS_FILE, or "
            "`segserve serve --api-key KEY`), or pass --no-auth / SEGSERVE_NO_AUTH=1 for local use only."
        )
    if not keys:
        log.warning("authentication is OFF (--no-auth): anyone who can reach this port can use the API")
    state = AppState(settings, segmenter, KeyChecker(keys))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.worker.start()
        loader: asyncio.Task | None = None
        if state.segmenter is not None and not settings.warmup:
            state.ready = True
            state.accepts_everything_mode = _accepts_keyword(state.segmenter, "everything_mode")
        else:
            loader = asyncio.create_task(state.load_and_warm_up())
        try:
            yield
        finally:
            if loader is not None and not loader.done():
                loader.cancel()  # stops the waiting; a load already in its thread runs out on its own
            await run_in_threadpool(state.worker.stop, settings.shutdown_grace)

    app = FastAPI(
        title="segserve",
        version=__version__,
        description="Self-hosted SAM 3 image segmentation, compatible with `POST /v1/images/segmentation`.",
        lifespan=lifespan,
        docs_url=None,  # replaced below by a page whose assets come from this server, not a CDN
    )
    app.state.segserve = state
    _serve_docs_offline(app)
    install_error_handlers(app)
    app.include_router(router)
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    else:
        log.warning("playground directory %s is missing; / and /static are not served", WEB_DIR)
    app.add_middleware(RequestContextMiddleware, metrics=state.metrics)
    return app
