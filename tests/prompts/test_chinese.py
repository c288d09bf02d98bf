"""Chinese concepts -> the English the model reads: simplified, traditional, mixed, separators,
composition, unknown words, the glossary (override, SIGHUP reload)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from segserve.errors import InvalidPromptError
from segserve.prompts import Concept, as_concepts, parse_prompt
from segserve.prompts import lexicon as lexicon_mod
from segserve.prompts.chinese import MAX_COMPOSED_WORDS, chinese_labels, resolve_texts, translate
from segserve.prompts.lexicon import get_lexicon
from segserve.settings import Settings
from segserve.types import SegmentRequest


def pairs(prompt: str, **kwargs) -> list[tuple[str, str | None]]:
    return [(c.label, c.text) for c in parse_prompt(prompt, **kwargs)]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("人,狗", [("人", "person"), ("狗", "dog")]),  # simplified
        ("人物, 行人", [("人物", "person"), ("行人", "person")]),  # synonyms: labels differ, text the same
        ("車輛，機車、雨傘", [("車輛", "vehicle"), ("機車", "motorcycle"), ("雨傘", "umbrella")]),  # traditional
        ("汽車；紅色汽車", [("汽車", "car"), ("紅色汽車", "red car")]),  # full-width semicolon
        ("\u3000安全帽\u3000,\u3000鞋子", [("安全帽", "hard hat"), ("鞋子", "shoe")]),  # ideographic spaces trimmed
        ("红色 car", [("红色 car", "red car")]),  # mixed: the Chinese part resolved, the English kept
        ("黑色T恤", [("黑色T恤", "black t-shirt")]),  # Latin letters inside a lexicon term
        ("红色 t-shirt, 白色iPhone", [("红色 t-shirt", "red t-shirt"), ("白色iPhone", "white iphone")]),
        ("ｒｅｄ 汽车", [("ｒｅｄ 汽车", "red car")]),  # full-width letters
    ],
)
def test_chinese_concepts_are_read_in_english_and_keep_their_labels(prompt, expected):
    assert pairs(prompt) == expected


@pytest.mark.parametrize("latin", ["t-shirt", "iPhone", "3D printer", "person", "Café table", "x-ray machine"])
def test_latin_concepts_pass_through_unchanged(latin):
    assert pairs(latin) == [(latin, latin)]


@pytest.mark.parametrize(
    ("chinese", "english"),
    [
        ("红色汽车", "red car"),  # attribute before the noun
        ("红色的汽车", "red car"),  # ... with 的
        ("一辆白色的小汽车", "white car"),  # measure words dropped
        ("大红色塑料桶", "bright red plastic barrel"),
        ("木头椅子", "wood chair"),
        ("戴安全帽的工人", "worker wearing hard hat"),  # a verb clause goes after the noun
        ("工人戴安全帽", "worker wearing hard hat"),
        ("没戴安全帽的工人", "worker without hard hat"),
        ("穿反光背心的工人", "worker wearing reflective vest"),
        ("拿着雨伞的女人", "woman holding umbrella"),
        ("骑自行车的人", "person riding bicycle"),
        ("桌子上的杯子", "cup on table"),  # a place goes after the noun
        ("坐在椅子上的人", "person sitting on chair"),
        ("汽车前面的人", "person in front of car"),
        ("狗和猫", "dog and cat"),
    ],
)
def test_phrases_are_composed_from_their_parts(chinese, english):
    assert translate(chinese, get_lexicon()) == english


def test_compositions_stay_short_phrases():
    # CLIP's BPE gives a common English word one token: 12 words stay well inside the encoder's 32.
    text = translate("戴红色安全帽穿橙色反光背心的建筑工人", get_lexicon())
    assert text == "construction worker wearing red hard hat wearing orange reflective vest"
    with pytest.raises(InvalidPromptError, match=f"at most {MAX_COMPOSED_WORDS}") as info:
        parse_prompt("戴红色安全帽穿橙色反光背心拿着黑色塑料水桶的建筑工人")
    assert info.value.param == "prompt"


def test_unknown_words_are_a_400_that_names_them_and_says_how_to_add_them():
    with pytest.raises(InvalidPromptError) as info:
        parse_prompt("人, 飞天神兽, 红色的魔法车")
    err = info.value
    assert err.status == 400 and err.code == "invalid_prompt" and err.param == "prompt"
    for part in ("飞天", "神兽", "魔法", "'红色的魔法车'", "SEGSERVE_GLOSSARY", "TAB", "SIGHUP"):
        assert part in err.message
    assert "人" not in err.message.split("(in")[0]  # known words are not reported


def test_the_glossary_adds_words_and_overrides_the_lexicon(tmp_path):
    path = tmp_path / "glossary.tsv"
    path.write_text("飞天神兽\tdragon statue\n安全帽\tyellow helmet\n", encoding="utf-8")
    assert pairs("飛天神獸, 安全帽, 戴安全帽的工人", glossary=path) == [
        ("飛天神獸", "dragon statue"),  # traditional spelling of a glossary term
        ("安全帽", "yellow helmet"),
        ("戴安全帽的工人", "worker wearing yellow helmet"),
    ]
    assert pairs("安全帽") == [("安全帽", "hard hat")]  # without the glossary: the shipped entry


def test_every_entry_point_resolves(tmp_path):
    settings = Settings.defaults().replace(glossary=tmp_path / "g.tsv")
    (tmp_path / "g.tsv").write_text("塔吊\ttower crane\n", encoding="utf-8")
    request = SegmentRequest.resolve(settings, prompt="塔吊, 人")
    assert [(c.label, c.text) for c in request.concepts] == [("塔吊", "tower crane"), ("人", "person")]
    typed = SegmentRequest.resolve(settings, concepts=[{"text": "安全帽", "boxes": [[1, 2, 30, 40]]}])
    assert [(c.label, c.text) for c in typed.concepts] == [("安全帽", "hard hat")]
    with pytest.raises(InvalidPromptError) as info:
        SegmentRequest.resolve(settings, concepts=[{"text": "魔法车"}])
    assert info.value.param == "concepts"
    assert [(c.label, c.text) for c in as_concepts(["狗", Concept("猫", "kitten")])] == [
        ("狗", "dog"),
        ("猫", "kitten"),  # a Concept is taken as given
    ]
    assert parse_prompt("魔法车", translate=False)[0].text == "魔法车"  # left to a server


def test_exemplar_only_concepts_are_left_alone():
    concepts = [Concept("visual", None, ((1, 2, 3, 4),)), Concept("person")]
    assert [(c.label, c.text) for c in chinese_labels(concepts)] == [("visual", None), ("人", "person")]
    assert resolve_texts(["visual", "t-shirt"]) == ["visual", "t-shirt"]


def test_a_second_request_does_not_reload_the_lexicon():
    get_lexicon()
    before = dict(lexicon_mod.STORE.loads)
    parse_prompt("人, 红色汽车")
    parse_prompt("狗, 戴安全帽的工人")
    assert lexicon_mod.STORE.loads == before


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no SIGHUP")
def test_sighup_reloads_the_glossary_and_keeps_the_old_one_on_errors(tmp_path, caplog):
    from segserve.api.serve import _reload_glossary_on_sighup

    path = tmp_path / "glossary.tsv"
    path.write_text("塔吊\ttower crane\n", encoding="utf-8")
    settings = Settings.defaults().replace(glossary=path)
    assert pairs("塔吊", glossary=path) == [("塔吊", "tower crane")]
    previous = _reload_glossary_on_sighup(settings)
    try:
        path.write_text("塔吊\ttall crane\n", encoding="utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        _wait_for(lambda: get_lexicon(path).english("塔吊") == "tall crane")
        assert pairs("塔吊", glossary=path) == [("塔吊", "tall crane")]
        path.write_text("塔吊\n", encoding="utf-8")  # one column: a bad line
        os.kill(os.getpid(), signal.SIGHUP)
        _wait_for(lambda: "line 1:" in caplog.text)
        assert pairs("塔吊", glossary=path) == [("塔吊", "tall crane")]  # the old glossary stays
    finally:
        signal.signal(signal.SIGHUP, previous)


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the glossary reload did not happen"
        time.sleep(0.01)
