"""Bearer keys: who gets 401, which paths are open, and the constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from api_support import API_KEY, OTHER_KEY, PATH, app_client, assert_good_request_works, png

from segserve.api.app import NoAPIKeyError, create_app
from segserve.api.auth import KeyChecker
from segserve.settings import Settings


def _files():
    return {"image": ("x.png", png(), "image/png")}


@pytest.mark.parametrize(
    "headers, params",
    [
        ({}, {}),  # no Authorization header
        ({"Authorization": "Bearer wrong-key"}, {}),  # a wrong key
        ({"Authorization": f"Bearer {API_KEY.upper()}"}, {}),  # the right key in the wrong case
        ({}, {"api_key": API_KEY}),  # the key in the query string instead of the header
        ({}, {"key": API_KEY, "token": API_KEY}),  # other query spellings
        ({"Authorization": API_KEY}, {}),  # no scheme
        ({"Authorization": f"Basic {API_KEY}"}, {}),  # another scheme
        ({"Authorization": "Bearer "}, {}),  # empty token
        ({"Authorization": f"Bearer {API_KEY}x"}, {}),  # a key with a suffix
        ({"X-API-Key": API_KEY}, {}),  # another header
    ],
)
def test_401_invalid_api_key(client, headers, params):
    r = client.post(PATH, headers=headers, params=params, files=_files(), data={"model": "sam3"})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("authentication_error", "invalid_api_key")
    assert API_KEY not in r.text  # the error never echoes a key
    assert_good_request_works(client)


@pytest.mark.parametrize("key", [API_KEY, OTHER_KEY])  # both keys valid at once: rotation
def test_every_configured_key_works(client, key):
    r = client.post(PATH, headers={"Authorization": f"Bearer {key}"}, files=_files(), data={"model": "sam3"})
    assert r.status_code == 200, r.text


def test_scheme_is_case_insensitive(client):
    r = client.post(PATH, headers={"Authorization": f"bearer {API_KEY}"}, files=_files(), data={"model": "sam3"})
    assert r.status_code == 200


def test_models_needs_a_key(client):
    assert client.get("/v1/models").status_code == 401
    r = client.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200
    assert r.json()["object"] == "list"
    assert [m["id"] for m in r.json()["data"]] == ["sam3"]
    assert r.json()["data"][0]["object"] == "model"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/", "/docs", "/openapi.json"])
def test_open_paths_need_no_key(client, path):
    assert client.get(path).status_code == 200


def test_keys_file_is_read(tmp_path, bright):
    keys = tmp_path / "keys.txt"
    keys.write_text("# rotation in progress\nfile-key-1\n\n  file-key-2  \n")
    with app_client(bright, api_keys="", api_keys_file=keys) as c:
        for key in ("file-key-1", "file-key-2"):
            r = c.post(PATH, headers={"Authorization": f"Bearer {key}"}, files=_files(), data={"model": "sam3"})
            assert r.status_code == 200
        r = c.post(PATH, headers={"Authorization": "Bearer # rotation in progress"}, files=_files())
        assert r.status_code == 401


def test_no_key_configured_refuses_to_build_the_app():
    with pytest.raises(NoAPIKeyError, match="SEGSERVE_API_KEYS"):
        create_app(Settings(_env_file=None, api_keys="", warmup=False))


def test_no_auth_serves_without_a_key(bright, caplog):
    with caplog.at_level("WARNING"), app_client(bright, api_keys="", no_auth=True) as c:
        r = c.post(PATH, files=_files(), data={"model": "sam3"})
        assert r.status_code == 200, r.text
    assert any("authentication is OFF" in rec.message for rec in caplog.records)


def test_checker_compares_every_key_digest(monkeypatch):
    # No early exit: compare_digest runs once per configured key whatever the presented key is.
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    checker = KeyChecker(["k1", "k2", "k3"])
    for presented, ok in [("k1", True), ("k3", True), ("nope", False), ("", False)]:
        calls.clear()
        assert checker.check(presented) is ok
        assert len(calls) == 3
        assert all(len(a) == len(b) == 32 for a, b in calls)  # digests: lengths never differ
        assert calls[0][1] == hashlib.sha256(presented.encode()).digest()
