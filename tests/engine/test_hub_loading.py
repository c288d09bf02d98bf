"""A hub checkpoint that can't be had fails at once, with one probe and no retries; a cached one
loads without the network (issue 14: ~80 "Retrying in 8s" lines, ~3.5 minutes, before the message).

A local HTTP server stands in for the hub and counts what it is asked: it answers 503 (the status
huggingface_hub retries with backoff), so a retry would show up as a second request. Nothing here
needs a network, and nothing is timed: the proof is the number of requests and log lines.
"""

from __future__ import annotations

import http.server
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants
from PIL import Image

from segserve.engine.loading import resolve_checkpoint
from segserve.engine.sam3 import Sam3Segmenter
from segserve.errors import ModelLoadError

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from api_support import serving
from serving import free_port, serve_command, server_env

REPO = "someone/sam3-test"


class _Hub(http.server.ThreadingHTTPServer):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.status, self.extra_headers, self.requests = status, headers or {}, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def probes(self) -> list[str]:
        """Requests for a checkpoint's files (huggingface_hub may also GET its own registry once)."""
        return [r for r in self.requests if "/resolve/" in r]


class _HubHandler(http.server.BaseHTTPRequestHandler):
    server: _Hub

    def _answer(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_response(self.server.status)
        for key, value in self.server.extra_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = _answer

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def hub(monkeypatch, tmp_path) -> Iterator[_Hub]:
    """A 503-answering hub at huggingface_hub's endpoint, and an empty cache."""
    with serving(_Hub(503)) as server:
        _point_hub_at(monkeypatch, server.url, tmp_path / "hf-cache")
        yield server


def _point_hub_at(monkeypatch, url: str, cache: Path) -> None:
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _cache_snapshot(cache: Path, model_dir: Path, repo: str = REPO, skip: tuple[str, ...] = ()) -> Path:
    """`model_dir` laid out as huggingface_hub caches `repo`'s main revision."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in model_dir.iterdir():
        if f.name not in skip:
            shutil.copy(f, snapshot / f.name)
    return snapshot


def _assert_says_what_to_do(message: str) -> None:
    assert REPO in message and "HF_HUB_OFFLINE=1" in message and "hf download" in message, message


def test_a_hub_that_answers_503_is_asked_once(hub, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ModelLoadError) as info:
        Sam3Segmenter.from_pretrained(REPO, device="cpu")
    _assert_says_what_to_do(info.value.message)
    assert "did not answer" in info.value.message
    assert hub.probes == [f"HEAD /{REPO}/resolve/main/config.json"]  # one probe, no retry
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]


def test_an_unreachable_hub_fails_without_retries(monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    _point_hub_at(monkeypatch, f"http://127.0.0.1:{free_port()}", tmp_path / "hf-cache")  # nothing listens
    with pytest.raises(ModelLoadError) as info:
        resolve_checkpoint(REPO)
    _assert_says_what_to_do(info.value.message)
    assert "ConnectError" in info.value.message
    assert not [r for r in caplog.records if "Retry" in r.getMessage() or r.name.startswith("huggingface_hub")]


def test_offline_mode_asks_nothing(hub, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1 forbids downloading it") as info:
        resolve_checkpoint(REPO)
    assert "hf download" in info.value.message
    assert hub.requests == []


def test_a_gated_model_says_so_after_one_probe(monkeypatch, tmp_path):
    with serving(_Hub(401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"})) as server:
        _point_hub_at(monkeypatch, server.url, tmp_path / "hf-cache")
        with pytest.raises(ModelLoadError, match="is gated") as info:
            resolve_checkpoint(REPO)
    assert "hf auth login" in info.value.message
    assert len(server.probes) == 1


def test_a_cached_checkpoint_loads_without_the_network(hub, tiny_model_path, tmp_path):
    snapshot = _cache_snapshot(Path(constants.HF_HUB_CACHE), tiny_model_path)
    assert resolve_checkpoint(REPO) == str(snapshot)
    segmenter = Sam3Segmenter.from_pretrained(REPO, device="cpu")
    assert segmenter.model_id == REPO
    segmenter.grid.tracker  # noqa: B018 - grid mode's tracker resolves the same cached snapshot
    assert hub.requests == []


def test_a_partial_cache_is_not_used(hub, tiny_model_path):
    _cache_snapshot(Path(constants.HF_HUB_CACHE), tiny_model_path, skip=("model.safetensors",))
    with pytest.raises(ModelLoadError, match="did not answer"):
        resolve_checkpoint(REPO)
    assert len(hub.probes) == 1


def _hub_env(hub: _Hub, tmp_path: Path) -> dict[str, str]:
    env = server_env(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(tmp_path / "hf-cache"), SEGSERVE_MODEL=REPO)
    env.pop("HF_HUB_OFFLINE"), env.pop("TRANSFORMERS_OFFLINE")
    return env


def test_the_cli_says_it_in_one_line_after_one_probe(tmp_path, rgb_image):
    photo_path = tmp_path / "photo.png"
    Image.fromarray(rgb_image).save(photo_path)
    with serving(_Hub(503)) as hub:
        proc = subprocess.run(
            [sys.executable, "-m", "segserve.cli", "segment", str(photo_path), "-p", "cat"],
            env=_hub_env(hub, tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("segserve segment: error: "), lines
    _assert_says_what_to_do(lines[0])
    assert len(hub.probes) == 1


def test_the_server_logs_it_once_and_exits_1(tmp_path):
    with serving(_Hub(503)) as hub:
        proc = subprocess.run(
            serve_command(free_port(), "--no-auth"),
            env=_hub_env(hub, tmp_path),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=180,
        )
    assert proc.returncode == 1, proc.stdout
    said = [line for line in proc.stdout.splitlines() if "did not answer" in line]
    assert len(said) == 1, proc.stdout  # logged once, not once per handler
    _assert_says_what_to_do(said[0])
    assert "Retry" not in proc.stdout and "Traceback" not in proc.stdout
    assert len(hub.probes) == 1
