"""Operations endpoints: health, readiness, metrics, OpenAPI, the playground, request ids and the
per-request log line; and that building the app does no work."""

from __future__ import annotations

import logging
import threading

import pytest
from api_support import AUTH, PATH, app_client, png, upload
from fastapi.testclient import TestClient

from segserve.api import create_app
from segserve.api.app import WEB_DIR
from segserve.errors import ModelLoadError
from segserve.settings import Settings


def test_the_model_loads_in_the_lifespan_not_when_the_app_is_built(monkeypatch):
    from segserve.engine.sam3 import Sam3Segmenter

    loads: list[str] = []

    def load(settings: Settings) -> None:
        loads.append(settings.model)
        raise ModelLoadError("No SAM 3 checkpoint directory at /nonexistent/model.")

    monkeypatch.setattr(Sam3Segmenter, "from_settings", staticmethod(load))
    app = create_app(Settings(_env_file=None, api_keys="k", model="/nonexistent/model"))
    state = app.state.segserve
    assert loads == []
    with pytest.raises(RuntimeError, match=r"start\(\) was not called"):
        state.worker.submit(lambda: None)  # no inference threads yet either
    with TestClient(app):
        for _ in range(600):  # the load runs in the background: wait for its outcome
            if state.load_error:
                break
            threading.Event().wait(0.05)
    assert loads == ["/nonexistent/model"]
    assert state.load_error == "No SAM 3 checkpoint directory at /nonexistent/model."


def test_healthz_answers_ok(client):
    r = client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_readyz_is_200_once_the_model_is_ready(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


def test_readyz_names_the_limits_a_client_can_check_before_uploading(client):
    settings = client.app.state.segserve.settings
    limits = client.get("/readyz").json()["limits"]
    assert limits == {name: getattr(settings, name) for name in limits}
    names = {"max_image_bytes", "max_image_pixels", "max_aspect_ratio", "max_concepts", "max_concept_chars"}
    assert set(limits) == names


def test_metrics_count_requests_by_status_and_code(client):
    upload(client, png())
    upload(client, b"not an image")
    client.post(PATH, files={"image": ("x.png", png())})  # 401
    text = client.get("/metrics").text
    route = f'route="{PATH}"'
    assert f'segserve_requests_total{{code="",method="POST",{route},status="200"}} 1.0' in text
    assert f'segserve_requests_total{{code="invalid_image",method="POST",{route},status="422"}} 1.0' in text
    assert f'segserve_requests_total{{code="invalid_api_key",method="POST",{route},status="401"}} 1.0' in text
    assert f"segserve_request_seconds_count{{{route}}} 3.0" in text
    assert "segserve_queue_depth 0.0" in text
    assert "segserve_inference_seconds_count 1.0" in text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_metrics_label_unknown_paths_boundedly(client):
    for i in range(3):
        client.get(f"/no/such/path/{i}")
    text = client.get("/metrics").text
    assert 'route="unmatched",status="404"} 3.0' in text
    assert "/no/such/path" not in text


def test_metrics_expose_engine_counters(tiny_segmenter):
    import re

    def counter(text: str, name: str) -> float:
        return float(re.search(rf"^segserve_engine_{name}_total (\S+)$", text, re.M).group(1))

    with app_client(tiny_segmenter) as c:
        upload(c, png(), prompt="thing")
        before = c.get("/metrics").text
        upload(c, png(), prompt="another thing")  # the same image: its vision features are cached
        after = c.get("/metrics").text
    assert counter(after, "vision_passes") == counter(before, "vision_passes")
    assert counter(after, "vision_cache_hits") == counter(before, "vision_cache_hits") + 1
    assert counter(after, "vision_cache_misses") == counter(before, "vision_cache_misses")


def test_openapi_describes_the_three_body_forms_and_bearer_auth(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"][PATH]["post"]
    assert set(op["requestBody"]["content"]) == {
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "application/json",
    }
    assert {"200", "400", "401", "413", "415", "422", "429", "503", "504"} <= set(op["responses"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    for path in ("/v1/models", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_docs_page_loads_nothing_from_other_hosts(client):
    import re

    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?'([^']+)'""", page.text)
    assets = [a or b for a, b in urls]
    assert assets and not [u for u in assets if u.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_playground_page_and_static_files_are_served_and_nothing_outside_them(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.text == (WEB_DIR / "index.html").read_text()
    r = client.get("/static/index.html")
    assert r.status_code == 200
    for name in sorted(p.name for p in WEB_DIR.iterdir() if p.is_file()):
        assert client.get(f"/static/{name}").status_code == 200, name
    assert client.get("/static/../settings.py").status_code == 404


def test_each_request_logs_one_line_with_its_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="segserve.access"):
        r = upload(client, b"")
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "segserve.access"]
    assert len(lines) == 1
    rid = r.headers["x-request-id"]
    assert lines[0].startswith(f"{rid} POST {PATH} 422 invalid_image ")


def test_every_answer_carries_a_request_id(client):
    for r in (client.get("/healthz"), client.get("/nope"), upload(client, png()), client.post(PATH, headers=AUTH)):
        assert len(r.headers["x-request-id"]) >= 8


def test_unknown_route_and_method_use_the_error_body(client):
    r = client.get("/v1/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = client.get(PATH, headers=AUTH)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
