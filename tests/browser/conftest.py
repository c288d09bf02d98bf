"""A real segserve server (tiny random SAM 3, in-process uvicorn on 127.0.0.1) and headless Chromium.

Chromium is Debian's `chromium` package (scripts/install-dev.sh installs it); Playwright drives it
through `executable_path`, so Playwright's own browser download is never needed.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import uvicorn
from PIL import Image
from playwright.sync_api import Browser, sync_playwright

from segserve.api.app import create_app
from segserve.settings import Settings

# --import-mode=importlib puts no test folder on sys.path; the page helper is browser_support.py.
sys.path.insert(0, str(Path(__file__).parent))

API_KEY = "test-key"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def server_url(tiny_model_path: Path) -> Iterator[str]:
    """Base URL of a running server: key `test-key`, threshold 0.2 (the tiny model scores ~0.25)."""
    settings = Settings(
        _env_file=None,
        model=str(tiny_model_path),
        device="cpu",
        api_keys=API_KEY,
        threshold=0.2,
        host="127.0.0.1",
        port=0,
    )
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            pytest.fail("the segserve server did not become ready")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is missing: run scripts/install-dev.sh (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-image's astronaut (512 x 512 RGB) as a PNG file."""
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(np.asarray(data.astronaut())).save(path)
    return path


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
