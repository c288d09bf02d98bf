"""Python SDK for a segserve server (or any server of the same API).

>>> from segserve import Client
>>> with Client("http://localhost:8000", api_key="KEY") as client:   # doctest: +SKIP
...     result = client.segment("photo.jpg", prompt="person, dog")
...     result.cutout(0).save("person.png")

`image` may be a file path, bytes, a PIL image, a numpy array, an http(s) URL or a data URI. Files,
bytes and pictures are uploaded (multipart); URLs and data URIs travel as JSON. The answer is a
`SegmentationResult` with decoded masks, carrying the image whenever the client has it (everything
but http(s) URLs) so that `cutout()` and `overlay()` work. An error answer raises the same typed
exception the server raised (`segserve.errors`), with its status, code, message and param.

Only httpx, numpy and Pillow are needed: no torch.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from segserve.errors import ERRORS_BY_CODE, InvalidRequestError, SegserveError
from segserve.images import is_data_uri
from segserve.prompts import Box, Concept, Point
from segserve.settings import Settings
from segserve.types import SegmentationResult

__all__ = ["AsyncClient", "Client", "ServerUnreachableError"]

ImageInput = str | PathLike | bytes | Image.Image | np.ndarray
# Visual prompts: a `Box`/`Point`, or plain (x0, y0, x1, y1) / (x, y) numbers, in the image's pixels.
BoxLike = Box | Sequence[float]
PointLike = Point | Sequence[float]
# A queued request may wait and run for the server's `request_timeout`: wait at least that long.
DEFAULT_TIMEOUT = Settings.model_fields["request_timeout"].default
_PATH = "/v1/images/segmentation"


class ServerUnreachableError(SegserveError):
    """No HTTP answer at all: connection refused, DNS failure, timeout. Raised by the SDK only."""

    status = 0
    type = "connection_error"
    code = "server_unreachable"


# --- the parts shared by Client and AsyncClient -----------------------------------------------
def _is_reference(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://")) or is_data_uri(value)


def _picture_to_png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "PNG")  # lossless: the server sees exactly these pixels
    return buf.getvalue()


def _local_image(data: bytes) -> np.ndarray | None:
    """The RGB array the server will see (same decoder, same EXIF rotation); None if it can't be read."""
    from segserve.images import decode_image

    try:
        return decode_image(data, max_pixels=1 << 62, max_aspect_ratio=float("inf"))
    except SegserveError:
        return None  # the server will answer with the precise error


def _build(
    model: str, image: ImageInput, prompt: str, options: dict[str, Any]
) -> tuple[dict[str, Any], np.ndarray | None]:
    """-> (keyword arguments for httpx's `request`, the image as the server will see it or None)."""
    fields = {"model": model, "prompt": prompt or ""}
    fields.update({k: v for k, v in options.items() if v is not None})
    if isinstance(image, str) and _is_reference(image):
        picture = None
        if is_data_uri(image):
            _, _, payload = image.partition(",")
            try:
                picture = _local_image(base64.b64decode(payload))
            except ValueError:
                picture = None
        return {"json": {**fields, "image": image}}, picture
    if isinstance(image, (str, PathLike)):
        path = Path(image)
        data = path.read_bytes()
        return _multipart(fields, path.name, data), _local_image(data)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return _multipart(fields, "image", data), _local_image(data)
    if isinstance(image, (Image.Image, np.ndarray)):
        from segserve.images import to_rgb_array

        arr = to_rgb_array(image)
        return _multipart(fields, "image.png", _picture_to_png(arr)), arr
    raise TypeError(
        f"image must be a path, bytes, a PIL image, a numpy array or an http(s)/data URL, got {type(image).__name__}"
    )


def _multipart(fields: dict[str, Any], filename: str, data: bytes) -> dict[str, Any]:
    return {
        # A form field is text: the visual prompts (lists, booleans) travel JSON-encoded.
        "data": {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()},
        "files": {"image": (filename, data, "application/octet-stream")},
    }


def _error_from(response: httpx.Response) -> SegserveError:
    """An error answer -> the typed exception of `segserve.errors` (status, code, message, param)."""
    try:
        err = response.json()["error"]
        code, message, param = str(err.get("code", "")), str(err.get("message", "")), err.get("param")
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, param = "", response.text[:500] or response.reason_phrase, None
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = InvalidRequestError if 400 <= response.status_code < 500 else SegserveError
    exc = cls(message or f"HTTP {response.status_code}", param=param, headers=dict(response.headers))
    # Unknown codes (a proxy's 502, a newer server) still carry what the server said.
    if exc.status != response.status_code:
        exc.status = response.status_code  # type: ignore[misc]
    if code and exc.code != code:
        exc.code = code  # type: ignore[misc]
    return exc


def _result(response: httpx.Response, picture: np.ndarray | None) -> SegmentationResult:
    if response.status_code != 200:
        raise _error_from(response)
    data = response.json()
    if picture is not None:
        sizes = {tuple(s["mask"]["size"]) for s in data.get("segments", []) if s.get("mask")}
        if sizes and sizes != {picture.shape[:2]}:
            picture = None  # the server decoded differently (should not happen): keep the masks, drop the picture
    return SegmentationResult.from_dict(data, image=picture)


def _options(
    threshold: float | None,
    mask_threshold: float | None,
    max_segments: int | None,
    mask_format: str | None,
    everything_mode: str | None,
    label_language: str | None = None,
) -> dict[str, Any]:
    return {
        "threshold": threshold,
        "mask_threshold": mask_threshold,
        "max_segments": max_segments,
        "mask_format": mask_format,
        "everything_mode": everything_mode,
        "label_language": label_language,
    }


def _visual(
    boxes: Sequence[BoxLike] | None,
    box_labels: Sequence[int | bool] | None,
    concepts: Sequence[Concept | str | dict[str, Any]] | None,
    points: Sequence[PointLike] | None,
    point_labels: Sequence[int | bool] | None,
    box: BoxLike | None,
    multimask: bool | None,
) -> dict[str, Any]:
    """The visual-prompt fields of the wire format (README "Visual prompts"), None left out.

    `Box`/`Point` objects carry their own label (`positive`); an explicit `box_labels`/`point_labels`
    wins. Nothing is checked here: the server answers a bad value with a 400 naming the field.
    """
    fields: dict[str, Any] = {}
    if boxes is not None:
        fields["boxes"] = [_xyxy(b) for b in boxes]
        labels = box_labels if box_labels is not None else _own_labels(boxes)
        if labels is not None:
            fields["box_labels"] = [int(v) for v in labels]
    elif box_labels is not None:
        fields["box_labels"] = [int(v) for v in box_labels]
    if concepts is not None:
        fields["concepts"] = [_concept(c) for c in concepts]
    if points is not None:
        fields["points"] = [[p.x, p.y] if isinstance(p, Point) else list(p) for p in points]
        labels = point_labels if point_labels is not None else _own_labels(points)
        if labels is not None:
            fields["point_labels"] = [int(v) for v in labels]
    elif point_labels is not None:
        fields["point_labels"] = [int(v) for v in point_labels]
    if box is not None:
        fields["box"] = _xyxy(box)
    if multimask is not None:
        fields["multimask"] = bool(multimask)
    return fields


def _xyxy(box: BoxLike) -> list[float]:
    return list(box.xyxy) if isinstance(box, Box) else list(box)


def _own_labels(items: Sequence[Any]) -> list[bool] | None:
    """The `positive` flags of `Box`/`Point` items, when any is negative (else the server's default)."""
    flags = [getattr(item, "positive", True) for item in items]
    return None if all(flags) else flags


def _concept(concept: Concept | str | dict[str, Any]) -> dict[str, Any]:
    """One entry of `concepts`: a `Concept` (text, label, exemplar boxes), a plain text, or a wire dict."""
    if isinstance(concept, dict):
        return concept
    if isinstance(concept, str):
        return {"text": concept}
    entry: dict[str, Any] = {"label": concept.label}
    if concept.text is not None:
        entry["text"] = concept.text
    if concept.boxes:
        entry["boxes"] = [list(b.xyxy) for b in concept.boxes]
        entry["box_labels"] = [int(b.positive) for b in concept.boxes]
    return entry


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


# --- the clients ------------------------------------------------------------------------------
class Client:
    """Synchronous client. `transport=` lets tests call an app in-process (no sockets)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        model: str = "sam3",
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ):
        self.model = model
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def segment(
        self,
        image: ImageInput,
        prompt: str = "",
        *,
        boxes: Sequence[BoxLike] | None = None,
        box_labels: Sequence[int | bool] | None = None,
        concepts: Sequence[Concept | str | dict[str, Any]] | None = None,
        points: Sequence[PointLike] | None = None,
        point_labels: Sequence[int | bool] | None = None,
        box: BoxLike | None = None,
        multimask: bool | None = None,
        threshold: float | None = None,
        mask_threshold: float | None = None,
        max_segments: int | None = None,
        mask_format: str | None = None,
        everything_mode: str | None = None,
        label_language: str | None = None,
    ) -> SegmentationResult:
        """Segment `image`; options left as None take the server's defaults. `label_language="zh"`
        labels vocabulary-mode segments in Chinese; `result.concepts` says what each concept was read as.

        Visual prompts, in the image's pixels (after EXIF orientation, origin top-left): `boxes`
        (xyxy, `box_labels` 1/0) are exemplars of the prompt's one concept; `concepts` gives several,
        each a `segserve.Concept(label, text, boxes=...)` (text None: exemplars only); `points`
        (`point_labels`) and/or `box` segment one object (interactive mode), `multimask=True` for
        the tracker's 3 candidates."""
        opts = _options(threshold, mask_threshold, max_segments, mask_format, everything_mode, label_language)
        opts.update(_visual(boxes, box_labels, concepts, points, point_labels, box, multimask))
        kwargs, picture = _build(self.model, image, prompt, opts)
        return _result(self._send("POST", _PATH, **kwargs), picture)

    def models(self) -> list[dict[str, Any]]:
        """The models the server serves (`GET /v1/models` -> its `data` list)."""
        response = self._send("GET", "/v1/models")
        if response.status_code != 200:
            raise _error_from(response)
        return list(response.json()["data"])

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"Could not reach {self._http.base_url}: {exc}") from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient:
    """The same API for asyncio code: `async with AsyncClient(...) as c: await c.segment(...)`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        model: str = "sam3",
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.model = model
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def segment(
        self,
        image: ImageInput,
        prompt: str = "",
        *,
        boxes: Sequence[BoxLike] | None = None,
        box_labels: Sequence[int | bool] | None = None,
        concepts: Sequence[Concept | str | dict[str, Any]] | None = None,
        points: Sequence[PointLike] | None = None,
        point_labels: Sequence[int | bool] | None = None,
        box: BoxLike | None = None,
        multimask: bool | None = None,
        threshold: float | None = None,
        mask_threshold: float | None = None,
        max_segments: int | None = None,
        mask_format: str | None = None,
        everything_mode: str | None = None,
        label_language: str | None = None,
    ) -> SegmentationResult:
        """`Client.segment`, awaited."""
        opts = _options(threshold, mask_threshold, max_segments, mask_format, everything_mode, label_language)
        opts.update(_visual(boxes, box_labels, concepts, points, point_labels, box, multimask))
        kwargs, picture = _build(self.model, image, prompt, opts)
        return _result(await self._send("POST", _PATH, **kwargs), picture)

    async def models(self) -> list[dict[str, Any]]:
        response = await self._send("GET", "/v1/models")
        if response.status_code != 200:
            raise _error_from(response)
        return list(response.json()["data"])

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"Could not reach {self._http.base_url}: {exc}") from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
