"""Label Studio (`OUT/labelstudio/`): `tasks.json` with each image's predictions as polygon labels,
and `config.xml`, the labelling config those predictions match (one `<Label>` per concept).

Polygons (in percent of the image, Label Studio's unit) rather than brush RLE: Label Studio's brush
encoding needs `label-studio-sdk`, whose pins (numpy, OpenCV) would downgrade this environment's,
and polygons are what annotators edit. A mask in several pieces keeps its largest, as in the YOLO
export. A task's image is its URL, or `prefix + key` for a file: with the default prefix, start
Label Studio with LOCAL_FILES_SERVING_ENABLED=true and LOCAL_FILES_DOCUMENT_ROOT=SOURCE (README).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from segserve.annotate.exporters import atomic_open, write_text
from segserve.annotate.exporters.yolo import _area
from segserve.annotate.journal import Record

FROM_NAME, TO_NAME = "label", "image"


def labelling_config(categories: list[str]) -> str:
    labels = "".join(f"    <Label value={quoteattr(name)}/>\n" for name in categories)
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image"/>\n'
        f'  <PolygonLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}  </PolygonLabels>\n'
        "</View>\n"
    )


def write_labelstudio(
    folder: Path, records: Iterable[Record], categories: list[str], *, model_version: str, prefix: str
) -> Path:
    """Write tasks.json and config.xml under `folder`; returns tasks.json's path."""
    write_text(folder / "config.xml", labelling_config(categories))
    path = folder / "tasks.json"
    with atomic_open(path) as f:
        # Streamed like the COCO file: one task at a time.
        f.write("[")
        for n, record in enumerate(records):
            f.write(("," if n else "") + "\n" + json.dumps(_task(record, model_version, prefix)))
        f.write("\n]\n")
    return path


def _task(record: Record, model_version: str, prefix: str) -> dict[str, Any]:
    from segserve.masks import mask_to_polygons

    result = record.result
    regions = []
    for i, label in enumerate(result.labels):
        polygons = mask_to_polygons(result.mask(i))
        if not polygons:
            continue
        flat = max(polygons, key=_area)
        points = [
            [round(100.0 * x / record.width, 4), round(100.0 * y / record.height, 4)]
            for x, y in zip(flat[0::2], flat[1::2])
        ]
        regions.append(
            {
                "id": f"r{i + 1}",
                "type": "polygonlabels",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "original_width": record.width,
                "original_height": record.height,
                "image_rotation": 0,
                "value": {"points": points, "closed": True, "polygonlabels": [label]},
                "score": round(float(result.scores[i]), 4),
            }
        )
    is_url = record.location.startswith(("http://", "https://"))
    score = round(float(result.scores.mean()), 4) if len(result) else 0.0
    return {
        "data": {"image": record.location if is_url else prefix + record.key, "segserve_key": record.key},
        "predictions": [{"model_version": model_version, "score": score, "result": regions}],
    }
