"""The run's memory: an SQLite journal in OUT (`journal.sqlite`, WAL) with one row per image.

Each image's outcome is committed in its own transaction as soon as it is known, so a `kill -9`
loses at most the images in flight; a re-run asks `todo()` and carries on. WAL with
`synchronous=NORMAL` survives a killed process (only an OS crash may lose the last commits, which
are then simply redone). The run's fingerprint (prompt, model, options) is stored once: a re-run
that asks for something else is refused, since mixing two runs' results in one export is wrong.

    images(key, location, pos, status, width, height, result, error_code, error_message)
      status: pending | done | failed;  pos: the image's place in the latest listing (NULL: gone)
      result: JSON {"rles": [COCO counts], "boxes": [[x1,y1,x2,y2]], "scores": [...], "labels": [...]}
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segserve.errors import AnnotateRunMismatchError
from segserve.types import SegmentationResult

JOURNAL_NAME = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    key TEXT PRIMARY KEY,
    location TEXT,
    pos INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    width INTEGER,
    height INTEGER,
    result TEXT,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS images_pos ON images (pos);
"""


@dataclass(frozen=True)
class Record:
    """One finished image as the exporters see it."""

    key: str
    location: str
    width: int
    height: int
    result: SegmentationResult


def result_to_json(result: SegmentationResult) -> str:
    rles = result.rles or []
    return json.dumps(
        {
            "rles": [r["counts"].decode("ascii") if isinstance(r["counts"], bytes) else r["counts"] for r in rles],
            "boxes": result.boxes.tolist(),
            # The API's precision (4 decimals): a run through --server then journals the same numbers.
            "scores": [round(float(s), 4) for s in result.scores],
            "labels": list(result.labels),
        },
        separators=(",", ":"),
    )


def result_from_json(text: str, height: int, width: int) -> SegmentationResult:
    data = json.loads(text)
    rles = [{"size": [height, width], "counts": c.encode("ascii")} for c in data["rles"]]
    return SegmentationResult(None, data["boxes"], data["scores"], data["labels"], (height, width), rles=rles)


class Journal:
    """The journal of one OUT folder. Use as a context manager, or call `close()`."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / JOURNAL_NAME
        self.out.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: the Ray and server runners hand results over from their own threads,
        # but every write still happens on one thread at a time (the runner's loop).
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def existing(cls, out: str | Path) -> Journal:
        """The journal already in `out` (for --export-only); `InvalidParameterError` if there is none."""
        from segserve.errors import InvalidParameterError

        if not (Path(out) / JOURNAL_NAME).is_file():
            raise InvalidParameterError(
                f"{out} holds no {JOURNAL_NAME}: run `segserve annotate SOURCE -o {out}` first.", param="out"
            )
        return cls(out)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # --- the run's identity ------------------------------------------------------------------
    def meta(self, name: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, name: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value, sort_keys=True)))

    def claim(self, fingerprint: dict[str, Any], *, restart: bool = False) -> None:
        """Make this journal the one of the run `fingerprint` describes. A journal of another run is
        refused (`AnnotateRunMismatchError` naming the first difference) unless `restart`, which empties it."""
        stored = self.meta("fingerprint")
        if stored is not None and stored != json.loads(json.dumps(fingerprint)) and not restart:
            name = next(k for k in sorted(set(stored) | set(fingerprint)) if stored.get(k) != fingerprint.get(k))
            raise AnnotateRunMismatchError(
                f"{self.out} holds a run with {name}={stored.get(name)!r}, this one asks {fingerprint.get(name)!r}; "
                "add --restart to discard that run, or choose a new -o OUT.",
                param=name,
            )
        with self._transaction():
            if restart:
                self._db.execute("DELETE FROM images")
            self.set_meta("fingerprint", fingerprint)

    def sync_listing(self, keys: Sequence[str], locations: Sequence[str] | None = None) -> None:
        """Record SOURCE's current listing (keys, and where each image is: path or URL): new images
        become pending; every image gets its place; images no longer listed keep their rows (their
        work is not lost) but leave the exports."""
        locations = locations or keys
        with self._transaction():
            self._db.execute("UPDATE images SET pos = NULL")
            self._db.executemany(
                "INSERT INTO images (key, location, pos) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET pos = excluded.pos, location = excluded.location",
                ((k, loc, i) for i, (k, loc) in enumerate(zip(keys, locations))),
            )

    # --- progress ----------------------------------------------------------------------------
    def todo(self, *, retry_failed: bool = False) -> list[str]:
        wanted = ("pending", "failed") if retry_failed else ("pending",)
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            f"SELECT key FROM images WHERE pos IS NOT NULL AND status IN ({marks}) ORDER BY pos", wanted
        )
        return [k for (k,) in rows]

    def record_done(self, key: str, result: SegmentationResult) -> None:
        height, width = result.image_size
        self._db.execute(
            "UPDATE images SET status = 'done', width = ?, height = ?, result = ?, error_code = NULL, "
            "error_message = NULL WHERE key = ?",
            (width, height, result_to_json(result), key),
        )

    def record_failed(self, key: str, code: str, message: str) -> None:
        self._db.execute(
            "UPDATE images SET status = 'failed', result = NULL, error_code = ?, error_message = ? WHERE key = ?",
            (code, message, key),
        )

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM images WHERE pos IS NOT NULL GROUP BY status")
        return {"pending": 0, "done": 0, "failed": 0, **dict(rows.fetchall())}

    def failures(self) -> list[tuple[str, str, str]]:
        """(key, error code, message) of each failed image, in listing order."""
        rows = self._db.execute(
            "SELECT key, error_code, error_message FROM images WHERE pos IS NOT NULL AND status = 'failed' ORDER BY pos"
        )
        return list(rows.fetchall())

    def labels(self) -> list[str]:
        """Every label any finished image carries (SQLite's JSON1 reads them without decoding masks)."""
        rows = self._db.execute(
            "SELECT DISTINCT j.value FROM images, json_each(images.result, '$.labels') AS j "
            "WHERE images.pos IS NOT NULL AND images.status = 'done'"
        )
        return [v for (v,) in rows]

    def done(self) -> Iterator[Record]:
        """Every finished image in listing order, one at a time (the exports never hold all masks)."""
        rows = self._db.execute(
            "SELECT key, location, width, height, result FROM images "
            "WHERE pos IS NOT NULL AND status = 'done' ORDER BY pos"
        )
        for key, location, width, height, text in rows:
            yield Record(key, location or key, width, height, result_from_json(text, height, width))

    def _transaction(self) -> Any:
        db = self._db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type: object, *rest: object) -> None:
                db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()
