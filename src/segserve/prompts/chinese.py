"""Chinese concepts -> the English concept SAM 3's text encoder understands.

CLIP's BPE was trained on English: 汽车 falls apart into six byte tokens and the model answers noise.
So a concept with Chinese characters is normalised (NFKC: full-width letters and the ideographic space;
OpenCC t2s: traditional -> simplified), looked up whole in the lexicon, and otherwise segmented with
jieba (the lexicon's terms added to its dictionary) and composed from its parts by a few rules:

- modifiers come first in Chinese as in English: 红色汽车 -> "red car", 木头椅子 -> "wooden chair";
- X的Y keeps that order ("红色的车" -> "red car"), except where X is a clause that English puts after
  the noun: 戴安全帽的工人 -> "worker wearing hard hat", 桌子上的杯子 -> "cup on table";
- Latin words pass through in place: 红色 car -> "red car".

Any word found nowhere is reported (400 `invalid_prompt`), never guessed.

>>> translate("紅色汽車", get_lexicon())
'red car'
>>> translate("戴安全帽的工人", get_lexicon())
'worker wearing hard hat'
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segserve.errors import InvalidPromptError

# normalise and has_chinese live with the lexicon, which normalises its own terms the same way.
from segserve.prompts.lexicon import GLOSSARY_HELP, Lexicon, get_lexicon, has_chinese, normalise

# Words that add nothing to what the model looks for: articles, measure words, "all of the ...".
FILLERS = frozenset({
    "一个", "一只", "一辆", "一条", "一把", "一张", "一台", "一件", "一双", "一位", "一名", "一些", "一群",
    "一堆", "个", "只", "辆", "条", "把", "张", "台", "件", "双", "位", "名", "这", "那", "这个", "那个",
    "这些", "那些", "所有", "所有的", "全部", "全部的", "各种", "图中", "图片中", "图里", "照片中", "画面中",
    "里的", "一",
})  # fmt: skip
DE = frozenset({"的", "之", "地"})
# Verbs that attach a thing to the noun they describe: 戴安全帽的工人 -> "worker wearing hard hat".
VERBS = {
    "戴": "wearing", "戴着": "wearing", "穿": "wearing", "穿着": "wearing", "披着": "wearing",
    "拿": "holding", "拿着": "holding", "手持": "holding", "手拿": "holding", "握着": "holding",
    "抱着": "holding", "举着": "holding", "背": "carrying", "背着": "carrying", "提着": "carrying",
    "扛着": "carrying", "骑": "riding", "骑着": "riding", "推着": "pushing", "拉着": "pulling",
    "牵着": "walking", "带": "with", "带着": "with", "有": "with", "装着": "with", "装有": "with",
    "没戴": "without", "未戴": "without", "不戴": "without", "没穿": "without", "未穿": "without",
    "没有": "without", "无": "without", "吃": "eating", "吃着": "eating", "开着": "driving",
    "驾驶": "driving", "看": "looking at", "看着": "looking at",
}  # fmt: skip
# Verbs of place, whose object is where the noun is: 坐在椅子上的人 -> "person sitting on chair".
PLACE_VERBS = {"在": "", "位于": "", "坐在": "sitting", "站在": "standing", "躺在": "lying", "停在": "parked",
               "挂在": "hanging", "放在": "placed"}  # fmt: skip
# Words after a noun that say where: 桌子上 -> "on table".
LOCATIVES = {
    "上": "on", "上面": "on", "上边": "on", "之上": "on", "里": "in", "里面": "in", "内": "in", "中": "in",
    "之中": "in", "下": "under", "下面": "under", "底下": "under", "之下": "under", "旁": "next to",
    "旁边": "next to", "边上": "next to", "附近": "near", "前": "in front of", "前面": "in front of",
    "后": "behind", "后面": "behind", "外": "outside", "外面": "outside", "左边": "left of", "右边": "right of",
}  # fmt: skip
CONJUNCTIONS = {"和": "and", "与": "and", "跟": "and", "及": "and", "以及": "and", "或": "or", "或者": "or"}
CONNECTORS = frozenset(FILLERS | DE | set(VERBS) | set(PLACE_VERBS) | set(LOCATIVES) | set(CONJUNCTIONS))
# A composed concept must stay a short phrase, well inside the text encoder's 32 tokens (CLIP's BPE
# gives a common English word one token); a longer one is refused rather than cut.
MAX_COMPOSED_WORDS = 12

log = logging.getLogger("segserve.prompts")


class TooLongError(ValueError):
    """A Chinese concept whose English is longer than a short phrase."""


class UnknownWordsError(ValueError):
    """Parts of a Chinese concept that neither the lexicon nor the glossary knows."""

    def __init__(self, words: list[str]):
        self.words = words
        super().__init__(", ".join(words))


class _Jieba:
    """One jieba tokenizer, built on first use (its dictionary takes ~1 s to load: the server's warm-up
    pays it), with every lexicon's terms added once so they come out whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._fed: weakref.WeakSet[Lexicon] = weakref.WeakSet()

    def cut(self, text: str, lexicon: Lexicon) -> list[str]:
        with self._lock:
            if self._tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)  # it logs "Building prefix dict..." at DEBUG on stderr
                self._tokenizer = jieba.Tokenizer()
                self._tokenizer.initialize()
                for word in CONNECTORS:
                    self._add(word)
            if lexicon not in self._fed:  # a glossary reload brings a new lexicon: its new terms are added
                for term in lexicon:
                    self._add(term)
                self._fed.add(lexicon)
            return list(self._tokenizer.cut(text, HMM=False))

    def _add(self, word: str) -> None:
        # A frequency above most of jieba's own words, so a lexicon term wins over a split into others.
        floor = 20_000 if len(word) > 1 else 2_000
        self._tokenizer.add_word(word, freq=max(self._tokenizer.FREQ.get(word, 0), floor))


JIEBA = _Jieba()


def warm_up(glossary: Path | str | None = None) -> None:
    """Load the lexicon, OpenCC and jieba now (the server's warm-up), not on the first Chinese prompt."""
    translate("红色汽车", get_lexicon(glossary))


def translate(text: str, lexicon: Lexicon) -> str:
    """The English concept for `text`; Latin-script text comes back unchanged.

    Raises `UnknownWordsError` naming the parts nothing knows."""
    if not has_chinese(text):
        return text
    return _translate(normalise(text), lexicon)


@functools.lru_cache(maxsize=4096)
def _translate(key: str, lexicon: Lexicon) -> str:
    whole = lexicon.english(key.replace(" ", ""))
    if whole is not None:
        return whole
    items = _items(JIEBA.cut(key, lexicon), lexicon)
    english = _compose(items)
    if not english:
        raise UnknownWordsError([key])
    return english


def _items(tokens: Sequence[str], lexicon: Lexicon) -> list[tuple[str, str]]:
    """jieba's tokens -> ("word", English) and ("conn", connector); raises on unknown parts."""
    items: list[tuple[str, str]] = []
    unknown: list[str] = []
    latin = ""  # jieba cuts "t-shirt" at the hyphen: adjacent Latin pieces are glued back into one word
    for token in [*tokens, " "]:
        if not has_chinese(token) and not token.isspace():
            latin += token
            continue
        if any(ch.isalnum() for ch in latin):
            items.append(("word", latin))
        latin = ""
        if token.isspace():
            continue
        found = lexicon.english(token)
        if token in LOCATIVES and items and items[-1][0] == "word":
            items.append(("conn", token))  # after a noun, 前面 is "in front of", not the adjective "front"
        elif found is not None:
            items.append(("word", found))
        elif token in CONNECTORS:
            items.append(("conn", token))
        else:
            items.extend(_longest_matches(token, lexicon, unknown))
    if unknown:
        raise UnknownWordsError(list(dict.fromkeys(unknown)))
    return items


def _longest_matches(token: str, lexicon: Lexicon, unknown: list[str]) -> list[tuple[str, str]]:
    """A token jieba did not split into known words: the longest known words, left to right."""
    items: list[tuple[str, str]] = []
    start, pending = 0, ""
    while start < len(token):
        for stop in range(min(len(token), start + 8), start, -1):
            piece = token[start:stop]
            found = lexicon.english(piece)
            if found is not None or piece in CONNECTORS:
                if pending:
                    unknown.append(pending)
                    pending = ""
                items.append(("word", found) if found is not None else ("conn", piece))
                start = stop
                break
        else:
            pending += token[start]
            start += 1
    if pending:
        unknown.append(pending)
    return items


def _compose(items: list[tuple[str, str]]) -> str:
    """Chinese order -> English order: modifiers before the head noun, clauses after it."""
    items = [it for it in items if not (it[0] == "conn" and it[1] in FILLERS)]
    segments: list[list[tuple[str, str]]] = [[]]
    for item in items:
        if item[0] == "conn" and item[1] in DE:
            segments.append([])
        else:
            segments[-1].append(item)
    segments = [s for s in segments if s]
    if not segments:
        return ""
    *modifiers, head = segments
    # In the head, the noun comes before any verb (工人戴安全帽): what follows are clauses.
    head, *head_clauses = _at_verbs(head)
    before: list[str] = []
    after: list[str] = []
    for part in [p for segment in modifiers for p in _at_verbs(segment)]:
        clause = _clause(part)
        if clause is None:
            before.append(_phrase(part))
        else:
            after.append(clause)
    after += [_clause(part) or _phrase(part) for part in head_clauses]
    words = " ".join(w for w in [*before, _phrase(head), *after] if w).split()
    if len(words) > MAX_COMPOSED_WORDS:
        raise TooLongError(" ".join(words))
    return " ".join(words)


def _at_verbs(segment: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """`segment` cut before each verb: 戴安全帽穿背心 -> 戴安全帽, 穿背心 (each verb starts a clause)."""
    parts: list[list[tuple[str, str]]] = [[]]
    for kind, value in segment:
        if kind == "conn" and (value in VERBS or value in PLACE_VERBS) and parts[-1]:
            parts.append([])
        parts[-1].append((kind, value))
    return parts


def _clause(segment: list[tuple[str, str]]) -> str | None:
    """English for a modifier that goes after the noun (a verb or a place), or None for one before it."""
    kind, first = segment[0]
    last_kind, last = segment[-1]
    place = LOCATIVES.get(last) if last_kind == "conn" and len(segment) > 1 else None
    if kind == "conn" and first in VERBS:
        return f"{VERBS[first]} {_phrase(segment[1:])}"
    if kind == "conn" and first in PLACE_VERBS:
        body = segment[1:-1] if place else segment[1:]
        return " ".join(w for w in (PLACE_VERBS[first], place or "on", _phrase(body)) if w)
    if place:
        return f"{place} {_phrase(segment[:-1])}"
    return None


def _phrase(segment: list[tuple[str, str]]) -> str:
    words = []
    for kind, value in segment:
        if kind == "word":
            words.append(value)
        elif value in CONJUNCTIONS:
            words.append(CONJUNCTIONS[value])
    return " ".join(words)


def chinese_labels(concepts: Sequence[Any], glossary: Path | str | None = None) -> list[Any]:
    """The `Concept`s labelled in Chinese (`label_language=zh`): an English label becomes the lexicon's
    first term for its text (person -> 人); a label already Chinese, or one the lexicon lacks, stays.
    (Duck-typed: parsing.py, where `Concept` lives, imports this module.)"""
    lexicon = get_lexicon(glossary)
    out = []
    for c in concepts:
        name = None if c.text is None or has_chinese(c.label) else lexicon.chinese_label(c.text)
        out.append(c if name is None else dataclasses.replace(c, label=name))
    return out


def resolve_texts(labels: Sequence[str], glossary: Path | str | None = None, *, param: str = "prompt") -> list[str]:
    """The English each label's concept is read as; 400 `invalid_prompt` naming every unknown word."""
    if not any(has_chinese(label) for label in labels):
        return list(labels)
    lexicon = get_lexicon(glossary)
    texts: list[str] = []
    unknown: dict[str, list[str]] = {}
    for label in labels:
        try:
            texts.append(translate(label, lexicon))
        except UnknownWordsError as exc:
            unknown[label] = exc.words
            texts.append(label)
        except TooLongError as exc:
            raise InvalidPromptError(
                f"The concept {label!r} reads as {exc} ({len(str(exc).split())} words); at most "
                f"{MAX_COMPOSED_WORDS} fit the model's text encoder. Describe the object in fewer words.",
                param=param,
            ) from None
    if unknown:
        which = "; ".join(f"{', '.join(words)} (in {label!r})" for label, words in unknown.items())
        raise InvalidPromptError(
            f"Unknown Chinese words: {which}. segserve reads Chinese concepts through its lexicon and the "
            f"operator's glossary; add the words to the glossary ({GLOSSARY_HELP}), or write the concept "
            "in English.",
            param=param,
        )
    return texts
