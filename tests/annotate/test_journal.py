"""The SQLite journal: one row per image, a run's fingerprint, results stored exactly."""

from __future__ import annotations

import numpy as np
import pytest

from segserve.annotate.journal import Journal, result_from_json, result_to_json
from segserve.errors import AnnotateRunMismatchError, InvalidParameterError
from segserve.types import SegmentationResult

RUN = {"prompt": [["dog", "dog", []]], "model": "tiny", "threshold": 0.5}


def _result() -> SegmentationResult:
    masks = np.zeros((2, 5, 7), bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 4, 6] = True
    return SegmentationResult(masks, [[2, 1, 5, 3], [6, 4, 7, 5]], [0.9, 0.25], ["dog", "cat"], (5, 7))


def test_a_result_round_trips_through_its_json_exactly():
    result = _result()
    back = result_from_json(result_to_json(result), 5, 7)
    np.testing.assert_array_equal(back.masks, result.masks)
    np.testing.assert_array_equal(back.boxes, result.boxes)
    assert back.scores.tolist() == [0.8999999761581421, 0.25] and back.labels == result.labels  # float32 of 0.9


def test_outcomes_persist_and_only_pending_images_are_todo(tmp_path):
    with Journal(tmp_path) as journal:
        journal.claim(RUN)
        journal.sync_listing(["a.jpg", "b.jpg", "c.jpg"], ["/abs/a.jpg", "/abs/b.jpg", "/abs/c.jpg"])
        journal.record_done("a.jpg", _result())
        journal.record_failed("b.jpg", "invalid_image", "broken")
    with Journal(tmp_path) as journal:  # a new process would see the same
        journal.claim(RUN)
        assert journal.todo() == ["c.jpg"]
        assert journal.todo(retry_failed=True) == ["b.jpg", "c.jpg"]
        assert journal.counts() == {"pending": 1, "done": 1, "failed": 1}
        assert journal.failures() == [("b.jpg", "invalid_image", "broken")]
        assert sorted(journal.labels()) == ["cat", "dog"]
        (record,) = journal.done()
        assert (record.key, record.location, record.width, record.height) == ("a.jpg", "/abs/a.jpg", 7, 5)


def test_images_that_leave_the_listing_leave_the_exports_but_keep_their_work(tmp_path):
    with Journal(tmp_path) as journal:
        journal.claim(RUN)
        journal.sync_listing(["a.jpg", "b.jpg"])
        journal.record_done("a.jpg", _result())
        journal.sync_listing(["b.jpg"])
        assert list(journal.done()) == [] and journal.todo() == ["b.jpg"]
        journal.sync_listing(["b.jpg", "a.jpg"])
        assert [r.key for r in journal.done()] == ["a.jpg"] and journal.todo() == ["b.jpg"]


def test_another_run_is_refused_naming_what_differs_unless_restart(tmp_path):
    with Journal(tmp_path) as journal:
        journal.claim(RUN)
        journal.sync_listing(["a.jpg"])
        journal.record_done("a.jpg", _result())
        with pytest.raises(AnnotateRunMismatchError) as info:
            journal.claim({**RUN, "threshold": 0.3})
        assert info.value.param == "threshold" and "--restart" in info.value.message
        journal.claim({**RUN, "threshold": 0.3}, restart=True)
        journal.sync_listing(["a.jpg"])
        assert journal.todo() == ["a.jpg"]


def test_export_only_needs_a_journal(tmp_path):
    with pytest.raises(InvalidParameterError):
        Journal.existing(tmp_path)
