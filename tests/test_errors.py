"""The error tree: each error's status, type and code as api-contract.md lists them, the wire body,
and the code -> class table the SDK uses to raise the same error the server raised."""

from __future__ import annotations

import inspect

import pytest

from segserve import errors
from segserve.errors import (
    ERRORS_BY_CODE,
    AuthenticationError,
    ClientTimeoutError,
    ImageTooLargeError,
    ImageURLForbiddenError,
    ImageURLUnreachableError,
    InvalidImageError,
    InvalidImageURLError,
    InvalidParameterError,
    InvalidPromptError,
    InvalidRequestError,
    MissingFieldError,
    ModelLoadError,
    ModelNotReadyError,
    RequestTimeoutError,
    SegserveError,
    ServerBusyError,
    ShuttingDownError,
    TooManyConnectionsError,
    UnknownModelError,
    UnsupportedImageFormatError,
    error_body,
)

CONTRACT = [
    (MissingFieldError, 400, "invalid_request_error", "missing_field"),  # model or image missing
    (UnknownModelError, 400, "invalid_request_error", "unknown_model"),  # model not served
    (InvalidPromptError, 400, "invalid_request_error", "invalid_prompt"),  # too many / too long concepts
    (InvalidParameterError, 400, "invalid_request_error", "invalid_parameter"),  # an extension out of range
    (InvalidImageURLError, 400, "invalid_request_error", "invalid_image_url"),  # not http(s) or a data URI
    (ImageURLForbiddenError, 400, "invalid_request_error", "image_url_forbidden"),  # SSRF: private address
    (ImageURLUnreachableError, 400, "invalid_request_error", "image_url_unreachable"),  # DNS, refused, non-2xx
    (AuthenticationError, 401, "authentication_error", "invalid_api_key"),  # token missing or wrong
    (ClientTimeoutError, 408, "invalid_request_error", "request_timeout"),  # headers or body stalled
    (ImageTooLargeError, 413, "invalid_request_error", "image_too_large"),  # bytes or pixels over the limit
    (UnsupportedImageFormatError, 415, "invalid_request_error", "unsupported_image_format"),  # e.g. PSD
    (InvalidImageError, 422, "invalid_request_error", "invalid_image"),  # not decodable
    (ServerBusyError, 429, "rate_limit_error", "server_busy"),  # the queue is full
    (ModelNotReadyError, 503, "server_error", "model_not_ready"),  # still loading
    (ShuttingDownError, 503, "server_error", "shutting_down"),  # SIGTERM: not answered within the grace
    (TooManyConnectionsError, 503, "server_error", "too_many_connections"),  # past max_connections
    (RequestTimeoutError, 504, "server_error", "timeout"),  # ran past request_timeout
    (SegserveError, 500, "server_error", "internal_error"),  # anything unexpected
]


@pytest.mark.parametrize(("cls", "status", "type_", "code"), CONTRACT)
def test_each_error_has_the_status_type_and_code_of_the_contract(cls, status, type_, code):
    err = cls("what to fix")
    assert (err.status, err.type, err.code) == (status, type_, code)


@pytest.mark.parametrize(
    ("err", "body"),
    [
        (
            MissingFieldError("Send the image.", param="image"),
            {"message": "Send the image.", "type": "invalid_request_error", "code": "missing_field", "param": "image"},
        ),  # param names the field
        (
            ServerBusyError("Retry in 2 seconds.", headers={"Retry-After": "2"}),
            {"message": "Retry in 2 seconds.", "type": "rate_limit_error", "code": "server_busy", "param": None},
        ),  # no param: null; headers stay off the body
    ],
)
def test_to_body_is_the_contract_error_body(err, body):
    assert err.to_body() == {"error": body}


def test_error_body_builds_the_same_shape_for_codes_outside_the_tree():
    # The HTTP layer's own 404 has no error class: it goes through the same builder.
    assert error_body("No such endpoint.", "invalid_request_error", "not_found") == {
        "error": {"message": "No such endpoint.", "type": "invalid_request_error", "code": "not_found", "param": None}
    }


def test_the_message_is_the_exception_text_and_headers_are_copied():
    given = {"Retry-After": "3"}
    err = ServerBusyError("The server is busy.", headers=given)
    given["Retry-After"] = "99"  # the caller's dict changing later does not change the error
    assert (str(err), err.message, err.headers) == ("The server is busy.", "The server is busy.", {"Retry-After": "3"})
    assert MissingFieldError("x").headers == {}


@pytest.mark.parametrize(("cls", "status", "type_", "code"), CONTRACT)
def test_a_body_turns_back_into_the_same_error(cls, status, type_, code):
    sent = cls("what to fix", param="prompt")
    wire = sent.to_body()["error"]
    back = ERRORS_BY_CODE[wire["code"]](wire["message"], param=wire["param"])
    assert type(back) is cls
    assert back.to_body() == sent.to_body()


def test_every_code_on_the_wire_maps_back_to_one_class():
    on_the_wire = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, SegserveError)
        and cls not in (InvalidRequestError, ModelLoadError, errors.AnnotateRunMismatchError)
    }  # InvalidRequestError only groups the 400s; ModelLoadError is raised at start-up and
    # AnnotateRunMismatchError by `segserve annotate`: neither is ever sent
    assert set(ERRORS_BY_CODE.values()) == on_the_wire
    assert {cls for cls, *_ in CONTRACT} == on_the_wire  # the table above lists them all
    assert all(ERRORS_BY_CODE[cls.code] is cls for cls in on_the_wire)  # no two share a code
