"""YOLO segmentation (`OUT/yolo/`): the layout Ultralytics' dataset loader reads.

    yolo/data.yaml              train/val: images, names: {0: person, 1: helmet}
    yolo/images/<key>           a symbolic link to the source image (a copy with images="copy")
    yolo/labels/<key stem>.txt  one line per instance: class index, then x y x y ... normalised to 0..1

Ultralytics finds a label by replacing `/images/` with `/labels/` in the image's path, so both
trees mirror SOURCE's sub-folders. A YOLO instance is one polygon: a mask in several pieces keeps
its largest (by area), as Ultralytics' own COCO converter keeps one outline per instance. URL
sources have no local file to link, so their images are left out of this export (COCO and Label
Studio keep them).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from segserve.annotate.exporters import atomic_open, write_text
from segserve.annotate.journal import Record


def write_yolo(folder: Path, records: Iterable[Record], categories: list[str], *, images: str = "link") -> Path:
    """Write the dataset under `folder`; returns data.yaml's path. `images`: "link" or "copy"."""
    from segserve.masks import mask_to_polygons

    index = {name: i for i, name in enumerate(categories)}
    written: set[Path] = set()
    for record in records:
        if record.location.startswith(("http://", "https://")):
            continue
        image_path = folder / "images" / record.key
        label_path = (folder / "labels" / record.key).with_suffix(".txt")
        _place_image(Path(record.location), image_path, images)
        lines = []
        for i, label in enumerate(record.result.labels):
            polygons = mask_to_polygons(record.result.mask(i))
            if not polygons:
                continue
            points = np.asarray(max(polygons, key=_area), dtype=np.float64).reshape(-1, 2)
            points /= (record.width, record.height)
            lines.append(" ".join([str(index[label]), *(f"{v:.6f}" for v in points.reshape(-1))]))
        write_text(label_path, "".join(line + "\n" for line in lines))
        written.update((image_path, label_path))
    _remove_stale(folder, written)
    # JSON strings are valid YAML scalars: names with quotes or colons stay exact without a YAML library.
    names = "".join(f"  {i}: {json.dumps(name)}\n" for i, name in enumerate(categories))
    data_yaml = folder / "data.yaml"
    # No `path:` key: Ultralytics then takes data.yaml's own folder, so the dataset can move as a whole.
    write_text(data_yaml, f"train: images\nval: images\nnames:\n{names}")
    return data_yaml


def _area(polygon: list[int]) -> float:
    xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _place_image(source: Path, target: Path, mode: str) -> None:
    """Link (or copy) the image into the dataset, replacing whatever stood there in one step."""
    if mode == "copy":
        with atomic_open(target, "wb") as f, open(source, "rb") as src:
            shutil.copyfileobj(src, f)
        return
    if target.is_symlink() and os.readlink(target) == str(source):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(source)
    os.replace(tmp, target)


def _remove_stale(folder: Path, keep: set[Path]) -> None:
    """Drop labels and links of images that left the run (a --restart, a smaller SOURCE)."""
    for sub in ("images", "labels"):
        root = folder / sub
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*"), reverse=True):
            if (path.is_file() or path.is_symlink()) and path not in keep:
                path.unlink()
