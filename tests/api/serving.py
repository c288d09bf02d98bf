"""Run `segserve serve` (or a script) as a real subprocess on 127.0.0.1 for the end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(**env: str) -> dict[str, str]:
    # Start from the current environment minus any SEGSERVE_* a developer may have set.
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEGSERVE_")}
    base.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env})
    return base


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    # cwd: a temporary folder, so no `.env` file of the checkout is read.
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def serve_command(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "segserve.cli", "serve", "--port", str(port), *extra]


def wait_for(url: str, proc: subprocess.Popen, status: int = 200, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            if requests.get(url, timeout=2).status_code == status:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy starting: not a verdict
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s")


def stop(proc: subprocess.Popen, timeout: float = 60.0) -> tuple[int, str]:
    """SIGTERM, wait; returns (exit code, output). Safe to call again on a stopped process."""
    if proc.stdout is None or proc.stdout.closed:
        return proc.wait(), ""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"server did not exit within {timeout}s after SIGTERM:\n{out}") from None
    return proc.returncode, out
