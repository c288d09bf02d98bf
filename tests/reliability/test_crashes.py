"""Requests that once crashed the server (HTTP 500 for a client's mistake): each now gets a 4xx with
the contract's error body, and the server answers the next request normally."""

from __future__ import annotations

import base64

import pytest
from api_support import AUTH, PATH, assert_good_request_works, png, upload

IMAGE = "data:image/png;base64," + base64.b64encode(png()).decode()
DEEP = "[" * 1000 + "]" * 1000
BIG = "9" * 5000


def _json(body: str) -> dict:
    return {"content": body.encode(), "headers": {**AUTH, "Content-Type": "application/json"}}


def _fields(**raw: str) -> dict:
    """A JSON request of `model` + `image` + the given fields, each value raw JSON text."""
    fields = {"model": '"sam3"', "image": f'"{IMAGE}"', **raw}
    return _json("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}")


@pytest.mark.parametrize(
    ("request_kwargs", "code", "param"),
    [
        (_json(DEEP), "invalid_parameter", None),  # the body nested 1,000 deep
        (_json('{"a": ' + DEEP + "}"), "invalid_parameter", None),  # nested inside an object
        (_fields(prompt=DEEP), "invalid_parameter", None),  # nested inside the prompt
        (_fields(prompt="[" * 500 + "]" * 500), "invalid_parameter", None),  # parses, but past max_json_depth
        (_fields(threshold="[" * 33 + "]" * 33), "invalid_parameter", None),  # one level past the limit
        (_fields(prompt='["cat"]'), "invalid_parameter", "prompt"),  # a list where a string belongs
        (_fields(threshold="[[0.5]]"), "invalid_parameter", "threshold"),  # a list for a number
        (_fields(unknown=BIG), "invalid_parameter", None),  # 5,000 digits in a field nobody reads
        (_fields(threshold=BIG), "invalid_parameter", None),  # 5,000 digits in a number field
        (_fields(max_segments=f'"{BIG}"'), "invalid_parameter", "max_segments"),  # 5,000 digits as a string
        (_fields(prompt='"cat\\ud800"'), "invalid_prompt", "prompt"),  # lone surrogate
        (_fields(threshold="true"), "invalid_parameter", "threshold"),  # a boolean is not 1.0
        (_fields(model='"sam3\\ud800"'), "unknown_model", "model"),  # echoed safely
    ],
)
def test_hostile_json_gets_a_400_and_the_server_stays_up(client, request_kwargs, code, param):
    r = client.post(PATH, **request_kwargs)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert len(error["message"]) < 500  # a hostile value is never echoed whole
    assert_good_request_works(client)


def test_a_lone_surrogate_in_a_form_prompt_is_harmless(client):
    # Form bodies are bytes: an encoded surrogate arrives as replacement characters, never as one.
    r = upload(client, png(), prompt="cat\udc80".encode("utf-8", "surrogatepass").decode("latin-1"))
    assert r.status_code == 200, r.text


def test_nesting_up_to_the_depth_limit_is_accepted(client):
    # The body object is level 1, so 31 arrays inside an unknown field reach exactly max_json_depth (32).
    r = client.post(PATH, **_fields(unknown="[" * 31 + "]" * 31))
    assert r.status_code == 200, r.text
