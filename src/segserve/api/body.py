"""Request body -> fields: the three body forms of the contract, with every size limit enforced
while the bytes arrive (nothing larger than the limit is ever buffered).

- multipart/form-data: Starlette's parser with `max_fields`, `max_files` and `max_part_size`
  (text fields); file parts spool to disk past 1 MiB and are measured against `max_image_bytes`.
- application/x-www-form-urlencoded: Starlette's parser, same field limits.
- application/json: the body, read up to `max_json_bytes`, must be one object.

The whole body is capped too: a declared `Content-Length` over the cap is refused before reading,
and a body that streams past it is cut off at the cap. A body that stalls (`body_timeout` between
chunks, `body_total_timeout` in all) is answered 408 `request_timeout` and its connection closed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive

from segserve.errors import ClientTimeoutError, ImageTooLargeError, InvalidParameterError
from segserve.settings import Settings
from segserve.types import SegmentOptions, SegmentRequest

# Room for the text fields and multipart framing on top of the image itself.
_FORM_OVERHEAD = 64 * 1024

# Fields the API reads; any other field is ignored, but these may appear once only.
KNOWN_FIELDS = ("model", "image", "prompt", *SegmentRequest.VISUAL_FIELDS, *SegmentOptions.model_fields)


@dataclass
class ParsedBody:
    fields: dict[str, Any] = field(default_factory=dict)  # text (form) or JSON values
    upload: bytes | None = None  # the image file part's bytes, if one was sent


def _too_large(limit: int, what: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"The {what} is larger than the limit of {limit:,} bytes. Send a smaller (re-compressed or downscaled) image.",
        param="image",
    )


def _capped(receive: Receive, limit: int, what: str, settings: Settings) -> Receive:
    """Wrap ASGI `receive` so the body stops being read once it passes `limit` bytes, or once it
    stalls: no chunk for `body_timeout` seconds, or not all of it within `body_total_timeout`.

    The stall limit is a gap between chunks, not a rate, so a slow but steady upload on a poor link
    gets through; the total bounds how long a trickle (a byte now and then) can hold the connection
    and, since the body is read after admission, a place in the inference queue.
    """
    seen = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.body_total_timeout

    async def wrapped() -> Message:
        nonlocal seen
        left = deadline - loop.time()
        wait = min(settings.body_timeout, left)
        try:
            message = await asyncio.wait_for(receive(), timeout=max(wait, 0))
        except TimeoutError:
            raise _body_timeout(settings, whole=left <= settings.body_timeout) from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit, what)
        return message

    return wrapped


def _body_timeout(settings: Settings, *, whole: bool) -> ClientTimeoutError:
    why = (
        f"The request body did not arrive within {settings.body_total_timeout:g} seconds."
        if whole
        else f"The request body stopped arriving: nothing came for {settings.body_timeout:g} seconds."
    )
    # The rest of the body may still come: the connection cannot carry another request, so it ends here.
    return ClientTimeoutError(f"{why} Send the whole body without pausing.", headers={"Connection": "close"})


def _check_declared_length(request: Request, limit: int, what: str) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, what)


async def parse_body(request: Request, settings: Settings) -> ParsedBody:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _parse_form(request, settings)
    if content_type == "application/json" or content_type.endswith("+json"):
        return await _parse_json(request, settings)
    raise InvalidParameterError(
        f"Unsupported Content-Type {content_type or '(none)'!r}. Send multipart/form-data (file upload), "
        "application/x-www-form-urlencoded or application/json.",
        param=None,
    )


async def _parse_form(request: Request, settings: Settings) -> ParsedBody:
    # The image is either the file part or one text field (both at once is refused), so the body
    # holds at most the larger of the two plus small fields and framing.
    limit = max(settings.max_image_bytes, settings.max_field_bytes) + _FORM_OVERHEAD
    _check_declared_length(request, limit, "request body")
    capped = Request(request.scope, _capped(request.receive, limit, "request body", settings))
    try:
        form = await capped.form(
            max_files=1, max_fields=settings.max_form_fields, max_part_size=settings.max_field_bytes
        )
    except HTTPException as exc:  # Starlette's MultiPartException: too many fields/files, field too big
        raise InvalidParameterError(
            f"The form could not be accepted: {exc.detail} Limits: {settings.max_form_fields} fields, "
            f"{settings.max_field_bytes:,} bytes per text field, one file (the image).",
        ) from None
    try:
        body = ParsedBody()
        for name in KNOWN_FIELDS:
            values = form.getlist(name)
            if len(values) > 1:
                hint = " Send either a file part or a URL, not both." if name == "image" else ""
                raise InvalidParameterError(f"The field `{name}` was sent {len(values)} times.{hint}", param=name)
            if not values:
                continue
            value = values[0]
            if isinstance(value, UploadFile):
                if name != "image":
                    raise InvalidParameterError(f"`{name}` must be a text field, not a file.", param=name)
                if value.size is not None and value.size > settings.max_image_bytes:
                    raise _too_large(settings.max_image_bytes, "image")
                body.upload = await value.read()
                if len(body.upload) > settings.max_image_bytes:
                    raise _too_large(settings.max_image_bytes, "image")
            elif value == "" and (name in SegmentOptions.model_fields or name in SegmentRequest.VISUAL_FIELDS):
                # An HTML form's blank input means "not given" (the default). Only in forms: in JSON
                # an empty string is a value of the wrong kind and is refused like any other.
                continue
            elif name in SegmentRequest.VISUAL_FIELDS:
                body.fields[name] = _json_field(name, value)  # a form carries them JSON-encoded
            else:
                body.fields[name] = value
        return body
    finally:
        await form.close()


def _json_field(name: str, value: str) -> Any:
    """A visual-prompt field of a form body: JSON text such as `[[10, 20, 200, 240]]`."""
    try:
        # A text field is at most max_field_bytes, so its nesting is bounded; deeper than the
        # interpreter allows is still only a client error.
        return json.loads(value)
    except (ValueError, RecursionError):
        raise InvalidParameterError(
            f"`{name}` must be JSON in a form body, e.g. boxes=[[10, 20, 200, 240]], box_labels=[1, 0], "
            f"points=[[120, 80]], box=[10, 20, 200, 240], multimask=true; got {value[:60]!r}.",
            param=name,
        ) from None


async def _parse_json(request: Request, settings: Settings) -> ParsedBody:
    limit = settings.max_json_bytes
    _check_declared_length(request, limit, "JSON body")
    capped = Request(request.scope, _capped(request.receive, limit, "JSON body", settings))
    raw = await capped.body()
    too_deep = InvalidParameterError(
        f"The JSON body is nested more than {settings.max_json_depth} levels deep; send a flat object of fields."
    )
    try:
        data = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # malformed JSON, bad UTF-8, or an integer of more than 4,300 digits
        raise InvalidParameterError(f"The body is not valid JSON: {str(exc)[:200]}.") from None
    # The parser's own depth check follows the interpreter's recursion limit, which depends on how deep
    # the caller's stack is and on what else raised the limit: bound the depth ourselves, the same always.
    if _depth(data, settings.max_json_depth) > settings.max_json_depth:
        raise too_deep
    if not isinstance(data, dict):
        raise InvalidParameterError(
            'The JSON body must be an object such as {"model": "sam3", "image": "https://...", "prompt": "dog"}.'
        )
    return ParsedBody(fields={k: v for k, v in data.items() if k in KNOWN_FIELDS})


def _depth(value: object, limit: int) -> int:
    """How deep `value` nests arrays and objects, counted up to `limit + 1` (iterative: no recursion).

    >>> _depth({"a": [1, [2]]}, 32)
    3
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        deepest = max(deepest, level)
        if level > limit:
            return level
        stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
