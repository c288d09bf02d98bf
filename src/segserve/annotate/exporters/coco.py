"""COCO instances JSON (`OUT/coco.json`): what pycocotools, detectron2, mmdet and datumaro read.

`images[].file_name` is the image's path relative to SOURCE (or its URL); `categories` are the
concepts in prompt order with ids 1..K; each annotation's `segmentation` is COCO RLE (counts as
the compressed string, as pycocotools writes it) or polygons, `bbox` is x, y, w, h of the mask's
box, `area` the mask's pixel count, `score` the model's confidence and `iscrowd` 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pycocotools import mask as coco_mask

from segserve.annotate.exporters import atomic_open
from segserve.annotate.journal import Record


def category_ids(categories: list[str], records: Iterable[Record] = ()) -> dict[str, int]:
    """Label -> id, 1-based in the given order (the order every export shares)."""
    return {name: i + 1 for i, name in enumerate(categories)}


def write_coco(path: Path, records: Iterable[Record], categories: list[str], *, masks: str = "rle") -> Path:
    """Stream `records` into a COCO instances file at `path`. `masks`: "rle" or "polygon"."""
    ids = category_ids(categories)
    images: list[dict[str, Any]] = []
    with atomic_open(path) as f:
        # Streamed: the annotations of a million images are written one by one, never held as one list.
        f.write('{"info": {"description": "segserve annotate"}, "licenses": [], ')
        f.write('"categories": ' + json.dumps([{"id": i, "name": n, "supercategory": ""} for n, i in ids.items()]))
        f.write(', "annotations": [')
        ann_id = 0
        for image_id, record in enumerate(records, start=1):
            images.append({"id": image_id, "file_name": record.key, "width": record.width, "height": record.height})
            for ann in _annotations(record, image_id, ids, masks):
                ann_id += 1
                f.write((", " if ann_id > 1 else "") + json.dumps({"id": ann_id, **ann}))
        f.write('], "images": ' + json.dumps(images) + "}\n")
    return path


def _annotations(record: Record, image_id: int, ids: dict[str, int], masks: str) -> Iterable[dict[str, Any]]:
    from segserve.masks import mask_to_polygons

    result = record.result
    rles = result.rles or []
    areas = coco_mask.area(rles) if rles else []
    for i, label in enumerate(result.labels):
        x1, y1, x2, y2 = (int(v) for v in result.boxes[i])
        if masks == "polygon":
            segmentation: Any = mask_to_polygons(result.mask(i))
        else:
            segmentation = {"size": [record.height, record.width], "counts": rles[i]["counts"].decode("ascii")}
        yield {
            "image_id": image_id,
            "category_id": ids[label],
            "segmentation": segmentation,
            "area": int(areas[i]),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": round(float(result.scores[i]), 4),
            "iscrowd": 0,
        }
