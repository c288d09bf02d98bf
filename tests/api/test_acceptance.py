"""Acceptance: the reference document's Python client, copied verbatim with only API_URL and
API_TOKEN changed, against a real `segserve serve` subprocess with the tiny SAM 3, for a local
file and for a URL served by a local http.server (admitted by SEGSERVE_URL_ALLOW=127.0.0.1).
Then the SDK and `segserve segment --server` against the same server, and a clean SIGTERM exit.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import subprocess
import sys
import threading
from urllib.parse import urlparse

import numpy as np
import pytest
from api_support import encode
from PIL import Image
from pycocotools import mask as mask_utils
from serving import free_port, serve_command, server_env, start, stop, wait_for

API_TOKEN = "acceptance-token"

# From /work/shared/reference/segmentation-api-doc.txt, "Python Call Example", unchanged except the
# two constants (the document's rendering lost its indentation; it is restored here).
REFERENCE_CLIENT = """
import requests
API_URL = "https://ai.gitee.com/v1/images/segmentation"
API_TOKEN = "<your_api_token>" # Replace with your actual token
headers = {
    "Authorization": f"Bearer {API_TOKEN}"
}
def cut_image(image_path, prompt=""):
    data = {
        "model": "sam3",
        "prompt": prompt
    }
    if image_path.startswith(("http://", "https://")):
        # Network image: pass URL directly
        data["image"] = image_path
        response = requests.post(API_URL, headers=headers, data=data)
    else:
        # Local image: upload via file
        with open(image_path, "rb") as image_file:
            files = {
                "image": (image_path, image_file, "image/jpeg")
            }
            response = requests.post(API_URL, headers=headers, files=files, data=data)
    return response.json()
"""


@pytest.fixture(scope="module")
def server(tiny_model_path, tmp_path_factory):
    port = free_port()
    env = server_env(
        SEGSERVE_MODEL=str(tiny_model_path),
        SEGSERVE_DEVICE="cpu",
        SEGSERVE_API_KEYS=API_TOKEN,
        SEGSERVE_THRESHOLD="0.0",  # a random tiny model: keep every detection so there is something to see
        SEGSERVE_MAX_SEGMENTS="5",
        SEGSERVE_URL_ALLOW="127.0.0.1",
    )
    proc = start(serve_command(port), env, tmp_path_factory.mktemp("cwd"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/readyz", proc)
        yield base, proc
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def image_origin(tmp_path_factory):
    """A local http.server with photo.jpg: the 'network image' of the reference example."""
    root = tmp_path_factory.mktemp("origin")
    rng = np.random.default_rng(1)
    (root / "photo.jpg").write_bytes(encode((rng.random((60, 80, 3)) * 255).astype(np.uint8), "JPEG"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


@pytest.fixture(scope="module")
def cut_image(server):
    base, _ = server
    source = REFERENCE_CLIENT.replace(
        '"https://ai.gitee.com/v1/images/segmentation"', f'"{base}/v1/images/segmentation"'
    ).replace('"<your_api_token>"', f'"{API_TOKEN}"')
    namespace: dict = {}
    exec(compile(source, "reference_client.py", "exec"), namespace)
    return namespace["cut_image"]


def _check(result: dict, h: int, w: int) -> None:
    assert result["num_segments"] == len(result["segments"]) >= 1, result
    for i, seg in enumerate(result["segments"], start=1):
        assert seg["id"] == i
        assert 0.0 <= seg["confidence"] <= 1.0
        x1, y1, x2, y2 = seg["bbox"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        # what the contract tells clients to do: base64-decode, then pycocotools
        rle = {"size": seg["mask"]["size"], "counts": base64.b64decode(seg["mask"]["counts"])}
        mask = mask_utils.decode(rle)
        assert mask.shape == (h, w) and mask.any()


def test_reference_client_with_a_local_file(cut_image, image_origin):
    _, root = image_origin
    result = cut_image(str(root / "photo.jpg"), prompt="person")
    _check(result, 60, 80)
    assert {seg["label"] for seg in result["segments"]} == {"person"}


def test_reference_client_with_a_url(cut_image, image_origin):
    origin, _ = image_origin
    result = cut_image(f"{origin}/photo.jpg", prompt="dog, cat")
    _check(result, 60, 80)
    assert {seg["label"] for seg in result["segments"]} <= {"dog", "cat"}


def test_reference_client_segments_everything_without_a_prompt(cut_image, image_origin):
    # The document's Example 2: a network image and no prompt. The random tiny model may find
    # nothing; what matters here is a well-formed 200 answer.
    origin, _ = image_origin
    result2 = cut_image(f"{origin}/photo.jpg")
    assert result2["num_segments"] == len(result2["segments"]), result2


def test_reference_client_gets_the_error_body(cut_image, image_origin):
    origin, _ = image_origin
    result = cut_image(f"{origin}/missing.jpg", prompt="dog")
    assert result["error"]["code"] == "image_url_unreachable"


def test_sdk_and_cli_against_the_server(server, image_origin, tmp_path):
    from segserve.cli import main
    from segserve.client import Client

    base, _ = server
    origin, root = image_origin
    with Client(base, api_key=API_TOKEN) as client:
        result = client.segment(root / "photo.jpg", prompt="person")
        assert len(result) >= 1 and result.image is not None
        assert result.cutout(0).mode == "RGBA"
        assert [m["id"] for m in client.models()] == ["sam3"]
        by_url = client.segment(f"{origin}/photo.jpg", prompt="person")  # the server fetches it
        assert by_url.image is None and by_url.image_size == (60, 80)
        np.testing.assert_array_equal(by_url.masks, result.masks)  # same bytes, same answer
    out, overlay, cutouts = tmp_path / "out.json", tmp_path / "overlay.png", tmp_path / "cutouts"
    # No --threshold: options the user did not give are left to the server's SEGSERVE_* defaults.
    args = ["segment", f"{origin}/photo.jpg", "-p", "person", "--overlay", str(overlay), "--cutout", str(cutouts)]
    code = main([*args, "--server", base, "--api-key", API_TOKEN, "--json", str(out)])
    assert code == 0
    assert json.loads(out.read_text())["num_segments"] == len(result)
    assert Image.open(overlay).size == (80, 60)  # the CLI fetched the URL itself to draw it
    assert len(list(cutouts.glob("*.png"))) == len(result)


def test_docker_healthcheck_command(server):
    base, _ = server
    healthcheck = [sys.executable, "-m", "segserve.api.healthcheck"]
    ready = subprocess.run(healthcheck, env=server_env(SEGSERVE_PORT=str(urlparse(base).port)))
    assert ready.returncode == 0
    nothing_there = subprocess.run(healthcheck, env=server_env(SEGSERVE_PORT=str(free_port())))
    assert nothing_there.returncode == 1


def test_sigterm_exits_0(server):
    # Last in this file: stops the module's server.
    _, proc = server
    code, out = stop(proc)
    assert code == 0, out
    assert "Traceback" not in out
