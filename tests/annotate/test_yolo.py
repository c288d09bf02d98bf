"""The YOLO export, read by Ultralytics' own dataset loader (`check_det_dataset` + `YOLODataset`,
what `yolo train data=.../data.yaml` runs): it must find every image and return our instances."""

from __future__ import annotations

import shutil

import numpy as np
import PIL.Image
import pytest

from segserve.annotate.exporters.yolo import _area
from segserve.annotate.journal import Journal
from segserve.masks import mask_to_polygons


@pytest.fixture
def ultralytics_offline(tmp_path, monkeypatch):
    # Read at import: no hub calls, no settings file in the home folder.
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics-config"))
    # Importing ultralytics replaces PIL.Image.open process-wide (a hook that pip-installs pi-heif on
    # an unidentified image); monkeypatch puts Pillow's own back after the test, for the tests after it.
    monkeypatch.setattr(PIL.Image, "open", PIL.Image.open)
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    return check_det_dataset, YOLODataset


def test_ultralytics_reads_our_images_and_instances(reference_run, tmp_path, ultralytics_offline):
    check_det_dataset, YOLODataset = ultralytics_offline
    out = reference_run[0]
    dataset_dir = tmp_path / "yolo"
    shutil.copytree(out / "yolo", dataset_dir, symlinks=True)  # the loader writes labels.cache beside it
    data = check_det_dataset(str(dataset_dir / "data.yaml"))
    assert data["names"] == {0: "person", 1: "cat"} and data["nc"] == 2
    dataset = YOLODataset(img_path=data["train"], data=data, task="segment", imgsz=64, augment=False)
    loaded = {label["im_file"]: label for label in dataset.labels}

    with Journal(out) as journal:
        records = list(journal.done())
    assert sorted(loaded) == sorted(str(dataset_dir / "images" / r.key) for r in records)
    for record in records:
        label = loaded[str(dataset_dir / "images" / record.key)]
        expected_cls = [["person", "cat"].index(lbl) for lbl in record.result.labels]
        assert label["cls"].ravel().astype(int).tolist() == expected_cls
        assert label["shape"] == (record.height, record.width)
        for segment, i in zip(label["segments"], range(len(record.result))):
            polygon = max(mask_to_polygons(record.result.mask(i)), key=_area)
            expected = np.asarray(polygon, float).reshape(-1, 2) / (record.width, record.height)
            np.testing.assert_allclose(segment, expected, atol=1e-6)
