"""Prompts -> concepts: parsing (`parsing.py`), exemplar boxes and interactive points (`exemplars.py`),
a request's prompt fields together (`visual.py`); non-English resolution grows here."""

from segserve.prompts.exemplars import Box, ObjectPrompt, Point
from segserve.prompts.parsing import MAX_TEXT_TOKENS, Concept, as_concepts, parse_prompt, tokenize_concepts
from segserve.prompts.visual import VisualRequest, resolve_visual

__all__ = [
    "MAX_TEXT_TOKENS",
    "Box",
    "Concept",
    "ObjectPrompt",
    "Point",
    "VisualRequest",
    "as_concepts",
    "parse_prompt",
    "resolve_visual",
    "tokenize_concepts",
]
