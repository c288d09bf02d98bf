"""Helpers for the annotate tests (importable by name: conftest.py puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins")
PROMPT = "person, cat"
# The tiny random model scores everything ~0.25: these keep a few instances of both concepts per image.
OPTIONS = {"threshold": 0.25, "max_segments": 5}
OPTION_FLAGS = ["--threshold", "0.25", "--max-segments", "5"]


def make_folder(root: Path, n: int = len(PHOTOS)) -> Path:
    """`root` with n photos (the 4th and later in sub/), a hidden file, a text file and broken.jpg."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        pixels = getattr(data, name)()
        image = Image.fromarray(pixels).convert("RGB").resize((64 + 8 * (i % 3), 48 + 4 * (i % 4)))
        folder = root / "sub" if i >= 3 else root
        image.save(folder / f"{i:03d}_{name}.{'png' if i % 2 else 'jpg'}")
    (root / ".hidden.jpg").write_bytes(b"ignored")
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return root


FORMATS = ["coco", "yolo", "labelstudio"]


def exports(out: Path) -> dict[str, bytes]:
    """Every exported file's bytes by relative path (the journal aside; links by their target)."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if rel.startswith("journal.sqlite"):
            continue
        if path.is_symlink():
            files[rel] = str(path.readlink()).encode()
        elif path.is_file():
            files[rel] = path.read_bytes()
    return files
