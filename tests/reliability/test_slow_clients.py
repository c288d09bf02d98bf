"""Slow and numerous clients against a real server on 127.0.0.1: headers or a body that stall get a
JSON 408 and a closed connection, a crowd of stalled connections does not lock out a good request,
connections past `max_connections` get a JSON 503 with Retry-After, and a slow but steady upload
still succeeds. Raw sockets, since an HTTP client cannot send half a request.

Timing is never asserted: a stall is shown to end by a generous deadline (several timeouts)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from api_support import API_KEY, PATH, png
from serving import free_port, server_env, start, stop, wait_for

from segserve.api.body import _capped
from segserve.errors import ClientTimeoutError
from segserve.settings import Settings

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
MAX_CONNECTIONS = 60
DEADLINE = 3 * HEADER_TIMEOUT + 10  # "it ends": far beyond the timeout, far below "held for ever"

SERVER = """
import sys
sys.path.insert(0, {support!r})
from api_support import BrightSegmenter
from segserve.api import create_app
from segserve.api.serve import configure_logging, run
from segserve.settings import Settings

configure_logging()
settings = Settings(_env_file=None, api_keys={key!r}, port={port}, warmup=False)
sys.exit(run(settings, app=create_app(settings, BrightSegmenter()), http={http!r}))
"""


@pytest.fixture(scope="module", params=["httptools", "h11"])
def port(request, tmp_path_factory) -> Iterator[int]:
    """A server with short timeouts (set through SEGSERVE_* variables), on each of uvicorn's parsers."""
    tmp = tmp_path_factory.mktemp("slow-clients")
    number = free_port()
    script = tmp / "server.py"
    support = str(Path(__file__).parent.parent / "api")
    script.write_text(textwrap.dedent(SERVER.format(support=support, key=API_KEY, port=number, http=request.param)))
    env = server_env(
        SEGSERVE_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        SEGSERVE_BODY_TIMEOUT=str(BODY_TIMEOUT),
        SEGSERVE_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    )
    proc = start([sys.executable, str(script)], env, tmp)
    try:
        wait_for(f"http://127.0.0.1:{number}/readyz", proc)
        yield number
    finally:
        code, out = stop(proc)
    assert code == 0, out
    assert "Traceback" not in out, out


# --- raw HTTP ------------------------------------------------------------------------------------
def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)


def _until_closed(sock: socket.socket, deadline: float = DEADLINE) -> bytes:
    """Everything the server sends until it closes the connection; fails if it is still open at the deadline."""
    data = b""
    end = time.monotonic() + deadline
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the server still holds the connection after {deadline} s; got {data[:200]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _one_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bytes]:
    """Read one response with a Content-Length; returns (status, headers, body, bytes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-response: {data!r}"
        data += chunk
    status, headers, body = _parse(data)
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-body: {data!r}"
        body += chunk
    return status, headers, body[:length], body[length:]


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _assert_json_error(raw: bytes, status: int, code: str) -> dict[str, str]:
    got, headers, body = _parse(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json" and headers["connection"] == "close", headers
    error = json.loads(body[: int(headers["content-length"])])["error"]
    assert error["code"] == code and error["message"], error
    return headers


def _multipart(image: bytes) -> tuple[str, bytes]:
    boundary = "slow-client-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nsam3\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nthing\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={boundary}", body


def _post_head(content_type: str, length: int) -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


PARTIAL_HEAD = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriz"


def _good_request(port: int) -> requests.Response:
    return requests.post(
        f"http://127.0.0.1:{port}{PATH}",
        headers={"Authorization": f"Bearer {API_KEY}"},
        files={"image": ("x.png", png(), "image/png")},
        data={"model": "sam3", "prompt": "thing"},
        timeout=DEADLINE,
    )


# --- (a) headers that stall ------------------------------------------------------------------------
def test_partial_headers_that_stall_get_a_json_408_and_the_connection_closed(port):
    with _connect(port) as sock:
        sock.sendall(PARTIAL_HEAD)
        raw = _until_closed(sock)
    _assert_json_error(raw, 408, "request_timeout")


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(port):
    with _connect(port) as sock:
        assert _until_closed(sock) == b""  # like an expired keep-alive connection: nothing was asked


def test_headers_trickled_a_byte_at_a_time_still_time_out(port):
    # The header timeout is a total, not a gap: a byte every 0.2 s does not keep the connection.
    with _connect(port) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ")
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not select.select([sock], [], [], 0.2)[0]:
            with contextlib.suppress(OSError):  # the server may close between the check and the send
                sock.sendall(b"a")
        raw = _until_closed(sock)
    if raw:  # a reset may overtake the answer; closed is what matters
        _assert_json_error(raw, 408, "request_timeout")


def test_the_next_request_on_a_kept_alive_connection_has_the_same_header_timeout(port):
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, _, rest = _one_response(sock)
        assert status == 200 and rest == b""
        sock.sendall(PARTIAL_HEAD)
        raw = _until_closed(sock)
    _assert_json_error(raw, 408, "request_timeout")


def test_the_rest_of_an_answered_requests_body_gets_no_second_answer(port):
    # A 401 comes before the body is read; the body that keeps coming is not a new request to answer.
    with _connect(port) as sock:
        sock.sendall(_post_head("application/json", 1000).replace(API_KEY.encode(), b"wrong") + b'{"mo')
        status, _, _, rest = _one_response(sock)
        assert status == 401
        sock.sendall(b'del": "sam3"')
        assert rest + _until_closed(sock) == b""


# --- (b) a body that stalls ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["multipart", "json"])
def test_a_body_that_stalls_gets_a_json_408_and_the_connection_closed(port, kind):
    if kind == "multipart":
        content_type, body = _multipart(png())
    else:
        content_type, body = "application/json", json.dumps({"model": "sam3", "image": "data:image/png;base64,"})
        body = body.encode()
    with _connect(port) as sock:
        sock.sendall(_post_head(content_type, len(body)) + body[: len(body) // 2])
        raw = _until_closed(sock)
    _assert_json_error(raw, 408, "request_timeout")
    assert _good_request(port).status_code == 200  # the queue place the stalled upload held is free again


# --- (c) many stalled connections ------------------------------------------------------------------
def test_a_crowd_of_stalled_connections_neither_locks_out_nor_outlives_the_timeout(port):
    stalled: list[socket.socket] = []
    try:
        for _ in range(50):
            stalled.append(_connect(port))
            stalled[-1].sendall(PARTIAL_HEAD)
        r = _good_request(port)  # 51 open: within max_connections
        assert r.status_code == 200, r.text
        for _ in range(MAX_CONNECTIONS - 50 + 5):
            stalled.append(_connect(port))
            stalled[-1].sendall(PARTIAL_HEAD)
        r = requests.get(
            f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=DEADLINE
        )
        assert r.status_code == 503, r.text  # past max_connections: refused in the contract's words
        assert r.json()["error"]["code"] == "too_many_connections" and int(r.headers["Retry-After"]) > 0
        assert r.headers["connection"] == "close"
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=DEADLINE).status_code == 200  # alive
        for sock in stalled:  # every stalled one is let go, each with its 408
            _assert_json_error(_until_closed(sock), 408, "request_timeout")
    finally:
        for sock in stalled:
            sock.close()
    assert _good_request(port).status_code == 200


# --- (d) slow but steady ---------------------------------------------------------------------------
def test_a_slow_but_steady_upload_longer_than_the_stall_timeout_succeeds(port):
    content_type, body = _multipart(png())
    pieces = 20  # a piece every 0.2 s: ~4 s in all, twice BODY_TIMEOUT, never a gap near it
    size = -(-len(body) // pieces)
    started = time.monotonic()
    with _connect(port) as sock:
        sock.sendall(_post_head(content_type, len(body)))
        for i in range(0, len(body), size):
            time.sleep(0.2)
            sock.sendall(body[i : i + size])
        assert time.monotonic() - started > BODY_TIMEOUT
        status, _, answer, _ = _one_response(sock)
    assert status == 200, answer
    assert json.loads(answer)["segments"][0]["bbox"] == [5, 4, 20, 12]


# --- the whole-body limit, in process --------------------------------------------------------------
def test_a_body_trickled_past_the_total_limit_gets_408():
    settings = Settings.defaults().replace(body_timeout=5.0, body_total_timeout=0.3)

    async def trickle() -> dict:
        await asyncio.sleep(0.05)  # never a long gap
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def read_all() -> None:
        receive = _capped(trickle, 10_000, "request body", settings)
        for _ in range(1000):
            await receive()

    with pytest.raises(ClientTimeoutError, match=r"within 0\.3 seconds") as caught:
        asyncio.run(read_all())
    assert caught.value.status == 408 and caught.value.headers == {"Connection": "close"}
