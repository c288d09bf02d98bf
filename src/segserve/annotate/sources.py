"""What `segserve annotate SOURCE` means: a folder, a glob or a text file of paths and URLs, turned
into a stable, sorted list of images, and each image's bytes read (or fetched) and decoded.

    list_images("photos/")          -> Listing(root, [ImageRef("a.jpg", ...), ImageRef("sub/b.png", ...)])
    load_image(ref, settings)        -> (H, W, 3) uint8 RGB, or a SegserveError saying why not

An image's `key` is what the journal and the exports call it: its path relative to SOURCE (the
folder, the glob's fixed prefix, or the list file's folder), or the URL itself.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segserve.errors import ImageTooLargeError, InvalidImageError, InvalidImageURLError, InvalidParameterError
from segserve.settings import Settings

# Lower-case suffixes a folder or glob source picks up; Pillow's allow-list decides the rest.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif", ".mpo"}
)
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class ImageRef:
    key: str  # the journal's and the exports' name for the image (relative path or URL)
    location: str  # absolute path, or the http(s) URL

    @property
    def is_url(self) -> bool:
        return self.location[:8].lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class Listing:
    root: Path  # what keys are relative to
    images: list[ImageRef]


def list_images(source: str | os.PathLike[str]) -> Listing:
    """The images SOURCE names, in a stable order. Raises `InvalidParameterError` (param `source`)
    when SOURCE names nothing usable."""
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_dir():
        root = path.resolve()
        return Listing(root, _sorted_refs(root, (p for p in root.rglob("*") if p.is_file())))
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return Listing(path.parent.resolve(), [ImageRef(path.name, str(path.resolve()))])
        return _list_file(path)
    if any(c in _GLOB_CHARS for c in text):
        root = _glob_root(text)
        files = (Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        return Listing(root, _sorted_refs(root, (p.resolve() for p in files if p.is_file())))
    raise InvalidParameterError(
        f"SOURCE {text!r} is not a folder, an image, a glob or a text file of paths/URLs; check the path.",
        param="source",
    )


def _sorted_refs(root: Path, files: object) -> list[ImageRef]:
    refs = []
    for p in files:  # type: ignore[attr-defined]
        rel = p.relative_to(root)
        # Hidden files and anything inside a hidden folder (.git, .thumbnails, macOS' ._ files) are skipped.
        if any(part.startswith(".") for part in rel.parts) or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        refs.append(ImageRef(rel.as_posix(), str(p)))
    return sorted(refs, key=lambda r: r.key)


def _glob_root(pattern: str) -> Path:
    """The folder before the first component with a wildcard: `data/**/*.jpg` -> `data`."""
    parts = Path(os.path.expanduser(pattern)).parts
    fixed = []
    for part in parts:
        if any(c in _GLOB_CHARS for c in part):
            break
        fixed.append(part)
    return Path(*fixed).resolve() if fixed else Path.cwd().resolve()


def _list_file(path: Path) -> Listing:
    """One path or URL per line (blank lines and `#` comments skipped), kept in the file's order;
    relative paths are relative to the list file's folder. A line listed twice counts once."""
    root = path.parent.resolve()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise InvalidParameterError(
            f"SOURCE {str(path)!r} could not be read as a text list: {exc}.", param="source"
        ) from None
    refs: dict[str, ImageRef] = {}
    for line in lines:
        item = line.strip()
        if not item or item.startswith("#") or item in refs:
            continue
        if item[:8].lower().startswith(("http://", "https://")):
            refs[item] = ImageRef(item, item)
        else:
            refs[item] = ImageRef(item, str((root / item).resolve()))
    return Listing(root, list(refs.values()))


def read_bytes(ref: ImageRef, settings: Settings) -> bytes:
    """The image file's bytes, within `max_image_bytes`; a URL goes through the server's SSRF-safe
    fetcher (private addresses refused unless `url_allow` says otherwise)."""
    if ref.is_url:
        import asyncio

        try:
            # segserve.api's __init__ imports the FastAPI app, so the fetcher needs the [server] extra
            # (moving fetch.py + addresses.py out of api/ would lift that).
            from segserve.api.fetch import fetch_image
        except ModuleNotFoundError as exc:
            raise InvalidImageURLError(
                f"URL images need the [server] extra ({exc.name} is not installed): pip install 'segserve[server]'.",
                param="image",
            ) from None

        return asyncio.run(fetch_image(ref.location, settings))
    try:
        size = os.path.getsize(ref.location)
        if size > settings.max_image_bytes:
            raise ImageTooLargeError(
                f"{ref.key} is {size} bytes, over the {settings.max_image_bytes}-byte limit "
                "(SEGSERVE_MAX_IMAGE_BYTES).",
                param="image",
            )
        with open(ref.location, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InvalidImageError(f"{ref.key} could not be read: {exc.strerror or exc}.", param="image") from None


def load_image(ref: ImageRef, settings: Settings) -> np.ndarray:
    """`ref` read and decoded with the server's limits: (H, W, 3) uint8 RGB."""
    from segserve.images import decode_image

    return decode_image(
        read_bytes(ref, settings), max_pixels=settings.max_image_pixels, max_aspect_ratio=settings.max_aspect_ratio
    )
