"""Prompts -> concepts: parsing (`parsing.py`); exemplars and non-English resolution grow here."""

from segserve.prompts.parsing import MAX_TEXT_TOKENS, Concept, as_concepts, parse_prompt, tokenize_concepts

__all__ = ["MAX_TEXT_TOKENS", "Concept", "as_concepts", "parse_prompt", "tokenize_concepts"]
