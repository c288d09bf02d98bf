"""Prompt strings -> concepts.

>>> parse_prompt("dog, cat，人;Dog\\n")
['dog', 'cat', '人']
>>> parse_prompt(" , ;")
[]
"""

from __future__ import annotations

import re

from segserve.errors import InvalidPromptError

# `,` plus the full-width comma and the ideographic comma, `;` and newlines separate concepts.
_SEPARATORS = re.compile(r"[,，、;；\r\n]+")

MAX_CONCEPTS = 16
MAX_CONCEPT_CHARS = 200
# SAM 3's text encoder has 32 positions (CLIP's context); longer token sequences crash it.
MAX_TEXT_TOKENS = 32


def parse_prompt(
    prompt: str | None,
    *,
    max_concepts: int = MAX_CONCEPTS,
    max_concept_chars: int = MAX_CONCEPT_CHARS,
) -> list[str]:
    """Split, trim, drop empties, merge repeats case-insensitively (first spelling wins), check limits.

    An empty result means "segment everything".
    """
    if prompt is None:
        return []
    if not isinstance(prompt, str):
        raise InvalidPromptError("`prompt` must be a string of concepts separated by commas.", param="prompt")
    concepts: list[str] = []
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
        seen.add(key)
        concepts.append(concept)
    if len(concepts) > max_concepts:
        raise InvalidPromptError(
            f"The prompt has {len(concepts)} concepts; at most {max_concepts} are allowed per request. "
            "Split it over several requests.",
            param="prompt",
        )
    return concepts


def tokenize_concepts(tokenizer, concepts: list[str], max_length: int = MAX_TEXT_TOKENS) -> dict:
    """Tokenise for SAM 3's text encoder: padded to and truncated at `max_length` tokens.

    `Sam3Processor` pads to 32 but does not truncate; an overlong concept would crash the encoder.
    """
    return tokenizer(
        concepts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
