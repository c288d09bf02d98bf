"""Every error segserve raises on purpose, each with its HTTP status and a public message.

    SegserveError                      500 server_error / internal_error
    ├── InvalidRequestError            400 invalid_request_error
    │   ├── MissingFieldError              missing_field        (param names the field)
    │   ├── UnknownModelError              unknown_model
    │   ├── InvalidPromptError             invalid_prompt
    │   ├── InvalidParameterError          invalid_parameter
    │   ├── InvalidImageURLError           invalid_image_url
    │   ├── ImageURLForbiddenError         image_url_forbidden
    │   ├── ImageURLUnreachableError       image_url_unreachable
    │   ├── ClientTimeoutError         408 request_timeout  (headers or body too slow to arrive)
    │   ├── ImageTooLargeError         413 image_too_large
    │   ├── UnsupportedImageFormatError 415 unsupported_image_format
    │   └── InvalidImageError          422 invalid_image
    ├── AuthenticationError            401 authentication_error / invalid_api_key
    ├── ServerBusyError                429 rate_limit_error / server_busy
    ├── ModelNotReadyError             503 server_error / model_not_ready
    ├── ShuttingDownError              503 server_error / shutting_down
    ├── TooManyConnectionsError        503 server_error / too_many_connections
    ├── RequestTimeoutError            504 server_error / timeout
    ├── ModelLoadError                 (raised at start-up / in the CLI, never on the wire)
    └── AnnotateRunMismatchError       409 annotate_run_mismatch (an InvalidParameterError; CLI only)

`message` is public: it tells the client what to fix. Anything internal goes to the log only.
The same classes are raised by the SDK when the server answers with the matching error body.
"""

from __future__ import annotations

from typing import Any, ClassVar


def error_body(message: str, type: str, code: str, param: str | None = None) -> dict[str, Any]:
    """The wire body of api-contract.md, `{"error": {message, type, code, param}}`: the one place it is built."""
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


class SegserveError(Exception):
    """Base class. Subclasses set the class-level status/type/code; instances carry the message."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        """This error as the wire body of api-contract.md."""
        return error_body(self.message, self.type, self.code, self.param)


class InvalidRequestError(SegserveError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class MissingFieldError(InvalidRequestError):
    code = "missing_field"


class UnknownModelError(InvalidRequestError):
    code = "unknown_model"


class InvalidPromptError(InvalidRequestError):
    code = "invalid_prompt"


class InvalidParameterError(InvalidRequestError):
    code = "invalid_parameter"


class InvalidImageURLError(InvalidRequestError):
    code = "invalid_image_url"


class ImageURLForbiddenError(InvalidRequestError):
    code = "image_url_forbidden"


class ImageURLUnreachableError(InvalidRequestError):
    code = "image_url_unreachable"


class ClientTimeoutError(InvalidRequestError):
    """The client stopped sending: its headers or its body did not arrive in time (408). Not the
    server's 504 `timeout` (`RequestTimeoutError`), which is about the server's own slowness."""

    status = 408
    code = "request_timeout"


class ImageTooLargeError(InvalidRequestError):
    status = 413
    code = "image_too_large"


class UnsupportedImageFormatError(InvalidRequestError):
    status = 415
    code = "unsupported_image_format"


class InvalidImageError(InvalidRequestError):
    status = 422
    code = "invalid_image"


class AuthenticationError(SegserveError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ServerBusyError(SegserveError):
    status = 429
    type = "rate_limit_error"
    code = "server_busy"


class ModelNotReadyError(SegserveError):
    status = 503
    code = "model_not_ready"


class ShuttingDownError(SegserveError):
    """The server is stopping (SIGTERM): the request was not answered in the grace period. Retry
    against another instance, or this one once it is back."""

    status = 503
    code = "shutting_down"


class TooManyConnectionsError(SegserveError):
    """More connections are open than `max_connections`: this one is answered and closed at once."""

    status = 503
    code = "too_many_connections"


class RequestTimeoutError(SegserveError):
    status = 504
    code = "timeout"


class ModelLoadError(SegserveError):
    """The checkpoint could not be loaded; the message says how to get it (licence, login, local path)."""

    status = 503
    code = "model_not_ready"


class AnnotateRunMismatchError(InvalidParameterError):
    """`segserve annotate` into an OUT whose journal was made with another prompt, model or options
    (never on the wire: `param` names the first option that differs, the message says to use
    --restart or a new OUT)."""

    status = 409
    code = "annotate_run_mismatch"


# code -> class, so the SDK can turn an error body back into the same exception.
ERRORS_BY_CODE: dict[str, type[SegserveError]] = {
    cls.code: cls
    for cls in (
        MissingFieldError,
        UnknownModelError,
        InvalidPromptError,
        InvalidParameterError,
        InvalidImageURLError,
        ImageURLForbiddenError,
        ImageURLUnreachableError,
        ClientTimeoutError,
        ImageTooLargeError,
        UnsupportedImageFormatError,
        InvalidImageError,
        AuthenticationError,
        ServerBusyError,
        ModelNotReadyError,
        ShuttingDownError,
        TooManyConnectionsError,
        RequestTimeoutError,
        SegserveError,
    )
}
