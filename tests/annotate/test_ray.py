"""`--ray`: on a local Ray cluster (started once for this module, no dashboard, no network) the
run's exports equal the local run's, and a driver killed mid-run is completed by a re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from annotate_support import FORMATS, OPTION_FLAGS, OPTIONS, PROMPT, exports

from segserve.annotate import annotate


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    # Ray start-up costs ~10 s on 2 cores: one cluster for the whole module.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


# Processes (the CLI, Ray workers) that each import torch and load the model: minutes when the machine is busy.
@pytest.mark.timeout(900)
def test_a_ray_run_gives_the_local_runs_exports(ray_cluster, reference_run, photo_folder, tmp_path, tiny_model_path):
    out = tmp_path / "out"
    summary = annotate(photo_folder, out, PROMPT, formats=FORMATS, model=str(tiny_model_path), device="cpu", ray=True,
                       **OPTIONS)  # fmt: skip
    assert summary.done == 6 and summary.failures_by_reason == {"invalid_image": 1}
    assert exports(out) == exports(reference_run[0])


def _finished(out) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{out / 'journal.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM images WHERE status != 'pending'").fetchone()[0]
    except sqlite3.Error:
        return 0


# Processes (the CLI, Ray workers) that each import torch and load the model: minutes when the machine is busy.
@pytest.mark.timeout(900)
def test_a_killed_driver_is_completed_by_a_rerun(ray_cluster, reference_run, photo_folder, tmp_path, tiny_model_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "segserve.cli", "annotate", str(photo_folder), "-p", PROMPT, "-o", str(out),
               "--format", ",".join(FORMATS), "--model", str(tiny_model_path), "--device", "cpu", "-q",
               "--ray", ray_cluster, "--batch-size", "1", *OPTION_FLAGS]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while proc.poll() is None and _finished(out) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # still running: the kill is mid-run
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert 2 <= _finished(out) < 7
    final = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert final.returncode == 1, final.stderr.decode()[-2000:]  # 1: broken.jpg, as in the reference
    assert exports(out) == exports(reference_run[0])
