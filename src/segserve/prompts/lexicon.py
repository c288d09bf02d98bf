"""The Chinese -> English concept lexicon: the shipped data (`lexicon_zh.tsv`) plus the operator's
glossary (`SEGSERVE_GLOSSARY`), loaded once, on first use, and reloaded on SIGHUP.

The glossary is a UTF-8 text file, one entry per line, the Chinese term and the English concept the
model should read separated by a TAB; blank lines and lines starting with `#` are ignored:

    # our site's words
    安全绳\tsafety harness
    塔吊\ttower crane

Its entries add to the shipped ones and override them. A TAB (not a comma) separates the columns
because commas already separate concepts in a prompt, and English concepts may contain them.

>>> lex = Lexicon.from_text("人\\tperson\\n# a comment\\n行人\\tperson\\n")
>>> lex.english("行人"), lex.chinese_label("person")
('person', '人')
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger("segserve.prompts")

DATA_FILE = "lexicon_zh.tsv"
# Chinese characters (the unified ideographs, extension A, compatibility and extension B+ blocks).
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
# An English concept is a short phrase: a few words, no concept separators. Kept well inside the text
# encoder's 32 tokens (CLIP's BPE gives a common English word one token; the engine truncates anyway).
MAX_ENGLISH_WORDS = 8


def has_chinese(text: str) -> bool:
    return CJK.search(text) is not None


@functools.lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """NFKC (full-width forms, U+3000), traditional -> simplified, lower case, whitespace collapsed."""
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    if has_chinese(text):
        text = _t2s().convert(text)
    return text.casefold()


_SEPARATORS = re.compile(r"[,，、;；]")

GLOSSARY_HELP = (
    "a UTF-8 file named by SEGSERVE_GLOSSARY, one `Chinese term<TAB>English concept` per line (# starts a "
    "comment); the server reloads it on SIGHUP (kill -HUP <pid>)"
)


class GlossaryError(ValueError):
    """The operator's glossary has bad lines (each named with its line number) or cannot be read."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        super().__init__(f"SEGSERVE_GLOSSARY {self.path}: {shown}. Expected {GLOSSARY_HELP}.")


def _entries(text: str, normalise: Callable[[str], str] = str.strip) -> tuple[dict[str, str], list[str]]:
    """(term -> English, problems): each problem starts with its line number."""
    entries: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in raw.split("\t")]
        where = f"line {number}"
        if len(parts) != 2:
            problems.append(f"{where}: expected 2 columns separated by a TAB, found {len(parts)}")
            continue
        term, english = normalise(parts[0]), " ".join(parts[1].split())
        if not term or not CJK.search(term):
            problems.append(f"{where}: the term {parts[0]!r} has no Chinese characters")
        elif not english:
            problems.append(f"{where}: the English concept for {parts[0]!r} is empty")
        elif CJK.search(english) or _SEPARATORS.search(english):
            problems.append(f"{where}: the English concept {english!r} must be English words without , or ;")
        elif len(english.split()) > MAX_ENGLISH_WORDS:
            problems.append(f"{where}: the English concept {english!r} is over {MAX_ENGLISH_WORDS} words")
        else:
            entries[term] = english
    return entries, problems


@dataclass(frozen=True, eq=False)  # hashed by identity: translations are cached per lexicon
class Lexicon:
    """Simplified-Chinese term -> the English concept the model reads, and back (for Chinese labels)."""

    entries: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)  # English -> its first Chinese term

    @classmethod
    def from_text(cls, text: str, source: str = "lexicon") -> Lexicon:
        entries, problems = _entries(text)
        if problems:
            raise ValueError(f"{source}: {'; '.join(problems)}")
        return cls(entries, _first_terms(entries))

    def english(self, term: str) -> str | None:
        return self.entries.get(term)

    def chinese_label(self, english: str) -> str | None:
        """The Chinese name of an English concept (its first term in the data), for Chinese labels."""
        return self.labels.get(english.casefold())

    def with_glossary(self, glossary: Mapping[str, str]) -> Lexicon:
        entries = {**self.entries, **glossary}
        labels = dict(self.labels)
        for term, english in glossary.items():
            labels.setdefault(english.casefold(), term)
        return Lexicon(entries, labels)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)


def _first_terms(entries: Mapping[str, str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for term, english in entries.items():
        labels.setdefault(english.casefold(), term)
    return labels


def read_glossary(path: Path | str) -> dict[str, str]:
    """The glossary's entries, terms normalised as prompts are (traditional -> simplified).

    Raises `GlossaryError` listing every bad line, or when the file cannot be read."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GlossaryError(path, [f"cannot be read ({exc})"]) from None
    entries, problems = _entries(text, lambda term: normalise(term).replace(" ", ""))
    if problems:
        raise GlossaryError(path, problems)
    return entries


class _Store:
    """The loaded lexicons, one per glossary path (None: the shipped data alone). Loads count in
    `loads`, so tests can tell a cached lexicon from a reloaded one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base: Lexicon | None = None
        self._by_glossary: dict[str | None, Lexicon] = {}
        self.loads = {"data": 0, "glossary": 0}

    def base(self) -> Lexicon:
        with self._lock:
            if self._base is None:
                text = resources.files("segserve.prompts").joinpath(DATA_FILE).read_text(encoding="utf-8")
                self._base = Lexicon.from_text(text, DATA_FILE)
                self.loads["data"] += 1
            return self._base

    def get(self, glossary: Path | str | None) -> Lexicon:
        key = None if glossary is None else str(glossary)
        found = self._by_glossary.get(key)
        if found is not None:
            return found
        base = self.base()
        lexicon = base if key is None else base.with_glossary(read_glossary(key))
        with self._lock:
            if key is not None:
                self.loads["glossary"] += 1
            return self._by_glossary.setdefault(key, lexicon)

    def reload(self, glossary: Path | str | None) -> bool:
        """Re-read the glossary (SIGHUP). On bad lines the old glossary stays and the errors are logged."""
        if glossary is None:
            return False
        try:
            lexicon = self.base().with_glossary(read_glossary(glossary))
        except GlossaryError as exc:
            log.error("glossary not reloaded, the previous one stays in use: %s", exc)
            return False
        with self._lock:
            self.loads["glossary"] += 1
            self._by_glossary[str(glossary)] = lexicon
        log.info("glossary %s reloaded: %d entries in all", glossary, len(lexicon))
        return True


STORE = _Store()


def get_lexicon(glossary: Path | str | None = None) -> Lexicon:
    """The lexicon with `glossary` applied, loaded on first use and kept (see `reload_glossary`)."""
    return STORE.get(glossary)


def reload_glossary(glossary: Path | str | None) -> bool:
    """What SIGHUP runs: True when the glossary was re-read, False when the old one stays."""
    return STORE.reload(glossary)
