"""POST /v1/images/segmentation: the three body forms, the extensions, and every row of the
contract's error table that a request can trigger (auth has test_auth.py, load has test_worker.py).

Each error row checks status, `error.code` (and `param`), then that a good request still works.
"""

from __future__ import annotations

import base64
import json

import pytest
from api_support import (
    AUTH,
    PATH,
    app_client,
    assert_good_request_works,
    png,
    upload,
)

from segserve.types import ConceptText

URL = "https://images.example/x.png"  # never fetched: the rows using it fail before any fetch


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# --- good requests in every body form --------------------------------------------------------------
def test_multipart_upload_like_the_reference_client(client, bright):
    r = upload(client, png(), prompt="dog, cat")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["num_segments"] == 2 == len(body["segments"])
    assert [s["id"] for s in body["segments"]] == [1, 2]
    assert [s["label"] for s in body["segments"]] == ["dog", "cat"]
    assert body["segments"][0]["confidence"] >= body["segments"][1]["confidence"]
    assert body["segments"][0]["bbox"] == [5, 4, 20, 12]
    assert body["segments"][0]["mask"]["encoding"] == "rle"
    assert r.headers["content-type"] == "application/json"
    assert bright.calls[-1][1] == ["dog", "cat"]


@pytest.mark.parametrize(
    "send",
    [
        # JSON with a data URI
        lambda c, uri: c.post(PATH, headers=AUTH, json={"model": "sam3", "image": uri, "prompt": "thing"}),
        # urlencoded with a data URI
        lambda c, uri: c.post(PATH, headers=AUTH, data={"model": "sam3", "image": uri, "prompt": "thing"}),
        # multipart with the data URI as a plain text field
        lambda c, uri: c.post(
            PATH, headers=AUTH, data={"model": "sam3", "image": uri, "prompt": "thing"}, files={"other": ("", b"")}
        ),
    ],
)
def test_image_as_text_in_every_body_form(client, send):
    r = send(client, _data_uri(png()))
    assert r.status_code == 200, r.text
    assert r.json()["segments"][0]["bbox"] == [5, 4, 20, 12]


def test_prompt_of_only_separators_segments_everything(client, bright):
    r = upload(client, png(), prompt=" , ,， ; ")
    assert r.status_code == 200, r.text
    assert bright.calls[-1][1] == []
    assert r.json()["segments"][0]["label"] == "object"


def test_missing_prompt_segments_everything(client, bright):
    r = client.post(PATH, headers=AUTH, json={"model": "sam3", "image": _data_uri(png())})
    assert r.status_code == 200, r.text
    assert bright.calls[-1][1] == []


def test_unknown_headers_and_fields_are_ignored(client):
    headers = {**AUTH, "X-Failover-Enabled": "true", "X-Package": "1"}
    r = upload(client, png(), headers=headers, user="someone", response_format="json")
    assert r.status_code == 200, r.text


def test_server_defaults_apply_and_requests_override_them(bright):
    with app_client(bright, threshold=0.25, mask_threshold=0.75, max_segments=7) as c:
        assert upload(c, png()).status_code == 200
        opts = bright.calls[-1][2]
        assert (opts.threshold, opts.mask_threshold, opts.max_segments) == (0.25, 0.75, 7)
        assert upload(c, png(), threshold=0.5, mask_threshold=0.1, max_segments=1).status_code == 200
        opts = bright.calls[-1][2]
        assert (opts.threshold, opts.mask_threshold, opts.max_segments) == (0.5, 0.1, 1)


def test_max_segments_caps_the_answer(client):
    r = upload(client, png(), prompt="a, b, c", max_segments=2)
    assert [s["label"] for s in r.json()["segments"]] == ["a", "b"]


@pytest.mark.parametrize(
    "mask_format, check",
    [
        ("rle", lambda m: m["encoding"] == "rle" and isinstance(m["counts"], str)),  # the default, explicit
        ("polygon", lambda m: m["encoding"] == "polygon" and m["polygons"] and "counts" not in m),  # outlines
        ("none", lambda m: m is None),  # boxes only
    ],
)
def test_mask_formats(client, mask_format, check):
    r = upload(client, png(), mask_format=mask_format)
    assert r.status_code == 200, r.text
    seg = r.json()["segments"][0]
    assert seg["bbox"] == [5, 4, 20, 12]
    assert check(seg.get("mask"))


def test_everything_mode_reaches_the_segmenter_as_an_option(bright):
    with app_client(bright, everything_mode="vocabulary") as c:
        assert upload(c, png(), prompt="", everything_mode="grid").status_code == 200
        assert bright.calls[-1][2].everything_mode == "grid"
        assert upload(c, png(), prompt="").status_code == 200
        assert bright.calls[-1][2].everything_mode == "vocabulary"  # not given: the server's setting


def test_model_name_is_case_insensitive(client):
    r = client.post(PATH, headers=AUTH, json={"model": " SAM3 ", "image": _data_uri(png())})
    assert r.status_code == 200, r.text


# --- the error table ---------------------------------------------------------------------------------
def _json(**fields):
    return {"json": {"model": "sam3", "image": _data_uri(png()), "prompt": "thing", **fields}}


def _form(**fields):
    base = {"model": "sam3", "prompt": "thing", **fields}
    return {"files": {"image": ("x.png", png(), "image/png")}, "data": {k: str(v) for k, v in base.items()}}


ERROR_ROWS = [
    # (request kwargs, status, code, param)
    ({"json": {"image": _data_uri(png())}}, 400, "missing_field", "model"),  # JSON without model
    (
        {"files": {"image": ("x.png", png(), "image/png")}, "data": {"prompt": "a"}},
        400,
        "missing_field",
        "model",
    ),  # form without model
    ({"json": {"model": "sam3", "prompt": "a"}}, 400, "missing_field", "image"),  # JSON without image
    ({"data": {"model": "sam3", "prompt": "a"}}, 400, "missing_field", "image"),  # urlencoded without image
    ({"data": {"model": "sam3", "image": "  "}}, 400, "missing_field", "image"),  # blank image field
    (
        {"data": {"model": "sam3"}, "files": {"other": ("", b"")}},
        400,
        "missing_field",
        "image",
    ),  # multipart, no image part
    (_json(model="sam2"), 400, "unknown_model", "model"),  # a model not served
    (_form(model="gpt-4o"), 400, "unknown_model", "model"),  # same in a form
    (_form(prompt=",".join(f"c{i}" for i in range(17))), 400, "invalid_prompt", "prompt"),  # 17 concepts > 16
    (_form(prompt="x" * 10_000), 400, "invalid_prompt", "prompt"),  # one 10,000-character concept
    (_json(prompt=["dog", "cat"]), 400, "invalid_parameter", "prompt"),  # prompt not a string
    (_form(threshold="abc"), 400, "invalid_parameter", "threshold"),  # not a number
    (_form(threshold=2), 400, "invalid_parameter", "threshold"),  # above 1
    (_form(threshold=-0.1), 400, "invalid_parameter", "threshold"),  # below 0
    (_form(threshold="nan"), 400, "invalid_parameter", "threshold"),  # NaN is not in [0, 1]
    (_json(threshold="abc"), 400, "invalid_parameter", "threshold"),  # JSON string
    (_json(threshold=[0.5]), 400, "invalid_parameter", "threshold"),  # JSON list
    (_form(mask_threshold=1.5), 400, "invalid_parameter", "mask_threshold"),  # above 1
    (_form(max_segments=0), 400, "invalid_parameter", "max_segments"),  # below 1
    (_form(max_segments=2.5), 400, "invalid_parameter", "max_segments"),  # not an integer
    (_form(max_segments=10**9), 400, "invalid_parameter", "max_segments"),  # above the hard cap
    (_form(mask_format="png"), 400, "invalid_parameter", "mask_format"),  # not rle/polygon/none
    (_form(everything_mode="all"), 400, "invalid_parameter", "everything_mode"),  # not grid/vocabulary
    (_json(image=123), 400, "invalid_parameter", "image"),  # JSON image not a string
    (_json(model=7), 400, "invalid_parameter", "model"),  # JSON model not a string
    (_json(image="file:///etc/passwd"), 400, "invalid_image_url", "image"),  # not http(s)
    (_json(image="gopher://example.com/x"), 400, "invalid_image_url", "image"),  # other scheme
    (_json(image="http://"), 400, "invalid_image_url", "image"),  # no host
    (_json(image="just some text"), 400, "invalid_image_url", "image"),  # not a URL at all
    (_json(image="data:image/png;base64,@@@not base64@@@"), 400, "invalid_image_url", "image"),  # bad data URI
    (_json(image="http://127.0.0.1/x.png"), 400, "image_url_forbidden", "image"),  # loopback
    (_json(image="http://169.254.169.254/latest/meta-data/"), 400, "image_url_forbidden", "image"),  # cloud metadata
    (_json(image="http://[::1]:8000/x.png"), 400, "image_url_forbidden", "image"),  # IPv6 loopback
    (_json(image="http://10.0.0.1/x.png"), 400, "image_url_forbidden", "image"),  # private
    ({"json": ["sam3"]}, 400, "invalid_parameter", None),  # JSON body not an object
    (
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_parameter",
        None,
    ),  # bad JSON
    ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 400, "invalid_parameter", None),  # other type
    ({"content": b"hello"}, 400, "invalid_parameter", None),  # no Content-Type at all
]


@pytest.mark.parametrize("kwargs, status, code, param", ERROR_ROWS)
def test_error_rows(client, kwargs, status, code, param):
    headers = {**AUTH, **kwargs.pop("headers", {})} if "headers" in kwargs else AUTH
    r = client.post(PATH, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert err["message"]
    assert_good_request_works(client)


def test_unknown_model_message_lists_the_served_models(client):
    r = client.post(PATH, headers=AUTH, **_json(model="sam2"))
    assert "'sam3'" in r.json()["error"]["message"]


def test_unreachable_url_is_400_not_5xx(bright):
    # 127.0.0.1 allow-listed for this test only; nothing listens on port 9 (discard), so: refused.
    with app_client(bright, url_allow="127.0.0.1", url_timeout=5) as c:
        r = c.post(PATH, headers=AUTH, **_json(image="http://127.0.0.1:9/x.png"))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "image_url_unreachable"
        assert_good_request_works(c)


def test_unexpected_exception_is_a_generic_500_with_the_request_id():
    from api_support import BrokenSegmenter

    with app_client(BrokenSegmenter()) as c:
        r = upload(c, png(), prompt="explode")
        assert r.status_code == 500
        err = r.json()["error"]
        assert (err["type"], err["code"]) == ("server_error", "internal_error")
        rid = r.headers["x-request-id"]
        assert rid in err["message"]
        assert "secret" not in r.text and "Traceback" not in r.text  # details only in the log
        assert_good_request_works(c)


def test_request_id_from_the_client_is_echoed_when_plain(client):
    r = upload(client, png(), headers={**AUTH, "X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = upload(client, png(), headers={**AUTH, "X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"


def test_wire_json_is_exactly_the_results_to_dict(bright):
    from segserve.images import decode_image

    with app_client(bright) as c:
        data = png()
        r = upload(c, data, prompt="a, 人")
        result = bright.segment(decode_image(data), ["a", "人"])
        # The route reports what each concept was read as, whatever the segmenter says (this fake: nothing).
        assert result.concepts == ()
        result.concepts = (ConceptText("a", "a"), ConceptText("人", "person"))
        assert r.json() == json.loads(json.dumps(result.to_dict("rle")))
        assert r.json()["concepts"] == [{"label": "a", "text": "a"}, {"label": "人", "text": "person"}]


def test_metrics_are_open_unless_the_operator_asks_for_a_key():
    with app_client() as open_server:
        assert open_server.get("/metrics").status_code == 200
    with app_client(metrics_require_key=True) as closed:
        r = closed.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert closed.get("/metrics", headers=AUTH).status_code == 200


def test_redoc_is_not_served_it_would_need_a_cdn(client):
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs").status_code == 200  # Swagger UI, from this server's own assets


@pytest.mark.parametrize("field", ["model", "image"])
def test_the_schema_refuses_the_blank_values_the_server_refuses(client, field):
    schema = client.get("/openapi.json").json()
    body = schema["paths"][PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"][field]["pattern"] == r"\S" and field in body["required"]
    r = client.post(PATH, headers=AUTH, json={"model": "sam3", "image": _data_uri(png()), field: "  "})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_field"
