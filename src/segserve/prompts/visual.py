"""A request's prompt fields -> what the engine is asked: concepts (text and/or exemplar boxes), or
one object by clicks (interactive mode). The rules of the wire format live here, in one place:

- `prompt` alone: text concepts, as always (`parse_prompt`).
- `boxes` (+ `box_labels`): exemplars of the prompt's single concept; with an empty prompt they
  form one exemplar-only concept labelled "visual". With several concepts: use `concepts`.
- `concepts`: the typed form, each `{text?, label?, boxes?, box_labels?}`; excludes prompt and boxes.
- `points` (+ `point_labels`) and/or `box` (+ `multimask`): interactive mode, alone.

>>> v = resolve_visual(None, prompt="helmet", boxes=[[10, 20, 200, 240]])
>>> [(c.label, c.text, len(c.boxes)) for c in v.concepts], v.object_prompt
([('helmet', 'helmet', 1)], None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segserve.errors import InvalidParameterError
from segserve.prompts.chinese import resolve_texts
from segserve.prompts.exemplars import (
    VISUAL_LABEL,
    ObjectPrompt,
    check_inside,
    invalid,
    read_boxes,
    read_object_prompt,
)
from segserve.prompts.parsing import Concept, parse_prompt
from segserve.settings import Settings

# The keys a `concepts` entry may have.
CONCEPT_KEYS = ("text", "label", "boxes", "box_labels")


@dataclass(frozen=True)
class VisualRequest:
    """The concepts to find, or the one object to segment; `exemplar_param` names the field their
    boxes came from (for the error when a box reaches past the image)."""

    concepts: tuple[Concept, ...] = ()
    object_prompt: ObjectPrompt | None = None
    exemplar_param: str = "boxes"

    def check_inside(self, size: tuple[int, int]) -> None:
        """Refuse any box or point past the decoded image (`size` = height, width) with a 400."""
        check_inside([b for c in self.concepts for b in c.boxes], [], size, self.exemplar_param)
        if self.object_prompt is not None:
            box = self.object_prompt.box
            check_inside([], self.object_prompt.points, size, "points")
            check_inside([box] if box is not None else [], [], size, "box")


def resolve_visual(
    settings: Settings | None,
    *,
    prompt: str | None = None,
    boxes: Any = None,
    box_labels: Any = None,
    concepts: Any = None,
    points: Any = None,
    point_labels: Any = None,
    box: Any = None,
    multimask: Any = None,
) -> VisualRequest:
    """The concepts or object prompt that a request's fields describe; 400 naming the field otherwise."""
    settings = settings or Settings.defaults()
    limits = {
        "max_concepts": settings.max_concepts,
        "max_concept_chars": settings.max_concept_chars,
        "glossary": settings.glossary,
    }
    object_prompt = read_object_prompt(points, point_labels, box, multimask, max_points=settings.max_points)
    if concepts == []:
        concepts = None  # no typed concepts: as if absent
    if object_prompt is not None:
        param = "points" if points else "box"
        for name, given in (("concepts", concepts is not None), ("boxes", boxes not in (None, []))):
            if given:
                raise invalid(param, f"Interactive mode (`points`/`box`, one object) cannot be combined with `{name}`.")
        if box_labels not in (None, []):
            raise invalid("box_labels", "`box_labels` label exemplar `boxes`; interactive mode's box needs no label.")
        if prompt is not None and prompt.strip():
            raise invalid(
                param, "Interactive mode (`points`/`box`) segments one object and reads no prompt; send it empty."
            )
        return VisualRequest(object_prompt=object_prompt)
    if concepts is not None:
        for name, given in (("prompt", bool(prompt and prompt.strip())), ("boxes", boxes not in (None, []))):
            if given:
                raise invalid(
                    "concepts", f"`concepts` replaces `{name}`: put every concept, text and boxes, in `concepts`."
                )
        if box_labels not in (None, []):
            raise invalid("box_labels", "With `concepts`, give each concept's `box_labels` inside it.")
        return VisualRequest(tuple(read_concepts(concepts, settings)), exemplar_param="concepts")
    parsed = parse_prompt(prompt, **limits)
    exemplars = read_boxes(boxes, box_labels, param="boxes", max_boxes=settings.max_boxes)
    if not exemplars:
        return VisualRequest(tuple(parsed))
    if len(parsed) > 1:
        raise invalid(
            "boxes",
            f"`boxes` are exemplars of one concept, but the prompt has {len(parsed)}. Use `concepts` to give "
            'each concept its own boxes: [{"text": "helmet", "boxes": [[x0, y0, x1, y1]]}, ...].',
        )
    if parsed:
        return VisualRequest((Concept(parsed[0].label, parsed[0].text, tuple(exemplars)),))
    return VisualRequest((Concept(VISUAL_LABEL, None, tuple(exemplars)),))


def read_concepts(value: Any, settings: Settings) -> list[Concept]:
    """The `concepts` field: `[{"text"?, "label"?, "boxes"?, "box_labels"?}, ...]` -> concepts."""
    if not isinstance(value, list):
        raise invalid(
            "concepts", '`concepts` must be a list such as [{"text": "helmet", "boxes": [[10, 20, 200, 240]]}].'
        )
    if len(value) > settings.max_concepts:
        raise invalid(
            "concepts", f"{len(value)} concepts were sent; at most {settings.max_concepts} are allowed per request."
        )
    out: list[Concept] = []
    total_boxes = 0
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid("concepts", f"`concepts[{i}]` must be an object with `text` and/or `boxes`.", item)
        unknown = sorted(set(item) - set(CONCEPT_KEYS))
        if unknown:
            raise invalid("concepts", f"`concepts[{i}]` has unknown keys {unknown}; the keys are {list(CONCEPT_KEYS)}.")
        text = _text(item.get("text"), f"concepts[{i}].text", settings.max_concept_chars)
        label = _text(item.get("label"), f"concepts[{i}].label", settings.max_concept_chars)
        boxes = read_boxes(
            item.get("boxes"),
            item.get("box_labels"),
            param="concepts",
            labels_param="concepts",
            max_boxes=settings.max_boxes,
        )
        total_boxes += len(boxes)
        if total_boxes > settings.max_boxes:
            raise invalid(
                "concepts", f"The concepts hold more than {settings.max_boxes} boxes in all, the limit per request."
            )
        if text is None and not boxes:
            raise invalid("concepts", f"`concepts[{i}]` needs `text` or at least one box in `boxes`.")
        out.append(Concept(label or text or VISUAL_LABEL, text, tuple(boxes)))
    # Chinese texts are read in English, as in `prompt`; the labels stay the client's words.
    texts = iter(resolve_texts([c.text for c in out if c.text is not None], settings.glossary, param="concepts"))
    return [c if c.text is None else Concept(c.label, next(texts), c.boxes) for c in out]


def _text(value: Any, where: str, max_chars: int) -> str | None:
    """A concept's text or label: a non-blank string (whitespace collapsed) within the limit, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("concepts", f"`{where}` must be a string.", value)
    text = " ".join(value.split())
    if not text:
        return None
    if len(text) > max_chars:
        raise InvalidParameterError(
            f"`{where}` is {len(text)} characters long; the limit is {max_chars}.", param="concepts"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameterError(
            f"`{where}` contains invalid Unicode (a lone surrogate).", param="concepts"
        ) from None
    return text
