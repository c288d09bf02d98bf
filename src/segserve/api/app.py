"""`create_app(settings, segmenter=None)`: the FastAPI app. Building it does no work; the lifespan
starts the inference threads and, in the background, loads the model (when none was passed) and
runs one warm-up inference. `/readyz` turns 200 only after both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from segserve import __version__
from segserve.api.admission import SEGMENT_PATH, AdmissionMiddleware
from segserve.api.auth import KeyChecker
from segserve.api.errors import install_error_handlers
from segserve.api.middleware import RequestContextMiddleware
from segserve.api.routes import WEB_DIR, router
from segserve.api.state import AppState, decode_slots
from segserve.engine.base import Segmenter
from segserve.prompts.lexicon import get_lexicon
from segserve.settings import Settings

log = logging.getLogger("segserve.api")


class NoAPIKeyError(ValueError):
    """No key configured and `no_auth` not set: refusing to serve an open endpoint by accident."""


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
    """The app. Raises `NoAPIKeyError` when no API key is configured and `settings.no_auth` is off, and
    `GlossaryError` (every bad line, numbered) when `settings.glossary` cannot be used."""
    keys = settings.api_key_list()
    if not keys and not settings.no_auth:
        raise NoAPIKeyError(
            "No API key is configured. Set SEGSERVE_API_KEYS=key1,key2 (or SEGSERVE_API_KEYS_FILE, or "
            "`segserve serve --api-key KEY`), or pass --no-auth / SEGSERVE_NO_AUTH=1 for local use only."
        )
    if not keys:
        log.warning("authentication is OFF (--no-auth): anyone who can reach this port can use the API")
    get_lexicon(settings.glossary)  # the Chinese lexicon + glossary: a bad glossary stops the start, not a request
    state = AppState(settings, segmenter, KeyChecker(keys))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.worker.start()
        state.decode_limiter = anyio.CapacityLimiter(decode_slots(settings))
        loader: asyncio.Task | None = None
        if state.segmenter is not None and not settings.warmup:
            state.ready = True
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
        redoc_url=None,  # ReDoc loads its script from a CDN: blank on the offline machines we run on
    )
    app.state.segserve = state
    _serve_docs_offline(app)
    install_error_handlers(app)
    app.include_router(router)
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    else:
        log.warning("playground directory %s is missing; / and /static are not served", WEB_DIR)
    segment_route = next(r for r in router.routes if getattr(r, "path", None) == SEGMENT_PATH)
    app.add_middleware(AdmissionMiddleware, state=state, route=segment_route)  # inside the one below
    app.add_middleware(RequestContextMiddleware, metrics=state.metrics)
    return app
