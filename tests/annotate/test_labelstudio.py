"""The Label Studio export, read by a real Label Studio: the server (from PyPI, in its own venv
.venvs/label-studio made by scripts/install-dev.sh) starts on 127.0.0.1 with a temporary data dir,
a project is created with our labelling config, our tasks are imported through `label-studio-sdk`,
and the predictions the server then holds must be ours. Slow (Label Studio migrates a fresh
database on start), hence its own marker and timeout; never skipped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

VENV = Path(__file__).parents[2] / ".venvs" / "label-studio"
TOKEN = "segserve-test-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def label_studio(tmp_path):
    exe = VENV / "bin" / "label-studio"
    if not exe.is_file():
        pytest.fail(f"Label Studio is not installed at {VENV}: run `bash scripts/install-dev.sh` in the checkout")
    port, data = _free_port(), tmp_path / "label-studio-data"
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LATEST_VERSION_CHECK": "false",  # no PyPI request at start
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    log = (tmp_path / "label-studio.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1",
         "--data-dir", str(data), "--username", "test@example.com", "--password", "segserve-test",
         "--user-token", TOKEN, "--enable-legacy-api-token"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "label-studio.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            pytest.fail("Label Studio did not answer /health within 600 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.labelstudio
@pytest.mark.timeout(900)
def test_label_studio_imports_our_tasks_and_shows_our_predictions(reference_run, label_studio):
    folder = reference_run[0] / "labelstudio"
    proc = subprocess.run(
        [str(VENV / "bin" / "python"), str(Path(__file__).with_name("labelstudio_client.py")), label_studio, TOKEN,
         str(folder / "config.xml"), str(folder / "tasks.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    held = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = json.loads((folder / "tasks.json").read_text())
    assert held["task_count"] == len(ours) == reference_run[1].done
    by_key = {task["data"]["segserve_key"]: task for task in held["tasks"]}
    assert sorted(by_key) == sorted(task["data"]["segserve_key"] for task in ours)
    regions = 0
    for task in ours:
        (prediction,) = by_key[task["data"]["segserve_key"]]["predictions"]
        (expected,) = task["predictions"]
        assert prediction["model_version"] == expected["model_version"]
        assert prediction["score"] == pytest.approx(expected["score"])
        assert prediction["result"] == expected["result"]  # every polygon, label and score as we wrote it
        regions += len(prediction["result"])
    assert regions == sum(reference_run[1].instances.values()) > 0
