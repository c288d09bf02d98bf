"""Bearer-token check for the `/v1/*` routes.

Every configured key is compared, in constant time, against the presented one: SHA-256 digests of
equal length go through `hmac.compare_digest`, and the loop never exits early, so neither the
position of a matching key nor a key's length leaks through timing. Several keys may be valid at
once (rotation). Keys in the query string are never looked at.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from segserve.errors import AuthenticationError

# auto_error=False: a missing header must give our 401 body, not FastAPI's 403.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key configured on the server.")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyChecker:
    """Holds digests only: the plain keys are not kept in the app's state."""

    def __init__(self, keys: list[str]):
        self._digests = [_digest(k) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str) -> bool:
        candidate = _digest(presented)
        ok = False
        for digest in self._digests:  # no early exit: the time is the same wherever a match is
            ok |= hmac.compare_digest(digest, candidate)
        return ok


def _unauthorized(message: str) -> AuthenticationError:
    return AuthenticationError(message, headers={"WWW-Authenticate": "Bearer"})


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> None:
    checker: KeyChecker = request.app.state.segserve.keys
    if not checker.enabled:  # --no-auth
        return
    if credentials is None:
        raise _unauthorized("Missing API key. Send it as the header `Authorization: Bearer <key>`.")
    if not checker.check(credentials.credentials):
        raise _unauthorized("Invalid API key. Check the key sent in `Authorization: Bearer <key>`.")
