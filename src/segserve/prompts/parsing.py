"""Prompt strings -> concepts, the things the engine looks for.

>>> [c.label for c in parse_prompt("dog, cat，人;Dog\\n")]
['dog', 'cat', '人']
>>> parse_prompt(" , ;")
[]

A `Concept` keeps apart what the segments are called (`label`: the user's own words) and what the
model is given (`text`), so a concept can be resolved to other words (a translation) or be given by
exemplars instead of words without touching the engine's contract.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from segserve.errors import InvalidPromptError
from segserve.prompts.chinese import resolve_texts
from segserve.prompts.exemplars import VISUAL_TEXT, Box
from segserve.settings import Settings

# `,` plus the full-width comma and the ideographic comma, `;` and newlines separate concepts.
_SEPARATORS = re.compile(r"[,，、;；\r\n]+")

# SAM 3's text encoder has 32 positions (CLIP's context); longer token sequences crash it.
MAX_TEXT_TOKENS = 32


@dataclass(frozen=True)
class Concept:
    """One kind of thing to find.

    `label` names its segments in the answer, exactly as the client wrote it (trimmed);
    `text` is what the text encoder reads (by default the label itself; None: the concept is given
    by its exemplar `boxes` only). `boxes` are exemplars, `Box`es or `(x0, y0, x1, y1)` tuples
    (positive), in the image's pixels (see `prompts.exemplars`).

    >>> Concept("hard hat", "helmet", boxes=[(10, 20, 200, 240)]).boxes[0].positive
    True
    """

    label: str
    text: str | None = ""
    boxes: tuple[Box, ...] = ()

    def __post_init__(self) -> None:
        if self.text == "":
            object.__setattr__(self, "text", self.label)
        object.__setattr__(self, "boxes", tuple(b if isinstance(b, Box) else Box(*b) for b in self.boxes))
        if self.text is None and not self.boxes:
            raise ValueError(f"the concept {self.label!r} has neither text nor exemplar boxes")

    @property
    def model_text(self) -> str:
        """What SAM 3's text encoder reads: the text, or transformers' "visual" for exemplars only."""
        return VISUAL_TEXT if self.text is None else self.text


def as_concepts(concepts: Iterable[Concept | str], glossary: Path | str | None = None) -> list[Concept]:
    """Concepts as given to the engine: `Concept`s, or plain strings as a shorthand (a Chinese one
    is read in English, as in a prompt)."""
    given = list(concepts)
    words = [str(c) for c in given if not isinstance(c, Concept)]
    texts = iter(resolve_texts(words, glossary))
    return [c if isinstance(c, Concept) else Concept(str(c), next(texts)) for c in given]


def parse_prompt(
    prompt: str | None,
    *,
    max_concepts: int | None = None,
    max_concept_chars: int | None = None,
    glossary: Path | str | None = None,
    translate: bool = True,
) -> list[Concept]:
    """Split, trim, drop empties, merge repeats case-insensitively (first spelling wins), check limits,
    and give each Chinese concept the English text the model reads (`prompts.chinese`, with the
    operator's `glossary`); its label stays the user's words. `translate=False` leaves that to a server.

    The limits default to `Settings`'; an empty result means "segment everything".
    """
    defaults = Settings.defaults()
    max_concepts = defaults.max_concepts if max_concepts is None else max_concepts
    max_concept_chars = defaults.max_concept_chars if max_concept_chars is None else max_concept_chars
    if prompt is None:
        return []
    if not isinstance(prompt, str):
        raise InvalidPromptError("`prompt` must be a string of concepts separated by commas.", param="prompt")
    concepts: list[Concept] = []
    seen: set[str] = set()
    for part in _SEPARATORS.split(prompt):
        concept = " ".join(part.split())  # trim and collapse inner whitespace
        if not concept:
            continue
        key = concept.casefold()
        if key in seen:
            continue
        if len(concept) > max_concept_chars:
            raise InvalidPromptError(
                f"A concept is {len(concept)} characters long; the limit is {max_concept_chars}. "
                "Describe each object in a few words.",
                param="prompt",
            )
        if not concept.isprintable() and not _encodable(concept):
            raise InvalidPromptError(
                "A concept contains an unpaired surrogate (invalid Unicode); send the prompt as valid UTF-8.",
                param="prompt",
            )
        seen.add(key)
        concepts.append(Concept(concept))
    if len(concepts) > max_concepts:
        raise InvalidPromptError(
            f"The prompt has {len(concepts)} concepts; at most {max_concepts} are allowed per request. "
            "Split it over several requests.",
            param="prompt",
        )
    if translate:
        texts = resolve_texts([c.label for c in concepts], glossary)
        concepts = [Concept(c.label, text) for c, text in zip(concepts, texts)]
    return concepts


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. JSON's "\ud800": no tokenizer or JSON encoder takes it
        return False
    return True


def tokenize_concepts(tokenizer, texts: list[str], max_length: int = MAX_TEXT_TOKENS) -> dict:
    """Tokenise for SAM 3's text encoder: padded to and truncated at `max_length` tokens.

    `Sam3Processor` pads to 32 but does not truncate; an overlong concept would crash the encoder.
    """
    return tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
