"""Training-set formats written from the journal: COCO instances JSON, YOLO segmentation, Label Studio.

Every file is written to a temporary name beside its target and moved into place with
`os.replace`, so a reader (or a killed run) never sees half a file, and the same journal always
gives the same bytes. Formats datumaro converts from COCO (CVAT, VOC, ...) are reached through it
(README "Annotate a dataset"), not written here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

FORMATS = ("coco", "yolo", "labelstudio")


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file that appears at `path` complete or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8", newline=None if "b" in mode else "\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)
