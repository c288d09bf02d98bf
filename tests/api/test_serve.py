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
    argv = ["--port", "9001", "--max-queue", "3", "--api-key", "b", "--api-key", "c", "--no-warmup"]
    argv += ["--max-connections", "7", "--header-timeout", "4", "--body-timeout", "9"]
    s = _settings(
        argv,
        monkeypatch,
        SEGSERVE_PORT="8000",
        SEGSERVE_MAX_QUEUE="16",
        SEGSERVE_API_KEYS="a",
        SEGSERVE_MAX_CONNECTIONS="500",
    )
    assert (s.port, s.max_queue, s.warmup) == (9001, 3, False)
    assert (s.max_connections, s.header_timeout, s.body_timeout) == (7, 4.0, 9.0)
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
settings = Settings(_env_file=None, api_keys="k", port={port}, warmup=False, shutdown_grace={grace})
sys.exit(run(settings, app=create_app(settings, SlowSegmenter(delay={delay}))))
"""


def _slow_server(tmp_path: Path, grace: float, delay: float) -> tuple[str, object]:
    port = free_port()
    script = tmp_path / "slow_server.py"
    support = str(Path(__file__).parent)
    script.write_text(textwrap.dedent(SLOW_SERVER.format(support=support, port=port, grace=grace, delay=delay)))
    proc = start([sys.executable, str(script)], server_env(), tmp_path)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/readyz", proc)
    return base, proc


def _post_in_background(base: str, answers: list) -> threading.Thread:
    from api_support import png

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
    return worker


def _wait_until_running(base: str) -> None:
    for _ in range(600):  # until the model call is running
        if "segserve_inference_running 1.0" in requests.get(f"{base}/metrics", timeout=5).text:
            return
        threading.Event().wait(0.02)
    raise AssertionError("the request never started")


def test_sigterm_lets_running_requests_finish_and_exits_0(tmp_path):
    base, proc = _slow_server(tmp_path, grace=30, delay=2.0)
    answers: list[requests.Response] = []
    worker = _post_in_background(base, answers)
    _wait_until_running(base)
    code, out = stop(proc)  # SIGTERM mid-inference
    worker.join(60)
    assert code == 0, out
    assert len(answers) == 1 and answers[0].status_code == 200, out
    assert answers[0].json()["segments"][0]["bbox"] == [5, 4, 20, 12]
    assert "Traceback" not in out


def test_sigterm_past_the_grace_period_answers_json_503_then_exits_0(tmp_path):
    base, proc = _slow_server(tmp_path, grace=2, delay=8.0)
    answers: list[requests.Response] = []
    workers = [_post_in_background(base, answers)]
    _wait_until_running(base)
    workers.append(_post_in_background(base, answers))  # waits in the queue behind the running one
    threading.Event().wait(0.3)
    code, out = stop(proc, timeout=30)  # SIGTERM: the running job needs 8 s, the grace is 2 s
    for w in workers:
        w.join(30)
    assert code == 0, out
    assert len(answers) == 2, out
    for r in answers:  # the running request and the queued one: the contract's body, not a plain 500
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "shutting_down" and r.headers["Retry-After"]
    assert "Traceback" not in out
