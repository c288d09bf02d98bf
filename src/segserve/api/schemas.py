"""Pydantic models of the wire format, for the OpenAPI description (`/docs`) only: the request is
parsed by `body.py` and resolved by `SegmentRequest.resolve`, the response built by
`SegmentationResult.to_dict`, the single source of the JSON.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from segserve.types import SegmentOptions, SegmentRequest

_PIXELS = "pixels, xyxy, origin top-left, after EXIF orientation (x right, y down)"
Coordinate = Annotated[float, Field(ge=0)]
BoxIn = Annotated[
    list[Coordinate],
    Field(min_length=4, max_length=4, description=f"[x0, y0, x1, y1] with x0 < x1, y0 < y1; {_PIXELS}"),
]
PointIn = Annotated[list[Coordinate], Field(min_length=2, max_length=2, description=f"[x, y]; {_PIXELS}")]
LabelIn = Literal[0, 1] | bool


class ConceptIn(BaseModel):
    """One concept of `concepts`: text and/or exemplar boxes."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="what the model reads; null or absent: exemplars only")
    label: str | None = Field(None, description='what its segments are called; default: the text, else "visual"')
    boxes: list[BoxIn] | None = Field(None, description=f"exemplar boxes, [[x0, y0, x1, y1], ...]; {_PIXELS}")
    box_labels: list[LabelIn] | None = Field(None, description="one per box: 1 positive, 0 negative")


class SegmentationRequest(SegmentOptions):
    """`application/json` body. Form bodies carry the same fields, with `image` a file part or a URL.

    The options are `SegmentOptions`' fields (defaults shown are the built-in ones; the server's
    `SEGSERVE_*` settings may change them). Unknown fields are ignored (clients send extras).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str = Field(..., pattern=r"\S", description='model id, `"sam3"`', examples=["sam3"])
    image: str = Field(
        ...,
        pattern=r"\S",  # an empty or blank `image` is answered 400 missing_field
        description="an `http(s)://` URL or a `data:image/...;base64,...` URI (file uploads: use multipart)",
        examples=["https://example.com/photo.jpg"],
    )
    prompt: str | None = Field(
        "",
        description="concepts separated by commas (or ，、；); empty: segment every object. Chinese concepts are "
        "read in English (see `concepts` in the answer); a word segserve does not know is a 400 invalid_prompt",
        examples=["person, dog", "人，红色汽车"],
    )
    # Visual prompts (README "Visual prompts"). Null or absent: not given. In form bodies each is a
    # JSON-encoded text field. The server checks more than the schema says (x0 < x1, inside the image,
    # the limits of its settings).
    boxes: list[BoxIn] | None = Field(
        None,
        description=f"exemplar boxes of the prompt's one concept (find every instance like these); {_PIXELS}. "
        'With an empty prompt they form one exemplar-only concept labelled "visual"; several concepts: use `concepts`',
        examples=[[[10, 20, 200, 240]]],
    )
    box_labels: list[LabelIn] | None = Field(
        None, description="one per box: 1 (or true) positive, 0 (or false) negative; default all positive"
    )
    concepts: list[ConceptIn] | None = Field(
        None,
        description="several concepts, each with text and/or exemplar boxes; replaces `prompt` and `boxes`",
        examples=[[{"text": "helmet", "label": "hard hat", "boxes": [[10, 20, 200, 240]], "box_labels": [1]}]],
    )
    points: list[PointIn] | None = Field(
        None,
        description=f"interactive mode (one object, the SAM 3 tracker): clicks [[x, y], ...]; {_PIXELS}",
        examples=[[[120, 80]]],
    )
    point_labels: list[LabelIn] | None = Field(
        None, description="one per point: 1 (or true) on the object, 0 (or false) not on it; default all 1"
    )
    box: BoxIn | None = Field(
        None, description=f"interactive mode: one box around the one object, [x0, y0, x1, y1]; {_PIXELS}"
    )
    multimask: bool | None = Field(
        None, description="interactive mode: answer the tracker's 3 candidate masks (best first), not its one answer"
    )


class MaskOut(BaseModel):
    encoding: Literal["rle", "polygon"]
    size: list[int] = Field(..., description="[height, width] of the (EXIF-rotated) input image")
    counts: str | None = Field(None, description="base64 of the COCO compressed RLE (column-major)")
    polygons: list[list[int]] | None = Field(None, description="with mask_format=polygon: [[x,y,x,y,...], ...]")


class SegmentOut(BaseModel):
    id: int = Field(..., description="1..N in confidence order")
    label: str = Field(
        ...,
        description='the prompt concept that produced it (an unnamed exemplar-only concept: "visual"); "object" '
        "when segmenting everything or in interactive mode (`points`/`box`)",
    )
    confidence: float
    bbox: list[int] = Field(..., description="[x1, y1, x2, y2], x2/y2 exclusive")
    mask: MaskOut | None = Field(None, description="absent with mask_format=none")


class ConceptOut(BaseModel):
    label: str = Field(..., description="the concept as the client wrote it: its segments' `label`")
    text: str | None = Field(
        ..., description="what the model read: the English of a Chinese concept, else the label; null: exemplars only"
    )


class SegmentationResponse(BaseModel):
    num_segments: int
    segments: list[SegmentOut]
    concepts: list[ConceptOut] = Field(
        default_factory=list,
        description="segserve extension (clients that ignore unknown fields are unaffected): the request's "
        "concepts in prompt order, each with what the model read, e.g. 人 -> person; empty when segmenting everything",
    )


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "segserve"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# Keywords that describe a field rather than constrain its value: they stay outside the `anyOf`.
_ANNOTATIONS = ("title", "description", "default", "examples")


def _options_also(schema: dict[str, Any], not_given: dict[str, Any]) -> dict[str, Any]:
    """`schema` whose option fields also allow `not_given`: a spelling of "absent" that the server
    reads as the default (JSON null; a form's blank input), so it must not be called a client error."""
    properties = dict(schema["properties"])
    for name in SegmentOptions.model_fields:
        prop = properties[name]
        value = {k: v for k, v in prop.items() if k not in _ANNOTATIONS}
        properties[name] = {**{k: v for k, v in prop.items() if k in _ANNOTATIONS}, "anyOf": [value, not_given]}
    return {**schema, "properties": properties}


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` references replaced by the definitions: the route's schema is
    pasted into the OpenAPI document, where `#/$defs/...` would point at nothing."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def request_body_openapi() -> dict[str, Any]:
    """`openapi_extra` for the segmentation route: the three body forms of the contract.

    The route parses the body itself (it must stream-cap uploads), so FastAPI cannot infer this.
    """
    base = _inline_defs(SegmentationRequest.model_json_schema())
    json_schema = _options_also(base, {"type": "null"})
    url_field = {"type": "string", "pattern": r"\S"}

    def form_schema(image: dict[str, Any]) -> dict[str, Any]:
        schema = _options_also(base, {"const": ""})
        schema["properties"]["image"] = image
        for name in SegmentRequest.VISUAL_FIELDS:  # a form field is text: the JSON value, encoded
            described = base["properties"][name].get("description", "")
            schema["properties"][name] = {
                "type": "string",
                "description": f"JSON-encoded (blank: not given): {described}",
                "examples": [json.dumps(v) for v in base["properties"][name].get("examples", [])],
            }
        schema.pop("title", None)
        return schema

    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": form_schema(
                        {
                            "description": "the image file, or an http(s) URL / data URI as a text field",
                            "anyOf": [{"type": "string", "format": "binary"}, url_field],
                        }
                    )
                },
                # A urlencoded body carries text only: the image can be a URL or data URI, never a file.
                "application/x-www-form-urlencoded": {
                    "schema": form_schema({"description": "an http(s) URL or a data URI", **url_field})
                },
                "application/json": {"schema": json_schema},
            },
        }
    }


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": desc}
    for status, desc in {
        400: "missing_field, unknown_model, invalid_prompt, invalid_parameter, invalid_image_url, "
        "image_url_forbidden, image_url_unreachable",
        401: "invalid_api_key",
        408: "request_timeout (the headers or the body stopped arriving; the connection is closed)",
        413: "image_too_large",
        415: "unsupported_image_format",
        422: "invalid_image",
        429: "server_busy (see Retry-After)",
        500: "internal_error (with the request id)",
        503: "model_not_ready, shutting_down, too_many_connections (see Retry-After)",
        504: "timeout",
    }.items()
}
