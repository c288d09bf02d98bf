"""`annotate()` and `segserve annotate` in-process on the tiny model: journaling, failures, resume,
a clean stop, and the command's exit statuses."""

from __future__ import annotations

import shutil
import threading

import pytest
from annotate_support import FORMATS, OPTION_FLAGS, OPTIONS, PROMPT, exports

from segserve.annotate import annotate, export
from segserve.annotate.runner import LocalBackend, run
from segserve.cli import main
from segserve.settings import Settings
from segserve.types import SegmentRequest


def test_every_image_is_journaled_and_a_broken_one_is_a_failure_by_reason(reference_run):
    out, summary = reference_run
    assert (summary.total, summary.done, summary.failed, summary.pending) == (7, 6, 1, 0)
    assert not summary.ok and summary.failures_by_reason == {"invalid_image": 1}
    assert summary.failures[0][0] == "broken.jpg"
    assert set(summary.instances) <= {"person", "cat"} and sum(summary.instances.values()) > 6
    assert {"coco.json", "yolo/data.yaml", "labelstudio/tasks.json", "labelstudio/config.xml"} <= set(exports(out))


def test_a_rerun_does_no_work_and_writes_the_same_bytes(reference_run, tmp_path, photo_folder, tiny_segmenter):
    ref_out, _ = reference_run
    out = tmp_path / "out"
    shutil.copytree(ref_out, out, symlinks=True)
    summary = annotate(photo_folder, out, PROMPT, formats=FORMATS, segmenter=tiny_segmenter, **_model(ref_out))
    assert summary.processed == 0
    assert exports(out) == exports(ref_out)


def test_retry_failed_retries_only_the_failures(fresh_folder, tmp_path, tiny_segmenter, tiny_model_path):
    out = tmp_path / "out"
    kw = {"segmenter": tiny_segmenter, "model": str(tiny_model_path), **OPTIONS}
    assert annotate(fresh_folder, out, PROMPT, **kw).failed == 1
    shutil.copy(fresh_folder / "000_astronaut.jpg", fresh_folder / "broken.jpg")  # the user fixes the file
    again = annotate(fresh_folder, out, PROMPT, **kw)
    assert again.processed == 0 and again.failed == 1  # failures are not retried unless asked
    retried = annotate(fresh_folder, out, PROMPT, retry_failed=True, **kw)
    assert retried.processed == 1 and retried.ok


class _StopAfter:
    """The tiny segmenter, setting `stop` (what Ctrl-C does) once it has segmented `n` images."""

    def __init__(self, segmenter, stop: threading.Event, n: int) -> None:
        self.segmenter, self.stop, self.n, self.model_id = segmenter, stop, n, segmenter.model_id

    def segment(self, *args, **kwargs):
        result = self.segmenter.segment(*args, **kwargs)
        self.n -= 1
        if self.n == 0:
            self.stop.set()
        return result


def test_a_stop_finishes_the_image_in_flight_and_a_rerun_completes_it(
    reference_run, photo_folder, tmp_path, tiny_segmenter, tiny_model_path
):
    settings = Settings.defaults().replace(model=str(tiny_model_path))
    request = SegmentRequest.resolve(settings, prompt=PROMPT, mask_format="rle", **OPTIONS)
    stop = threading.Event()
    out = tmp_path / "out"
    backend = LocalBackend(_StopAfter(tiny_segmenter, stop, 2), request, settings)
    summary = run(backend, photo_folder, out, request, settings, formats=FORMATS, quiet=True, stop=stop)
    assert summary.interrupted and summary.processed == 2 and summary.done == 2 and summary.pending == 5
    assert (
        main(
            [
                "annotate",
                str(photo_folder),
                "-p",
                PROMPT,
                "-o",
                str(out),
                "--format",
                ",".join(FORMATS),
                "--model",
                str(tiny_model_path),
                "-q",
                *OPTION_FLAGS,
            ]
        )
        == 1
    )  # fmt: skip  (1: broken.jpg)
    assert exports(out) == exports(reference_run[0])


def test_the_command_exits_0_only_when_every_image_succeeded(photo_folder, tmp_path, tiny_model_path, capsys):
    good = tmp_path / "good"
    shutil.copytree(photo_folder / "sub", good)
    argv = ["annotate", str(good), "-p", PROMPT, "--model", str(tiny_model_path), "-q", *OPTION_FLAGS]
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    # the same OUT with another prompt: refused, naming what differs (exit 2)
    assert main([*argv[:3], "dog", *argv[4:], "-o", str(tmp_path / "out")]) == 2
    assert "--prompt" in capsys.readouterr().err
    assert main([*argv[:3], "dog", *argv[4:], "-o", str(tmp_path / "out"), "--restart"]) == 0
    assert main(["annotate", "--export-only", "-o", str(tmp_path / "out"), "--format", "yolo", "-q"]) == 0
    assert (tmp_path / "out" / "yolo" / "data.yaml").read_text().endswith('  0: "dog"\n')


def test_export_only_rewrites_the_same_files(reference_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference_run[0], out, symlinks=True)
    for path in (out / "coco.json", out / "labelstudio" / "tasks.json"):
        path.unlink()
    summary = export(out)
    assert summary.failed == 1 and exports(out) == exports(reference_run[0])


@pytest.mark.parametrize(
    "mode, categories, least",
    [
        ("grid", ["object"], 0),  # the tiny tracker's random masks may all be too small to keep
        ("vocabulary", None, 1),  # None: the settings' vocabulary (COCO's 80)
    ],
)
def test_an_empty_prompt_annotates_everything(
    photo_folder, tmp_path, tiny_segmenter, tiny_model_path, mode, categories, least
):
    import json

    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(photo_folder / "000_astronaut.jpg", one)
    out = tmp_path / "out"
    summary = annotate(one, out, "", segmenter=tiny_segmenter, model=str(tiny_model_path), everything_mode=mode,
                       threshold=0.0, max_segments=3)  # fmt: skip
    assert summary.ok
    coco = json.loads((out / "coco.json").read_text())
    names = [c["name"] for c in coco["categories"]]
    assert names == (categories or [c.strip() for c in Settings.defaults().vocabulary.split(",")])
    assert least <= len(coco["annotations"]) <= 3


def _model(out):
    from segserve.annotate.journal import Journal

    with Journal(out) as journal:
        return {"model": journal.meta("fingerprint")["model"], **OPTIONS}


def test_a_url_to_a_private_address_is_refused_by_the_ssrf_guard_and_journaled(
    photo_folder, tmp_path, tiny_segmenter, tiny_model_path
):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{photo_folder / '000_astronaut.jpg'}\nhttp://127.0.0.1:9/cat.jpg\n")
    summary = annotate(listing, tmp_path / "out", PROMPT, segmenter=tiny_segmenter, model=str(tiny_model_path),
                       **OPTIONS)  # fmt: skip
    assert summary.done == 1 and summary.failures_by_reason == {"image_url_forbidden": 1}
