"""`segserve serve`: flags, refusing to start without a key, --no-auth, a model that fails to load,
and SIGTERM while requests run (they finish, the process exits 0)."""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path

import requests
from serving import free_port, serve_command, server_env, start, stop, wait_for

from segserve.cli import build_parser, serve_settings


def _settings(argv: list[str], monkeypatch, **env: str):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return serve_settings(build_parser().parse_args(["serve", *argv]))


def test_flags_override_the_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    s = _settings(
        ["--port", "9001", "--max-queue", "3", "--api-key", "b", "--api-key", "c", "--no-warmup"],
        monkeypatch,
        SEGSERVE_PORT="8000",
        SEGSERVE_MAX_QUEUE="16",
        SEGSERVE_API_KEYS="a",
    )
    assert (s.port, s.max_queue, s.warmup) == (9001, 3, False)
    assert s.api_key_list() == ["a", "b", "c"]  # --api-key adds to the configured keys
    s = _settings([], monkeypatch, SEGSERVE_PORT="8123")
    assert s.port == 8123 and s.warmup is True


def test_refuses_to_start_without_a_key(tmp_path):
    port = free_port()
    proc = start(serve_command(port), server_env(), tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "No API key is configured" in out and "--no-auth" in out


def test_a_model_that_fails_to_load_ends_the_process_with_its_reason(tmp_path):
    port = free_port()
    env = server_env(SEGSERVE_MODEL=str(tmp_path / "missing-model"))
    proc = start(serve_command(port, "--no-auth"), env, tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "No SAM 3 checkpoint directory" in out and "SEGSERVE_EXIT_ON_LOAD_ERROR=0" in out
    assert "Traceback" not in out


def test_no_auth_starts_with_a_warning_and_stops_cleanly(tmp_path):
    port = free_port()
    env = server_env(SEGSERVE_MODEL=str(tmp_path / "missing-model"))  # never loads: /readyz stays 503
    proc = start(serve_command(port, "--no-auth", "--stay-up-on-load-error"), env, tmp_path)
    wait_for(f"http://127.0.0.1:{port}/healthz", proc)
    wait_for(f"http://127.0.0.1:{port}/readyz", proc, status=503)
    code, out = stop(proc)
    assert code == 0, out
    assert "authentication is OFF" in out


SLOW_SERVER = """
import sys
sys.path.insert(0, {support!r})
from api_support import SlowSegmenter
from segserve.api import create_app
from segserve.api.serve import configure_logging, run
from segserve.settings import Settings

configure_logging()
settings = Settings(_env_file=None, api_keys="k", port={port}, warmup=False, shutdown_grace=30)
sys.exit(run(settings, app=create_app(settings, SlowSegmenter(delay=2.0))))
"""


def test_sigterm_lets_running_requests_finish_and_exits_0(tmp_path):
    from api_support import png

    port = free_port()
    script = tmp_path / "slow_server.py"
    script.write_text(textwrap.dedent(SLOW_SERVER.format(support=str(Path(__file__).parent), port=port)))
    proc = start([sys.executable, str(script)], server_env(), tmp_path)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/readyz", proc)
    answers: list[requests.Response] = []

    def call() -> None:
        answers.append(
            requests.post(
                f"{base}/v1/images/segmentation",
                headers={"Authorization": "Bearer k"},
                files={"image": ("x.png", png(), "image/png")},
                data={"model": "sam3", "prompt": "thing"},
                timeout=60,
            )
        )

    worker = threading.Thread(target=call)
    worker.start()
    for _ in range(600):  # until the model call is running
        if "segserve_inference_running 1.0" in requests.get(f"{base}/metrics", timeout=5).text:
            break
        threading.Event().wait(0.02)
    else:
        raise AssertionError("the request never started")
    code, out = stop(proc)  # SIGTERM mid-inference
    worker.join(60)
    assert code == 0, out
    assert len(answers) == 1 and answers[0].status_code == 200, out
    assert answers[0].json()["segments"][0]["bbox"] == [5, 4, 20, 12]
    assert "Traceback" not in out
