"""The SSRF-safe image fetch behind the API's `image` field: an `http(s)` URL or a `data:` URI.

The rule a fetch follows on every hop, redirects included: parse the URL, resolve its host once,
check every address the resolver returned (the policy lives in `addresses.py`), then dial one of
those checked addresses (the request keeps the original `Host` header and TLS SNI). Nothing in the
chain resolves the name a second time, so a DNS answer that changes between check and connect
(rebinding) gains nothing.

    fetch_image(ref, settings)   -> bytes   (raises the errors in `segserve.errors`)
    is_image_reference(value)    -> bool
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from segserve.api.addresses import (
    AllowList,
    IPAddress,
    is_forbidden,
    is_forbidden_name,
    literal_ip,
    malformed_url,
)
from segserve.errors import (
    ImageTooLargeError,
    ImageURLForbiddenError,
    ImageURLUnreachableError,
    InvalidImageURLError,
)
from segserve.images import decode_data_uri, is_data_uri
from segserve.settings import Settings

__all__ = ["Resolver", "fetch_image", "is_image_reference"]

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]

_MAX_URL_CHARS = 8192
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# After IDNA encoding a hostname is plain ASCII letters, digits, hyphens, dots (and underscores,
# which real DNS names do carry); anything else (%, spaces) is a malformed URL, not a name to resolve.
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")


def is_image_reference(value: str) -> bool:
    """True when `value` names an image by reference (an http(s) URL or a data URI)."""
    head = value.lstrip()[:8].lower()
    return head.startswith(("http://", "https://")) or is_data_uri(value)


async def fetch_image(ref: str, settings: Settings, *, resolver: Resolver | None = None) -> bytes:
    """The image bytes `ref` names: downloaded under the SSRF rules above, or decoded from a data URI.

    Raises InvalidImageURLError, ImageURLForbiddenError, ImageURLUnreachableError or
    ImageTooLargeError, each with a message the client can act on. `resolver` replaces DNS in tests.
    """
    if is_data_uri(ref):
        return decode_data_uri(ref, settings.max_image_bytes)
    target = _parse(ref)
    try:
        # One deadline for everything (DNS, every hop, the body): a server that drips a byte a
        # second never trips httpx's per-read timeout, but it does trip this one.
        return await asyncio.wait_for(
            _fetch(target, settings, resolver or _default_resolver), timeout=settings.url_timeout
        )
    except asyncio.TimeoutError:
        raise ImageURLUnreachableError(
            f"Fetching the image from {target.host} took longer than {settings.url_timeout:g} s; "
            "use a faster host or upload the image.",
            param="image",
        ) from None


# ----------------------------------------------------------------------------------------------
# URL parsing


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str  # ASCII hostname or IP text, lower case, no brackets, no trailing dot
    ip: IPAddress | None  # set when the URL names an address rather than a hostname
    port: int


def _parse(url: str) -> _Target:
    if len(url) > _MAX_URL_CHARS:
        raise InvalidImageURLError(f"The image URL is longer than {_MAX_URL_CHARS} characters.", param="image")
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise malformed_url() from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidImageURLError(
            "The image URL must start with http:// or https:// (or be a data:image/...;base64 URI).",
            param="image",
        )
    if parsed.userinfo:
        raise InvalidImageURLError(
            "The image URL must not contain credentials (user:password@); remove them.", param="image"
        )
    try:
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    except UnicodeDecodeError:
        raise malformed_url() from None
    if not host:
        raise InvalidImageURLError("The image URL has no host.", param="image")
    ip = literal_ip(host)
    if ip is None and not _HOSTNAME.match(host):
        raise malformed_url()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if ip is not None:
        # Spell the address canonically in the URL itself, so the request, the Host header and the
        # pinning all agree on what `2130706433` or `0x7f.1` really is.
        host = str(ip)
        parsed = parsed.copy_with(host=host)
    return _Target(url=parsed, host=host, ip=ip, port=port)


# ----------------------------------------------------------------------------------------------
# Resolving and dialing


async def _default_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


async def _checked_addresses(target: _Target, allow: AllowList, resolver: Resolver) -> list[str]:
    """The addresses to dial for `target`, every one of them checked; raises if any is refused."""
    host_allowed = target.host in allow.hosts
    if not host_allowed and is_forbidden_name(target.host):
        raise _forbidden(target.host)
    if target.ip is not None:
        answers: list[IPAddress] = [target.ip]
    else:
        try:
            raw = await resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            log.info("image URL: resolving %s failed: %r", target.host, exc)
            raise ImageURLUnreachableError(
                f"Could not resolve the image URL's host {target.host}; check the URL.", param="image"
            ) from None
        answers = []
        for text in raw:
            try:
                answers.append(ipaddress.ip_address(text))
            except ValueError:
                log.warning("image URL: resolver gave %r for %s, not an address", text, target.host)
                raise _forbidden(target.host) from None
        if not answers:
            raise ImageURLUnreachableError(
                f"Could not resolve the image URL's host {target.host}; check the URL.", param="image"
            )
    if not host_allowed:
        # One bad answer refuses the whole host: which answer gets dialed is not ours to predict
        # once connection fallbacks come into play, and a rebinding attacker controls the order.
        for ip in answers:
            if is_forbidden(ip) and not allow.covers(ip):
                log.info("image URL: %s resolves to refused address %s", target.host, ip)
                raise _forbidden(target.host)
    return list(dict.fromkeys(str(ip) for ip in answers))


class _PinnedTransport(httpx.AsyncBaseTransport):
    """Sends each request to the address pinned for its host, never to a fresh DNS answer.

    The URL's host becomes the checked IP; the `Host` header (already set by httpx from the
    original URL) and the TLS SNI / certificate check keep using the hostname.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self._pins: dict[tuple[str, int], str] = {}

    def pin(self, host: str, port: int, ip: str) -> None:
        self._pins[(host, port)] = ip

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii").lower().rstrip(".")
        port = url.port or (443 if url.scheme == "https" else 80)
        ip = self._pins.get((host, port))
        if ip is None:
            # Only reachable through a bug in the caller: refuse rather than let httpcore resolve.
            raise httpx.ConnectError(f"refusing to dial unchecked host {host}", request=request)
        extensions = dict(request.extensions)
        if url.scheme == "https" and literal_ip(host) is None:
            extensions.setdefault("sni_hostname", host)
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=ip),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _fetch(target: _Target, settings: Settings, resolver: Resolver) -> bytes:
    allow = AllowList.parse(settings.url_allow)
    transport = _PinnedTransport(httpx.AsyncHTTPTransport(retries=0))
    client = httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,  # each hop must pass the address check first
        trust_env=False,  # an environment proxy would resolve the name itself
        timeout=httpx.Timeout(settings.url_timeout),
        # identity: a compressed body would be inflated past the byte cap before we could count it
        headers={"Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": "segserve"},
    )
    async with client:
        for hop in range(settings.url_max_redirects + 1):
            response = await _send(client, transport, target, allow, resolver)
            try:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise ImageURLUnreachableError(
                            f"{target.host} answered a redirect without a Location; check the URL.",
                            param="image",
                        )
                    try:
                        next_url = str(target.url.join(location))
                    except (httpx.InvalidURL, ValueError):
                        raise InvalidImageURLError(
                            f"{target.host} redirected to a malformed URL.", param="image"
                        ) from None
                    target = _parse(next_url)
                    log.debug("image URL: redirect %d to %s", hop + 1, target.host)
                    continue
                if not 200 <= response.status_code < 300:
                    raise ImageURLUnreachableError(
                        f"{target.host} answered HTTP {response.status_code} for the image URL; "
                        "check that the URL is public and points at an image.",
                        param="image",
                    )
                return await _read_capped(response, settings.max_image_bytes, target.host)
            finally:
                await response.aclose()
    raise ImageURLUnreachableError(
        f"The image URL redirected more than {settings.url_max_redirects} times; use the final URL.",
        param="image",
    )


async def _send(
    client: httpx.AsyncClient,
    transport: _PinnedTransport,
    target: _Target,
    allow: AllowList,
    resolver: Resolver,
) -> httpx.Response:
    addresses = await _checked_addresses(target, allow, resolver)
    request = client.build_request("GET", target.url)
    for i, ip in enumerate(addresses):
        transport.pin(target.host, target.port, ip)
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            log.info("image URL: connecting to %s (%s) failed: %r", target.host, ip, exc)
            if i + 1 < len(addresses):
                continue  # the next checked address of the same host
            raise ImageURLUnreachableError(
                f"Could not connect to {target.host} to fetch the image; check the URL.", param="image"
            ) from None
        except httpx.TimeoutException:
            raise ImageURLUnreachableError(
                f"{target.host} did not answer within {client.timeout.connect:g} s.", param="image"
            ) from None
        except httpx.HTTPError as exc:
            log.info("image URL: request to %s (%s) failed: %r", target.host, ip, exc)
            raise ImageURLUnreachableError(
                f"The connection to {target.host} failed while fetching the image.", param="image"
            ) from None
    raise AssertionError("unreachable: _checked_addresses never returns an empty list")


async def _read_capped(response: httpx.Response, max_bytes: int, host: str) -> bytes:
    """The body, reading at most `max_bytes + 1` bytes (decoded and on the wire) before refusing."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes, host)
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, auto-detected
    elif encoding in ("", "identity"):
        inflater = None
    else:
        raise ImageURLUnreachableError(
            f"{host} sent the image with an unsupported Content-Encoding ({encoding[:20]}).", param="image"
        )
    body = bytearray()
    wire = 0
    try:
        async for chunk in response.aiter_raw():
            wire += len(chunk)
            if inflater is not None:
                chunk = inflater.decompress(chunk, max_bytes + 1 - len(body))
                if inflater.unconsumed_tail:
                    raise _too_large(max_bytes, host)
            body += chunk[: max_bytes + 1 - len(body)]
            if len(body) > max_bytes or wire > max_bytes:
                raise _too_large(max_bytes, host)
    except zlib.error:
        raise ImageURLUnreachableError(f"{host} sent a corrupt compressed body.", param="image") from None
    except httpx.TimeoutException:
        raise ImageURLUnreachableError(f"{host} stopped sending the image; try again.", param="image") from None
    except httpx.HTTPError as exc:
        log.info("image URL: reading the body from %s failed: %r", host, exc)
        raise ImageURLUnreachableError(
            f"The connection to {host} failed while reading the image.", param="image"
        ) from None
    return bytes(body)


# ----------------------------------------------------------------------------------------------
# Error constructors (one wording per failure, used from several places)


def _forbidden(host: str) -> ImageURLForbiddenError:
    return ImageURLForbiddenError(
        f"The image URL's host {host} is a loopback, private, link-local, reserved or cloud-metadata "
        "address; use a public URL (an operator can allow a host with SEGSERVE_URL_ALLOW).",
        param="image",
    )


def _too_large(max_bytes: int, host: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"The image at {host} is larger than the {max_bytes}-byte limit; send a smaller image.", param="image"
    )
