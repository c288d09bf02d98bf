"""`segserve segment`'s visual-prompt flags (--box, --negative-box, --point, --negative-point,
--multimask, --object), in-process and with --server: the JSON written is the engine's answer to the
same request, and bad flags are one line naming the flag."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import uvicorn
from PIL import Image

from segserve.api.app import create_app
from segserve.cli import main
from segserve.masks import rle_decode
from segserve.prompts import Box, Concept, ObjectPrompt, Point
from segserve.settings import Settings
from segserve.types import SegmentOptions

KEY = "cli-key"


@pytest.fixture
def photo(tmp_path, rgb_image):
    path = tmp_path / "photo.png"  # lossless: the engine sees exactly rgb_image
    Image.fromarray(rgb_image).save(path)
    return path


@pytest.fixture(scope="module")
def server_url(tiny_segmenter) -> Iterator[str]:
    """A real server on a local port (uvicorn on a thread) around the session's tiny SAM 3."""
    app = create_app(Settings(_env_file=None, api_keys=KEY, warmup=False), tiny_segmenter)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def run(photo, tmp_path, tiny_model_path, server_url, flags: list[str]) -> dict:
    out = tmp_path / "out.json"
    where = ["--server", server_url, "--api-key", KEY] if server_url else ["--model", str(tiny_model_path)]
    code = main(["segment", str(photo), *where, "--device", "cpu", "--json", str(out), *flags])
    assert code == 0
    return json.loads(out.read_text())


def assert_engine_answer(data: dict, expected) -> None:
    assert data["num_segments"] == len(expected) > 0
    assert [s["label"] for s in data["segments"]] == expected.labels
    for seg, mask in zip(data["segments"], expected.masks):
        np.testing.assert_array_equal(rle_decode(seg["mask"]), mask)


@pytest.fixture(params=["in-process", "server"])
def where(request):
    return request.param


def test_exemplar_boxes(where, photo, tmp_path, tiny_model_path, tiny_segmenter, rgb_image, request):
    url = request.getfixturevalue("server_url") if where == "server" else None
    flags = ["-p", "helmet", "--box", "10,5,60,50", "--negative-box", "70.5,30,125,85", "--threshold", "0.25"]
    data = run(photo, tmp_path, tiny_model_path, url, flags)
    concept = Concept("helmet", boxes=(Box(10, 5, 60, 50), Box(70.5, 30, 125, 85, positive=False)))
    assert_engine_answer(data, tiny_segmenter.segment(rgb_image, [concept], SegmentOptions(threshold=0.25)))


def test_clicks_and_the_objects_box(where, photo, tmp_path, tiny_model_path, tiny_segmenter, rgb_image, request):
    url = request.getfixturevalue("server_url") if where == "server" else None
    flags = ["--point", "40,30", "--negative-point", "100,70", "--box", "10,5,60,50", "--multimask"]
    data = run(photo, tmp_path, tiny_model_path, url, flags)
    prompt = ObjectPrompt((Point(40, 30), Point(100, 70, positive=False)), Box(10, 5, 60, 50), multimask=True)
    assert_engine_answer(data, tiny_segmenter.segment_object(rgb_image, prompt))


def test_a_box_alone_as_one_object(photo, tmp_path, tiny_model_path, tiny_segmenter, rgb_image):
    data = run(photo, tmp_path, tiny_model_path, None, ["--box", "10,5,60,50", "--object"])
    assert_engine_answer(data, tiny_segmenter.segment_object(rgb_image, ObjectPrompt(box=Box(10, 5, 60, 50))))


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--box", "10,5,60"], "argument --box: expected x0,y0,x1,y1, 4 comma-separated numbers"),  # 3 numbers
        (["--point", "a,b"], "argument --point: expected x,y, 2 comma-separated numbers"),  # not numbers
        (["--box", "60,5,10,50"], "--box: A box is [x0, y0, x1, y1] with x0 < x1"),  # inverted
        (["--box", "10,5,131,50"], "--box: The box [10, 5, 131, 50] reaches past the image"),  # 130 wide
        (["--point", "1,1", "--negative-box", "1,1,5,5"], "interactive mode"),  # a negative box with clicks
        (["--object"], "--object needs a --box"),
        (["-p", "a, b", "--box", "1,1,5,5"], "--box: `boxes` are exemplars of one concept"),
        (["--point", "5,5", "-p", "dog"], "--point: Interactive mode"),
    ],
)
def test_bad_flags_are_one_line_naming_the_flag(photo, tmp_path, tiny_model_path, capsys, flags, says):
    try:
        code = main(["segment", str(photo), "--model", str(tiny_model_path), "--device", "cpu", *flags])
    except SystemExit as exc:  # argparse's own refusal of a flag's value (after its usage line)
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert says in err[-1], err
