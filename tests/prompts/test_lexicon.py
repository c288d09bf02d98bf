"""The shipped Chinese lexicon: coverage of the COCO, LVIS and Objects365 categories, clean English,
no conflicting duplicates; and the operator's glossary: format, errors by line, override, loads."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

import pytest
import yaml

from segserve.prompts import lexicon as lexicon_mod
from segserve.prompts.chinese import normalise
from segserve.prompts.lexicon import DATA_FILE, GlossaryError, Lexicon, get_lexicon, read_glossary

# Objects365 names that are not the plain English of their category (a typo, "Other ...", a sport
# named for its ball): the English the lexicon uses for them instead.
ALIASES = {
    "noddles": "noodles",
    "trash bin can": "trash can",
    "canned": "canned food",
    "french": "french horn",
    "other shoes": "shoe",
    "other fish": "fish",
    "other balls": "ball",
    "toiletry": "toiletries",
    "machinery vehicle": "construction vehicle",
    "tea pot": "teapot",
    "head phone": "headphones",
    "soccer": "soccer ball",
    "tennis": "tennis ball",
    "table tennis": "ping-pong ball",
    "billiards": "billiard ball",
    "curling": "curling stone",
    "skiboard": "skis",
    "skating and skiing shoes": "ice skate",
    "computer box": "computer case",
    "extractor": "exhaust fan",
    "chips": "potato chip",
    "formula 1": "formula 1 car",
    "baozi": "steamed bun",
}


def _key(name: str) -> str:
    """A category name compared loosely: case, underscores and a plural "s" do not matter."""
    name = " ".join(name.lower().replace("_", " ").split())
    name = ALIASES.get(name, name)
    return name[:-1] if name.endswith("s") else name


def _categories(dataset: str) -> list[list[str]]:
    """Each category of an Ultralytics dataset file as its names ("aerosol can/spray can")."""
    # Found without importing ultralytics: its import replaces PIL.Image.open for the whole process
    # (a HEIF hook that pip-installs pi-heif), which would change every later image test.
    package = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0])
    path = package / "cfg" / "datasets" / f"{dataset}.yaml"
    names = yaml.safe_load(path.read_text(encoding="utf-8"))["names"]
    return [name.split("/") for name in names.values()]


def _data_rows() -> list[tuple[int, str, str]]:
    text = resources.files("segserve.prompts").joinpath(DATA_FILE).read_text(encoding="utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            term, english = line.split("\t")
            rows.append((number, term, english))
    return rows


@pytest.mark.parametrize(("dataset", "count"), [("coco", 80), ("lvis", 1203), ("Objects365", 365)])
def test_every_category_has_a_chinese_entry(dataset, count):
    categories = _categories(dataset)
    assert len(categories) == count
    english = {_key(e) for e in get_lexicon().entries.values()}
    missing = [names for names in categories if not any(_key(n) in english for n in names)]
    assert missing == []


def test_the_data_has_2000_distinct_terms_and_no_conflicting_duplicates():
    rows = _data_rows()
    seen: dict[str, str] = {}
    conflicts = []
    for number, term, english in rows:
        if seen.setdefault(term, english) != english:
            conflicts.append((number, term, seen[term], english))
    assert conflicts == []
    assert len(seen) >= 2000


def test_terms_are_normalised_and_english_is_short_clean_and_fits_the_encoder(tiny_model_path):
    from transformers import AutoTokenizer

    # The tiny model's tokenizer is byte-level BPE without merges: one token per byte, the most any
    # byte-level BPE (CLIP's included) can give, so a fit here is a fit for the real model.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    for number, term, english in _data_rows():
        assert term == normalise(term).replace(" ", ""), f"line {number}: {term!r} is not in normal form"
        assert english == " ".join(english.split()) and english, f"line {number}: {english!r}"
        assert english == english.lower() or any(c.isdigit() for c in english), f"line {number}"
        assert not any(sep in english for sep in ",;，、；"), f"line {number}: {english!r}"
        assert len(tokenizer(english)["input_ids"]) <= 32, f"line {number}: {english!r} is over 32 tokens"


def test_common_synonyms_share_their_english():
    lex = get_lexicon()
    for terms, english in [
        (["人", "人物", "行人"], "person"),
        (["车", "汽车", "小汽车", "轿车"], "car"),
        (["车辆"], "vehicle"),
        (["安全帽"], "hard hat"),
        (["鞋子", "鞋"], "shoe"),
        (["手提包"], "handbag"),
    ]:
        assert [lex.english(t) for t in terms] == [english] * len(terms)


def test_every_coco_category_has_a_chinese_label():
    from segserve.settings import COCO_CATEGORIES

    lex = get_lexicon()
    assert {c: lex.chinese_label(c) for c in ("person", "car", "dog", "cell phone")} == {
        "person": "人",
        "car": "汽车",
        "dog": "狗",
        "cell phone": "手机",
    }
    assert [c for c in COCO_CATEGORIES if lex.chinese_label(c) is None] == []


# --- the glossary ------------------------------------------------------------------------------
def test_glossary_adds_and_overrides_entries_and_normalises_its_terms(tmp_path):
    path = tmp_path / "glossary.tsv"
    path.write_text("# our site\n\n塔吊\ttower crane\n安全帽\tyellow hard hat\n電動車\te-bike\n", encoding="utf-8")
    assert read_glossary(path) == {"塔吊": "tower crane", "安全帽": "yellow hard hat", "电动车": "e-bike"}
    lex = get_lexicon(path)
    assert lex.english("塔吊") == "tower crane" and lex.english("安全帽") == "yellow hard hat"
    assert lex.english("人") == "person"  # the shipped entries stay


def test_glossary_bad_lines_are_reported_with_their_numbers(tmp_path):
    path = tmp_path / "glossary.tsv"
    path.write_text(
        "塔吊\ttower crane\n塔吊, tower crane\nhard hat\thelmet\n安全绳\t\n吊篮\t吊篮\n雨棚\ta, b\n"
        "脚手架\tone two three four five six seven eight nine\n",
        encoding="utf-8",
    )
    with pytest.raises(GlossaryError) as info:
        read_glossary(path)
    message = str(info.value)
    for number in (2, 3, 4, 5, 6, 7):
        assert f"line {number}:" in message
    assert "line 1:" not in message and "SEGSERVE_GLOSSARY" in message and "TAB" in message


def test_a_missing_glossary_is_an_error_naming_it(tmp_path):
    with pytest.raises(GlossaryError, match="cannot be read"):
        get_lexicon(tmp_path / "nope.tsv")


def test_the_lexicon_loads_once_and_a_reload_keeps_the_old_glossary_on_errors(tmp_path, caplog):
    path = tmp_path / "glossary.tsv"
    path.write_text("塔吊\ttower crane\n", encoding="utf-8")
    store = lexicon_mod._Store()
    first = store.get(path)
    assert store.get(path) is first and store.get(None) is store.get(None)
    assert store.loads == {"data": 1, "glossary": 1}

    path.write_text("塔吊\ttall crane\n", encoding="utf-8")
    assert store.reload(path) is True
    assert store.get(path).english("塔吊") == "tall crane" and store.loads == {"data": 1, "glossary": 2}

    path.write_text("塔吊 tall crane\n", encoding="utf-8")  # a space, not a TAB
    assert store.reload(path) is False
    assert store.get(path).english("塔吊") == "tall crane"  # the previous glossary stays in use
    assert "line 1:" in caplog.text


def test_lexicon_from_text_refuses_a_bad_line():
    with pytest.raises(ValueError, match="line 1"):
        Lexicon.from_text("人 person\n")
