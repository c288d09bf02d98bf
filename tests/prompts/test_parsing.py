"""Prompt parsing: separators, trimming, repeats and limits."""

from __future__ import annotations

import pytest

from segserve.errors import InvalidPromptError
from segserve.prompts import MAX_TEXT_TOKENS, Concept, as_concepts, parse_prompt, tokenize_concepts


@pytest.mark.parametrize(
    ("prompt", "concepts"),
    [
        ("person", ["person"]),  # one concept
        ("dog,cat", ["dog", "cat"]),  # the reference document's example
        (" dog , cat ", ["dog", "cat"]),  # trimmed
        ("dog，cat、bird", ["dog", "cat", "bird"]),  # full-width comma and ideographic comma
        ("dog;cat\nbird\r\nfish", ["dog", "cat", "bird", "fish"]),  # semicolons and newlines
        ("red   car", ["red car"]),  # inner whitespace collapsed
        ("Dog, dog, DOG, cat", ["Dog", "cat"]),  # repeats merged, first spelling wins
        ("人, 狗", ["人", "狗"]),  # CJK concepts
        ("", []),  # empty: segment everything
        (" , ;，、\n", []),  # only separators: also everything
        (None, []),  # missing field
    ],
)
def test_parse_prompt(prompt, concepts):
    assert [c.label for c in parse_prompt(prompt)] == concepts


def labels(prompt: str, **limits: int) -> list[str]:
    return [c.label for c in parse_prompt(prompt, **limits)]


@pytest.mark.parametrize(
    ("concept", "label", "text"),
    [
        (Concept("dog"), "dog", "dog"),  # the model reads the label itself
        (Concept("人", "person"), "人", "person"),  # resolved: answered as the user wrote it, read in English
    ],
)
def test_a_concept_keeps_its_label_apart_from_the_models_text(concept, label, text):
    assert (concept.label, concept.text) == (label, text)


def test_engine_shorthand_strings_become_concepts():
    assert as_concepts(["dog", Concept("人", "person")]) == [Concept("dog"), Concept("人", "person")]


@pytest.mark.parametrize(
    ("prompt", "match"),
    [
        (",".join(f"thing{i}" for i in range(17)), "17 concepts"),  # one over the default 16
        ("x" * 201, "201 characters"),  # one character over the limit
        ("ok, " + "y" * 10_000, "10000 characters"),  # a huge concept after a good one
    ],
)
def test_parse_prompt_limits(prompt, match):
    with pytest.raises(InvalidPromptError, match=match) as info:
        parse_prompt(prompt)
    assert info.value.status == 400 and info.value.code == "invalid_prompt"


def test_limits_are_configurable_and_repeats_do_not_count():
    assert labels("a,b,c", max_concepts=3) == ["a", "b", "c"]
    assert labels("a,b,a,B", max_concepts=2) == ["a", "b"]
    with pytest.raises(InvalidPromptError):
        parse_prompt("a,b,c", max_concepts=2)
    assert labels("x" * 200) == ["x" * 200]


def test_tokenize_truncates_at_the_encoder_limit(tiny_model_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokens = tokenize_concepts(tokenizer, ["cat", "a " * 150])
    assert tuple(tokens["input_ids"].shape) == (2, MAX_TEXT_TOKENS)
    # the long concept fills every position and still ends with the end-of-text token
    assert int(tokens["attention_mask"][1].sum()) == MAX_TEXT_TOKENS
    assert int(tokens["input_ids"][1, -1]) == tokenizer.eos_token_id
