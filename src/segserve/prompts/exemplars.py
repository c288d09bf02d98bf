"""Visual prompts: exemplar boxes of a concept, and the points/box of interactive (one-object) mode.

One convention everywhere: pixel coordinates of the image AFTER its EXIF orientation, origin top-left,
x to the right, y down; a box is xyxy `[x0, y0, x1, y1]` with 0 <= x0 < x1 <= width and
0 <= y0 < y1 <= height; a label is 1 (positive) or 0 (negative).

>>> Box(10, 20, 200, 240).xyxy
(10.0, 20.0, 200.0, 240.0)
>>> read_boxes([[10, 20, 200, 240], [0, 0, 5, 5]], [1, False], param="boxes", max_boxes=16)[1].positive
False

The `read_*` functions turn wire values (JSON-decoded) into these types and answer every malformed
value with `InvalidParameterError` naming the field; whether a coordinate lies inside the image is
known only once it is decoded (`check_inside`).
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from segserve.errors import InvalidParameterError

# The text SAM 3 reads for a concept given by exemplars only: transformers' `Sam3Processor` uses it
# (`_resolve_text_prompts`), and the checkpoint was trained with it.
VISUAL_TEXT = "visual"
# The label of an exemplar-only concept that was given no name, and of an interactive-mode segment.
VISUAL_LABEL = "visual"
OBJECT_LABEL = "object"

# Echoes a client's bad value in the error: bounded in length and depth, whatever was sent.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother = 3, 6, 60, 60

CONVENTION = "pixels of the image after EXIF orientation, origin top-left"


@dataclass(frozen=True)
class Box:
    """An exemplar (or interactive-mode) box, xyxy in pixels; `positive=False`: "not like this"."""

    x0: float
    y0: float
    x1: float
    y1: float
    positive: bool = True

    def __post_init__(self) -> None:
        coords = [float(v) for v in (self.x0, self.y0, self.x1, self.y1)]
        if not all(math.isfinite(v) for v in coords):
            raise ValueError(f"box coordinates must be finite numbers, got {coords}")
        if min(coords) < 0:
            raise ValueError(f"box coordinates must not be negative ({CONVENTION}), got {coords}")
        if not (coords[0] < coords[2] and coords[1] < coords[3]):
            raise ValueError(f"a box is [x0, y0, x1, y1] with x0 < x1 and y0 < y1, got {coords}")
        for name, value in zip(("x0", "y0", "x1", "y1"), coords):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "positive", bool(self.positive))

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    def to_wire(self) -> list[float]:
        return [_number(v) for v in self.xyxy]


@dataclass(frozen=True)
class Point:
    """A click of interactive mode, in pixels; `positive=False`: "not this part"."""

    x: float
    y: float
    positive: bool = True

    def __post_init__(self) -> None:
        coords = [float(self.x), float(self.y)]
        if not all(math.isfinite(v) for v in coords) or min(coords) < 0:
            raise ValueError(f"point coordinates must be finite and not negative ({CONVENTION}), got {coords}")
        object.__setattr__(self, "x", coords[0])
        object.__setattr__(self, "y", coords[1])
        object.__setattr__(self, "positive", bool(self.positive))


@dataclass(frozen=True)
class ObjectPrompt:
    """Interactive mode: clicks and/or one box around ONE object, answered by the SAM 3 tracker.

    `multimask=True` asks for the tracker's 3 candidate masks (best first) instead of its one answer.
    """

    points: tuple[Point, ...] = ()
    box: Box | None = None
    multimask: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(p if isinstance(p, Point) else Point(*p) for p in self.points))
        if self.box is not None and not isinstance(self.box, Box):
            object.__setattr__(self, "box", Box(*self.box))
        if not self.points and self.box is None:
            raise ValueError("an object prompt needs at least one point or a box")
        if self.box is not None and not self.box.positive:
            raise ValueError("interactive mode's box surrounds the object: it cannot be negative")


# --- wire values -> types ------------------------------------------------------------------------
def invalid(param: str, message: str, value: Any = None) -> InvalidParameterError:
    shown = f" Got {_SHORT.repr(value)}." if value is not None else ""
    return InvalidParameterError(f"{message}{shown}", param=param)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def _coords(value: Any, n: int, param: str, what: str) -> list[float]:
    """A list of `n` finite JSON numbers (not booleans)."""
    if not isinstance(value, list) or len(value) != n:
        raise invalid(param, f"Each {what} must be a list of {n} numbers ({CONVENTION}).", value)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise invalid(param, f"Each {what} must be a list of {n} numbers ({CONVENTION}).", value)
    try:
        coords = [float(v) for v in value]
    except OverflowError:  # a JSON integer of hundreds of digits: no float holds it
        coords = [math.inf]
    if not all(math.isfinite(v) for v in coords):
        raise invalid(param, f"A {what} has a coordinate that is not a finite number (NaN or infinity).", value)
    if min(coords) < 0:
        raise invalid(param, f"A {what} has a negative coordinate; coordinates are {CONVENTION}.", value)
    return coords


def read_box(value: Any, param: str) -> Box:
    """One `[x0, y0, x1, y1]` box."""
    x0, y0, x1, y1 = _coords(value, 4, param, "box")
    if not (x0 < x1 and y0 < y1):
        raise invalid(param, "A box is [x0, y0, x1, y1] with x0 < x1 and y0 < y1 (not empty, not inverted).", value)
    return Box(x0, y0, x1, y1)


def read_labels(value: Any, n: int, param: str, of: str) -> list[bool]:
    """`n` labels, 1/true positive and 0/false negative; None: all positive."""
    if value is None:
        return [True] * n
    if not isinstance(value, list):
        raise invalid(param, f"`{param}` must be a list of labels, 1 (positive) or 0 (negative).", value)
    if len(value) != n:
        raise invalid(param, f"`{param}` has {len(value)} labels for {n} {of}; give one label per entry, or none.")
    if any(isinstance(v, (list, dict, str)) or v not in (0, 1) for v in value):  # true/false == 1/0: accepted
        raise invalid(param, f"`{param}` labels must be 1 (positive) or 0 (negative).", value)
    return [bool(v) for v in value]


def read_boxes(value: Any, labels: Any, *, param: str, max_boxes: int, labels_param: str | None = None) -> list[Box]:
    """`[[x0, y0, x1, y1], ...]` and their labels -> boxes; None or [] -> none."""
    labels_param = labels_param or "box_labels"
    if value is None:
        if labels is not None and labels != []:
            raise invalid(labels_param, f"`{labels_param}` was given without boxes; send `boxes` too.")
        return []
    if not isinstance(value, list):
        raise invalid(param, f"`{param}` must be a list of boxes [[x0, y0, x1, y1], ...] ({CONVENTION}).", value)
    if len(value) > max_boxes:
        raise invalid(param, f"{len(value)} boxes were sent; at most {max_boxes} are allowed per request.")
    boxes = [read_box(v, param) for v in value]
    flags = read_labels(labels, len(boxes), labels_param, "boxes")
    return [Box(*b.xyxy, positive=flag) for b, flag in zip(boxes, flags)]


def read_object_prompt(
    points: Any, point_labels: Any, box: Any, multimask: Any, *, max_points: int
) -> ObjectPrompt | None:
    """Interactive mode's fields -> an `ObjectPrompt`, or None when neither points nor box is given."""
    if multimask is not None and not isinstance(multimask, bool):
        raise invalid("multimask", "`multimask` must be true or false.", multimask)
    if points is not None and not isinstance(points, list):
        raise invalid("points", f"`points` must be a list of points [[x, y], ...] ({CONVENTION}).", points)
    points = points or None
    if points is None and point_labels is not None and point_labels != []:
        raise invalid("point_labels", "`point_labels` was given without points; send `points` too.")
    if points is None and box is None:
        if multimask:
            raise invalid("multimask", "`multimask` applies to interactive mode only: send `points` or `box` too.")
        return None
    parsed: list[Point] = []
    if points is not None:
        if len(points) > max_points:
            raise invalid("points", f"{len(points)} points were sent; at most {max_points} are allowed per request.")
        flags = read_labels(point_labels, len(points), "point_labels", "points")
        parsed = [Point(*_coords(p, 2, "points", "point"), positive=f) for p, f in zip(points, flags)]
    return ObjectPrompt(tuple(parsed), read_box(box, "box") if box is not None else None, bool(multimask))


def check_inside(boxes: Sequence[Box], points: Sequence[Point], size: tuple[int, int], param: str) -> None:
    """Refuse coordinates past the decoded image's `size` (height, width), naming `param`."""
    height, width = size
    for b in boxes:
        if b.x1 > width or b.y1 > height:
            raise invalid(
                param,
                f"The box {b.to_wire()} reaches past the image, which is {width} x {height} pixels "
                f"(width x height, {CONVENTION}; x1 <= width, y1 <= height).",
            )
    for p in points:
        if p.x > width or p.y > height:
            raise invalid(
                param,
                f"The point [{_number(p.x)}, {_number(p.y)}] lies outside the image, which is {width} x {height} "
                f"pixels (width x height, {CONVENTION}).",
            )
