"""The endpoints. `POST /v1/images/segmentation` runs: auth -> readiness -> body (stream-capped) ->
field checks (missing, model, prompt, extensions) -> image bytes (upload | URL | data URI) ->
header checks (thread pool) -> inference queue (worker thread: decode, segment) -> the wire JSON.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import ClientDisconnect

from segserve.api import metrics as metrics_mod
from segserve.api.admission import SEGMENT_PATH
from segserve.api.auth import bearer_scheme, require_api_key
from segserve.api.body import parse_body
from segserve.api.fetch import fetch_image
from segserve.api.schemas import ERROR_RESPONSES, ModelList, SegmentationResponse, request_body_openapi
from segserve.api.state import AppState
from segserve.api.worker import ClientDisconnected, Ticket
from segserve.errors import (
    InvalidParameterError,
    MissingFieldError,
    ModelNotReadyError,
    SegserveError,
    ShuttingDownError,
    UnknownModelError,
)
from segserve.images import decode_image, open_image
from segserve.settings import Settings
from segserve.types import ConceptText, SegmentOptions, SegmentRequest

log = logging.getLogger("segserve.api")
router = APIRouter()

# The playground: a static page served at / and its modules under /static.
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# Status for a request whose client left while it waited (nginx's convention); never seen by a client.
CLIENT_CLOSED = 499


def _state(request: Request) -> AppState:
    return request.app.state.segserve


# --- the segmentation endpoint -----------------------------------------------------------------
@router.post(
    SEGMENT_PATH,
    summary="Segment the objects named in `prompt` (or every object) in an image",
    dependencies=[Depends(require_api_key)],
    responses={200: {"model": SegmentationResponse}, **ERROR_RESPONSES},
    openapi_extra=request_body_openapi(),
    tags=["segmentation"],
)
async def segment_image(request: Request) -> Response:
    state = _state(request)
    settings: Settings = state.settings
    if state.draining:
        raise _shutting_down(state)
    if not state.ready:
        raise _not_ready(state)

    # The queue place is taken before the body is read (by AdmissionMiddleware, before routing):
    # under overload a refusal costs no upload.
    with _queue_place(request, state) as ticket:
        try:
            body = await parse_body(request, settings)
        except ClientDisconnect:  # the client hung up mid-upload: its mistake or choice, not a server fault
            return _client_closed(request, "client went away during its upload")
        fields = body.fields
        image_ref = _check_fields(fields, has_upload=body.upload is not None, settings=settings)
        options = {name: fields.get(name) for name in SegmentOptions.model_fields}  # absent: None, the default
        visual = {name: fields.get(name) for name in SegmentRequest.VISUAL_FIELDS}  # boxes, points, ...
        seg_request = SegmentRequest.resolve(settings, prompt=fields.get("prompt") or "", **visual, **options)

        data = body.upload if body.upload is not None else await fetch_image(image_ref or "", settings)
        limits = {"max_pixels": settings.max_image_pixels, "max_aspect_ratio": settings.max_aspect_ratio}
        # The header's checks (format, pixels, aspect) answer a bad image before it waits in the queue;
        # the pixels are decoded by the job, so a queued request holds its compressed bytes (<= 20 MiB),
        # not its decoded image (143 MiB at 50 MP, times max_queue). A few header reads at a time
        # (state.decode_slots): many threads at once starve the event loop of the GIL.
        await anyio.to_thread.run_sync(functools.partial(open_image, data, **limits), limiter=state.decode_limiter)

        segmenter = state.segmenter
        assert segmenter is not None  # `ready` implies a loaded model
        metrics: metrics_mod.Metrics = state.metrics

        def job() -> bytes:
            rgb = decode_image(data, **limits)  # truncated or corrupt pixel data fails here, as a 4xx
            # Boxes and points are in the decoded (EXIF-oriented) image's pixels: only now is its size known.
            seg_request.check_inside(rgb.shape[:2])
            started = time.perf_counter()
            if seg_request.object_prompt is not None:  # interactive mode: one object, by the tracker
                result = segmenter.segment_object(rgb, seg_request.object_prompt, seg_request.options)
            else:
                result = segmenter.segment(rgb, seg_request.concepts, seg_request.options)
                # What each concept was read as (the `concepts` extension), whatever the segmenter reports.
                result.concepts = tuple(ConceptText(c.label, c.text) for c in seg_request.concepts)
            metrics.inference.observe(time.perf_counter() - started)
            return json.dumps(result.to_dict(seg_request.options.mask_format), separators=(",", ":")).encode()

        try:
            payload = await state.worker.run(
                job, timeout=settings.request_timeout, is_disconnected=request.is_disconnected, ticket=ticket
            )
        except ClientDisconnected:
            return _client_closed(request, "client went away while queued; its inference was dropped")
    return Response(payload, media_type="application/json")


@contextlib.contextmanager
def _queue_place(request: Request, state: AppState) -> Iterator[Ticket]:
    """The place AdmissionMiddleware took for this request, or one taken now: where the middleware
    did not see the request as the endpoint's (an app served under a root path, whose scope path
    carries the prefix), the route admits it itself, with the same outcome."""
    ticket = request.scope.get("state", {}).get("queue_ticket")
    if ticket is not None:
        yield ticket  # the middleware hands it back if the job never uses it
        return
    with state.worker.admit() as ticket:
        yield ticket


def _client_closed(request: Request, why: str) -> Response:
    """499 `client_closed`: counted and logged apart from errors (nobody is left to read it)."""
    request.scope.setdefault("state", {})["error_code"] = "client_closed"
    log.info("%s", why)
    return Response(status_code=CLIENT_CLOSED)


def _check_fields(fields: dict[str, Any], *, has_upload: bool, settings: Settings) -> str | None:
    """missing_field / unknown_model / wrong types of the base fields. Returns the image URL, if any."""
    model = fields.get("model")
    if model is None or (isinstance(model, str) and not model.strip()):
        raise MissingFieldError(f'The field `model` is required; use "{settings.model_name}".', param="model")
    image = fields.get("image")
    if not has_upload and (image is None or (isinstance(image, str) and not image.strip())):
        raise MissingFieldError(
            "The field `image` is required: upload the file as a multipart part named `image`, or send an "
            "http(s) URL or a data URI.",
            param="image",
        )
    if not isinstance(model, str):
        raise InvalidParameterError("`model` must be a string.", param="model")
    if model.strip().casefold() != settings.model_name.casefold():
        raise UnknownModelError(
            f"The model {model[:100]!r} is not served here. Available: {settings.model_name!r}.", param="model"
        )
    if has_upload:
        return None
    if not isinstance(image, str):
        raise InvalidParameterError("`image` must be a string: an http(s) URL or a data URI.", param="image")
    if "prompt" in fields and fields["prompt"] is not None and not isinstance(fields["prompt"], str):
        raise InvalidParameterError("`prompt` must be a string of concepts separated by commas.", param="prompt")
    return image.strip()


def _shutting_down(state: AppState) -> SegserveError:
    return ShuttingDownError(
        "The server is shutting down and takes no new requests. Retry; another instance (or this one, "
        "restarted) will answer.",
        headers={"Retry-After": str(state.settings.retry_after)},
    )


def _not_ready(state: AppState) -> SegserveError:
    if state.load_error:
        return ModelNotReadyError(f"The model failed to load; the operator must fix the server. ({state.load_error})")
    return ModelNotReadyError(
        "The model is still loading. Retry shortly; GET /readyz answers 200 once it is ready.",
        headers={"Retry-After": str(state.settings.retry_after)},
    )


# --- models --------------------------------------------------------------------------------------
@router.get(
    "/v1/models",
    summary="The models this server serves",
    dependencies=[Depends(require_api_key)],
    response_model=ModelList,
    responses={401: ERROR_RESPONSES[401]},
    tags=["segmentation"],
)
async def list_models(request: Request) -> dict[str, Any]:
    state = _state(request)
    return {
        "object": "list",
        "data": [
            {"id": state.settings.model_name, "object": "model", "created": state.started_at, "owned_by": "segserve"}
        ],
    }


# --- operations ----------------------------------------------------------------------------------
@router.get("/healthz", summary="200 while the process is alive", tags=["operations"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="200 once the model is loaded and warmed up, 503 before",
    responses={503: ERROR_RESPONSES[503]},
    tags=["operations"],
)
async def readyz(request: Request) -> Response:
    state = _state(request)
    if state.draining or not state.ready:
        err = _shutting_down(state) if state.draining else _not_ready(state)
        return JSONResponse(err.to_body(), status_code=err.status, headers=err.headers)
    settings = state.settings
    # The limits a client can check before it uploads (the playground refuses an over-limit image at
    # once instead of after a 20 MB upload); all of them are public in the docs anyway.
    limits = {
        "max_image_bytes": settings.max_image_bytes,
        "max_image_pixels": settings.max_image_pixels,
        "max_aspect_ratio": settings.max_aspect_ratio,
        "max_concepts": settings.max_concepts,
        "max_concept_chars": settings.max_concept_chars,
    }
    return JSONResponse({"status": "ready", "model": settings.model_name, "limits": limits})


async def _metrics_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> None:
    # Open by default (Prometheus scrapers rarely carry keys); SEGSERVE_METRICS_REQUIRE_KEY closes it.
    if _state(request).settings.metrics_require_key:
        await require_api_key(request, credentials)


@router.get(
    "/metrics",
    summary="Prometheus metrics (an API key only if SEGSERVE_METRICS_REQUIRE_KEY is set)",
    response_class=PlainTextResponse,
    dependencies=[Depends(_metrics_key)],
    # Spelled out: with a `model`, FastAPI would give the 401 the route's text/plain media type.
    responses={
        401: {
            "description": "invalid_api_key (only with SEGSERVE_METRICS_REQUIRE_KEY)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        }
    },
    # FastAPI lists the bearer scheme as required; the empty requirement appended here says "or no
    # key at all", which is what the default (open) configuration answers.
    openapi_extra={"security": [{}]},
    tags=["operations"],
)
async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type=metrics_mod.CONTENT_TYPE)


@router.get("/", summary="The playground page", response_class=FileResponse, tags=["playground"])
async def playground() -> Response:
    index = WEB_DIR / "index.html"
    if not index.is_file():
        return PlainTextResponse("The playground is not installed; the API is at /v1 and documented at /docs.")
    return FileResponse(index, media_type="text/html")
