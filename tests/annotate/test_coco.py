"""The COCO export, read by the real consumer: pycocotools loads it, `annToMask` gives back our
masks exactly, and COCOeval (and faster-coco-eval) evaluate it as predictions."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segserve.annotate import export
from segserve.annotate.journal import Journal


def _journal_masks(out):
    """{file_name: [(label, box, score, mask), ...]} straight from the journal."""
    with Journal(out) as journal:
        return {
            r.key: [(r.result.labels[i], r.result.boxes[i].tolist(), round(float(r.result.scores[i]), 4),
                     r.result.mask(i)) for i in range(len(r.result))]
            for r in journal.done()
        }  # fmt: skip


def test_pycocotools_loads_it_and_ann_to_mask_returns_our_masks(reference_run):
    out, summary = reference_run
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "coco.json"))
    ours = _journal_masks(out)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["person", "cat"]
    assert len(coco.getImgIds()) == summary.done == len(ours)
    seen = 0
    for image in coco.loadImgs(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        expected = ours[image["file_name"]]
        assert len(anns) == len(expected)
        for ann, (label, (x1, y1, x2, y2), score, mask) in zip(anns, expected):
            got = coco.annToMask(ann).astype(bool)
            assert got.shape == (image["height"], image["width"])
            np.testing.assert_array_equal(got, mask)
            assert coco.cats[ann["category_id"]]["name"] == label
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1] and ann["area"] == mask.sum() and ann["iscrowd"] == 0
            assert ann["score"] == score
            seen += 1
    assert seen == sum(summary.instances.values()) > 0


def _as_ground_truth(path, tmp_path):
    """The export with scores dropped, standing in for a labelled set to evaluate against."""
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        del ann["score"]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(data))
    return gt, data["annotations"]


def test_cocoeval_scores_the_export_as_predictions(reference_run, tmp_path):
    gt_path, predictions = _as_ground_truth(reference_run[0] / "coco.json", tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(json.loads((reference_run[0] / "coco.json").read_text())["annotations"])
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == 1.0  # predictions equal to the ground truth: a perfect mask AP
    assert len(predictions) > 0


def test_faster_coco_eval_reads_it_too(reference_run, tmp_path):
    from faster_coco_eval import COCO as FastCOCO
    from faster_coco_eval import COCOeval_faster

    gt_path, _ = _as_ground_truth(reference_run[0] / "coco.json", tmp_path)
    gt = FastCOCO(str(gt_path))
    dt = gt.loadRes(json.loads((reference_run[0] / "coco.json").read_text())["annotations"])
    ev = COCOeval_faster(gt, dt, iouType="segm", print_function=lambda *a: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == 1.0


def test_polygon_masks_rasterise_back_through_pycocotools(reference_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference_run[0], out, symlinks=True)
    with Journal(out) as journal:
        run = journal.meta("run")
        run["coco_masks"] = "polygon"
        journal.set_meta("run", run)
    export(out, ["coco"])
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "coco.json"))
    ours = _journal_masks(out)
    for image in coco.loadImgs(coco.getImgIds()):
        for ann, expected in zip(coco.loadAnns(coco.getAnnIds(imgIds=image["id"])), ours[image["file_name"]]):
            assert isinstance(ann["segmentation"], list)
            got = coco.annToMask(ann).astype(bool)
            # Polygons trace the outer border: the mask, with any holes filled.
            assert (got >= expected[3]).all() and got.sum() >= expected[3].sum()
