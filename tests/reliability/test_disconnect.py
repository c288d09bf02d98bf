"""A client that hangs up mid-upload is a client disconnect (499 `client_closed`, logged at INFO),
never a server fault: `/metrics` must keep 5xx for the server's own errors."""

from __future__ import annotations

import asyncio
import logging

from api_support import AUTH, PATH, BrightSegmenter, app_client, png


def _upload_then_hang_up(app, body_part: bytes) -> list[dict]:
    """Drive the ASGI app with a multipart request whose client disconnects after `body_part`."""
    boundary = "segserve-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nsam3\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    messages = [
        {"type": "http.request", "body": head + body_part, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", AUTH["Authorization"].encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"content-length", b"1000000"),
        ],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_hang_up_mid_upload_counts_as_client_closed_not_500(caplog):
    with app_client(BrightSegmenter()) as client:
        app = client.app
        with caplog.at_level(logging.INFO):
            sent = _upload_then_hang_up(app, png()[:40])
        assert sent[0]["status"] == 499
        metrics = client.get("/metrics").text
    assert 'status="499"' in metrics and 'code="client_closed"' in metrics
    assert 'status="500"' not in metrics
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("during its upload" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
