"""`kill -9` at any moment, then the same command again: the exports are byte-identical to an
uninterrupted run's. A real `segserve annotate` process is stopped three times mid-run: once by
Ctrl-C (SIGINT: it finishes the image in flight and exits 130), twice by SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from annotate_support import FORMATS, OPTION_FLAGS, PROMPT, exports


def _finished(out) -> int:
    """Images with an outcome in the journal, read while the run writes it (WAL allows that)."""
    try:
        with sqlite3.connect(f"file:{out / 'journal.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM images WHERE status != 'pending'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _command(source, out, model) -> list[str]:
    return [sys.executable, "-m", "segserve.cli", "annotate", str(source), "-p", PROMPT, "-o", str(out),
            "--format", ",".join(FORMATS), "--model", str(model), "--device", "cpu", "-q", *OPTION_FLAGS]  # fmt: skip


# Processes (the CLI, Ray workers) that each import torch and load the model: minutes when the machine is busy.
@pytest.mark.timeout(900)
def test_killed_three_times_then_rerun_gives_the_uninterrupted_exports(
    reference_run, photo_folder, tmp_path, tiny_model_path
):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    kills = 0
    # images finished when the signal lands; the first is a Ctrl-C (a clean stop, exit 130), then kill -9s
    for target, sig in ((1, signal.SIGINT), (3, signal.SIGKILL), (5, signal.SIGKILL)):
        proc = subprocess.Popen(_command(photo_folder, out, tiny_model_path), env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while proc.poll() is None and _finished(out) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            kills += 1
        proc.wait(timeout=120)
        expected = 130 if sig == signal.SIGINT else -signal.SIGKILL
        assert proc.returncode in (expected, 1), proc.stderr.read().decode()[-2000:]  # 1: it had finished
        proc.stderr.close()
    assert kills >= 2  # the runs really were cut short, not just repeated
    final = subprocess.run(_command(photo_folder, out, tiny_model_path), env=env, capture_output=True, timeout=300)
    assert final.returncode == 1, final.stderr.decode()[-2000:]  # 1: broken.jpg failed, as in the reference
    assert exports(out) == exports(reference_run[0])
