"""A bounded schemathesis run against the in-process app: every documented operation, fed data the
OpenAPI schema allows (positive) and data it forbids (negative), must answer without a 5xx, with a
documented status, a documented content type and a body that matches the documented schema.

The run is deterministic (hypothesis derandomized, no example database; the examples drawn change
only with the schemathesis / hypothesis versions) and small enough for the suite's 2-core budget.
The segmenter is the API tests' `BrightSegmenter`, so no model is needed. What earlier runs found is
replayed at the end as plain rows, so it stays fixed whatever a later version draws.

No generated request may reach the network: the `image` field is often a URL (the schema's own
example is https://example.com/...). Every host name resolves to 127.0.0.1 through a stub resolver,
every dial is rewritten to a local origin that serves a tiny PNG, and `socket.getaddrinfo` records
any lookup that would still escape; the test fails if one did.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from api_support import AUTH, BrightSegmenter, make_settings, png, serving, upload
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.serialization import Binary

from segserve.api import create_app
from segserve.api import fetch as fetch_module
from segserve.types import SegmentationResult

PNG = png()
DATA_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
# A public-looking name: the stub resolver sends it to the local origin like any other.
IMAGE_URL = "http://images.example/photo.png"

CHECKS = [
    not_a_server_error,  # a 5xx is never the answer to what a client sent (api-contract.md)
    status_code_conformance,  # only the statuses the schema documents
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,  # bodies, error bodies included, match the documented models
    negative_data_rejection,  # what the schema forbids is refused with a 4xx, not served
]

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# (method, path, mode, examples): the segmentation endpoint is where the input is. Negative data
# only where the schema declares something to break (a body, or the bearer header).
RUNS = [
    ("POST", "/v1/images/segmentation", POSITIVE, 200),
    ("POST", "/v1/images/segmentation", NEGATIVE, 200),
    ("GET", "/v1/models", POSITIVE, 10),
    ("GET", "/v1/models", NEGATIVE, 10),
    ("GET", "/healthz", POSITIVE, 5),
    ("GET", "/readyz", POSITIVE, 5),
    ("GET", "/metrics", POSITIVE, 5),
    ("GET", "/", POSITIVE, 5),
]

# What happens to a generated body's `image`: most keep what the fuzzer made (mostly strings the
# server must refuse with a 400); the rest carry a real image, so options, prompts and mask formats
# are fuzzed all the way through decoding, the segmenter and the response encoder.
IMAGE_CHOICES = st.sampled_from(["generated", "generated", "data_uri", "url", "upload"])
# Likewise `model`: a generated one is nearly always unknown_model, which would stop every request
# at the first check; most requests name the served model so the rest of the body gets read.
MODEL_CHOICES = st.sampled_from(["sam3", "sam3", "sam3", "generated"])


# --- the local origin and the network guard ----------------------------------------------------
class _Origin(ThreadingHTTPServer):
    hits = 0  # GETs served: shows the URL path of the fetcher was really exercised


class _PngHandler(BaseHTTPRequestHandler):
    server: _Origin

    def log_message(self, *args: Any) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)


@pytest.fixture(scope="module")
def origin() -> Iterator[_Origin]:
    server = _Origin(("127.0.0.1", 0), _PngHandler)
    server.daemon_threads = True
    with serving(server):
        yield server


@pytest.fixture
def escaped(monkeypatch: pytest.MonkeyPatch, origin: _Origin) -> list[str]:
    """Route every image fetch to `origin`; returns the host lookups that tried to leave the machine."""
    port = origin.server_address[1]
    leaks: list[str] = []

    async def resolve_locally(host: str, port_: int) -> list[str]:
        return ["127.0.0.1"]

    real_send = httpx.AsyncHTTPTransport.handle_async_request

    async def send_to_origin(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        # Literal addresses in generated URLs skip the resolver; this catches them at the dial.
        local = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
        rerouted = httpx.Request(
            request.method, local, headers=request.headers, stream=request.stream, extensions=request.extensions
        )
        return await real_send(self, rerouted)

    real_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in ("127.0.0.1", "localhost", "::1", None):
            leaks.append(str(name))
            raise socket.gaierror(socket.EAI_NONAME, "the fuzz test allows no DNS")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(fetch_module, "_default_resolver", resolve_locally)
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", send_to_origin)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return leaks


@pytest.fixture
def load_schema(escaped: list[str]) -> Iterator[Callable[..., Any]]:
    """Builds an app with the given settings overrides and loads its schema from /openapi.json."""

    def load(**overrides: Any) -> Any:
        # 127.0.0.1 is allow-listed so rerouted fetches succeed instead of ending as image_url_forbidden.
        app = create_app(make_settings(url_allow="127.0.0.1", **overrides), BrightSegmenter())
        # Loading starts the app's lifespan in schemathesis' event-loop thread; stopped below.
        return schemathesis.openapi.from_asgi("/openapi.json", app)

    try:
        yield load
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture
def schema(load_schema: Callable[..., Any]) -> Any:
    return load_schema()


# --- the run -------------------------------------------------------------------------------------
def _is_valid(value: object) -> bool:
    """A value the schema allows for `model` or `image`: text with a non-blank character, or a file."""
    return isinstance(value, Binary | bytes) or (isinstance(value, str) and bool(value.strip()))


def _steer(case: schemathesis.Case, model: str, image: str) -> None:
    """Swap in the served model and a real image. Only values the schema already allows are
    replaced: in negative mode the field the fuzzer broke stays broken, so the case stays negative."""
    body = case.body
    if not isinstance(body, dict):
        return
    if model != "generated" and _is_valid(body.get("model")):
        body["model"] = model
    if image == "generated" or not _is_valid(body.get("image")):
        return
    if image == "upload" and case.media_type == "multipart/form-data":
        body["image"] = PNG
    elif image == "url":
        body["image"] = IMAGE_URL
    else:
        body["image"] = DATA_URI


def _fuzz(operation: Any, mode: GenerationMode, max_examples: int, *, shrink: bool = True) -> Callable[[], None]:
    """The hypothesis test for one operation and generation mode, ready to call."""
    skipped = () if shrink else (hypothesis.Phase.shrink, hypothesis.Phase.explain)

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,  # the same examples on every run and every machine
        database=None,  # no .hypothesis/ replays: a failure is reproduced by rerunning the test
        deadline=None,  # the CPU is shared; timing is never a failure here
        phases=[phase for phase in hypothesis.Phase if phase not in skipped],
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.data_too_large,
            hypothesis.HealthCheck.filter_too_much,
        ],
        print_blob=False,
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), model=MODEL_CHOICES, image=IMAGE_CHOICES)
    def run(case: schemathesis.Case, model: str, image: str) -> None:
        _steer(case, model, image)
        # The test key, unless the fuzzer broke the bearer header on purpose (negative mode): then
        # it goes as generated (absent or wrong) and the answer must be the documented 401.
        negated = case.operation.schema.is_security_param_negated(case)
        case.call_and_validate(headers=None if negated else AUTH, checks=CHECKS)

    return run


@pytest.mark.parametrize(
    ("method", "path", "mode", "max_examples"), RUNS, ids=[f"{m} {p} {g.value}" for m, p, g, _ in RUNS]
)
def test_operation_keeps_to_its_schema(
    schema: Any,
    escaped: list[str],
    origin: _Origin,
    method: str,
    path: str,
    mode: GenerationMode,
    max_examples: int,
) -> None:
    hits = origin.hits
    if path == "/v1/images/segmentation":
        # The bearer header is fuzzed on /v1/models. Here a broken header would stop most negative
        # cases at the 401, before the body they also broke is ever read.
        schema.config.generation.update(with_security_parameters=False)
    _fuzz(schema[path][method], mode, max_examples)()
    assert escaped == [], f"generated requests tried to resolve {sorted(set(escaped))}"
    if path == "/v1/images/segmentation" and mode is POSITIVE:
        assert origin.hits > hits, "no generated request fetched its image by URL"


def _explode(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected fault")


REAL_TO_DICT = SegmentationResult.to_dict


def _without_num_segments(self: SegmentationResult, *args: Any, **kwargs: Any) -> dict[str, Any]:
    body = REAL_TO_DICT(self, *args, **kwargs)
    del body["num_segments"]
    return body


@pytest.mark.parametrize(
    ("target", "fault", "failure"),
    [
        ("segment", _explode, "ST101"),  # an unexpected exception: the generic 500
        ("to_dict", _without_num_segments, "ST108"),  # a 200 whose body breaks the documented model
    ],
    ids=["server-error", "schema-violation"],
)
def test_the_run_catches_a_broken_server(
    schema: Any, monkeypatch: pytest.MonkeyPatch, target: str, fault: Callable[..., Any], failure: str
) -> None:
    """The run can fail: with a fault injected behind the API, the same run reports it."""
    owner = BrightSegmenter if target == "segment" else SegmentationResult
    monkeypatch.setattr(owner, target, fault)
    with pytest.raises(FailureGroup) as found:
        _fuzz(schema["/v1/images/segmentation"]["POST"], POSITIVE, 30, shrink=False)()
    assert failure in {error.code for error in found.value.exceptions}


# --- what the fuzzer found -----------------------------------------------------------------------
# Each row is a disagreement a run once reported, replayed as one request so that it stays fixed
# whatever examples a later schemathesis or hypothesis version happens to draw.


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [
        ({"max_segments": None}, True),  # null means the default; the schema allowed only an integer (ST201)
        ({"threshold": None, "mask_threshold": None, "mask_format": None, "everything_mode": None}, True),
        ({"prompt": None}, True),  # null prompt: segment everything (already documented)
        ({"mask_format": ""}, False),  # "" was read as not given, a form's rule, in JSON too (ST201)
        ({"threshold": ""}, False),  # ... for every option
        ({"max_segments": 0}, False),  # out of range: refused by both
        ({"mask_format": "bitmap"}, False),  # not one of the formats: refused by both
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else None,
)
def test_the_schema_and_the_server_agree_on_a_json_body(schema: Any, fields: dict[str, Any], accepted: bool) -> None:
    operation = schema["/v1/images/segmentation"]["POST"]
    body = {"model": "sam3", "image": DATA_URI, **fields}
    request_schema = schema.raw_schema["paths"]["/v1/images/segmentation"]["post"]["requestBody"]
    validator = jsonschema_rs.validator_for(request_schema["content"]["application/json"]["schema"])
    response = operation.Case(body=body, media_type="application/json").call(headers=AUTH)
    assert (validator.is_valid(body), response.status_code == 200) == (accepted, accepted), response.text


def test_a_blank_form_option_means_the_default_and_the_schema_says_so(schema: Any, client: Any) -> None:
    # The form side of the "" rows above: an HTML form's blank inputs (the playground's) are not
    # given. The form schemas listed only the values, so a blank one counted as invalid (ST201).
    blank = {"threshold": "", "mask_threshold": "", "max_segments": "", "mask_format": "", "everything_mode": ""}
    response = upload(client, PNG, **blank)
    assert response.status_code == 200, response.text
    assert "counts" in response.json()["segments"][0]["mask"]  # the default format, rle
    content = schema.raw_schema["paths"]["/v1/images/segmentation"]["post"]["requestBody"]["content"]
    for media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        properties = content[media_type]["schema"]["properties"]
        for name, value in blank.items():
            assert jsonschema_rs.validator_for(properties[name]).is_valid(value), (media_type, name)


def test_a_urlencoded_image_is_text_in_the_schema(schema: Any) -> None:
    # The form schema was shared with multipart, so the fuzzer sent files in urlencoded bodies, which
    # cannot carry one: the server saw no image at all.
    content = schema.raw_schema["paths"]["/v1/images/segmentation"]["post"]["requestBody"]["content"]
    assert content["application/x-www-form-urlencoded"]["schema"]["properties"]["image"]["type"] == "string"
    assert "binary" not in str(content["application/x-www-form-urlencoded"]["schema"]["properties"]["image"])
    assert "binary" in str(content["multipart/form-data"]["schema"]["properties"]["image"])


@pytest.mark.parametrize(
    ("require_key", "headers", "status"),
    [
        (False, {}, 200),  # open by default, yet the schema demanded a key (ST201 in negative mode)
        (True, {}, 401),  # SEGSERVE_METRICS_REQUIRE_KEY: the 401 was undocumented (ST103)
        (True, AUTH, 200),  # closed, with the key
    ],
)
def test_metrics_answers_as_documented(
    load_schema: Callable[..., Any], require_key: bool, headers: dict[str, str], status: int
) -> None:
    schema = load_schema(metrics_require_key=require_key)
    case = schema["/metrics"]["GET"].Case()
    response = case.call(headers=headers)
    assert response.status_code == status
    case.validate_response(response, checks=CHECKS[:-1])  # all but negative_data_rejection (no fuzzing)
    security = schema.raw_schema["paths"]["/metrics"]["get"]["security"]
    assert {} in security  # a key is optional: what the default configuration answers
