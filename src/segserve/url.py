"""SSRF-safe image intake: fetch an `http(s)` URL, or decode a `data:` URI, within the limits.

The rule a fetch follows on every hop, redirects included: parse the URL, resolve its host once,
check every address the resolver returned, then dial one of those checked addresses (the request
keeps the original `Host` header and TLS SNI). Nothing in the chain resolves the name a second
time, so a DNS answer that changes between check and connect (rebinding) gains nothing.

    fetch_image_url(url, settings)   -> bytes   (raises the errors in `segserve.errors`)
    decode_data_uri(uri, max_bytes)  -> bytes
    is_image_reference(value)        -> bool
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import re
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from segserve.errors import (
    ImageTooLargeError,
    ImageURLForbiddenError,
    ImageURLUnreachableError,
    InvalidImageURLError,
)
from segserve.settings import Settings

__all__ = ["Resolver", "decode_data_uri", "fetch_image_url", "is_image_reference"]

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAX_URL_CHARS = 8192
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Names refused before any lookup: split-horizon DNS or /etc/hosts may point them anywhere.
_FORBIDDEN_NAMES = frozenset({"localhost", "metadata.google.internal"})
_FORBIDDEN_SUFFIXES = (".localhost",)
# After IDNA encoding a hostname is plain ASCII letters, digits, hyphens, dots (and underscores,
# which real DNS names do carry); anything else (%, spaces) is a malformed URL, not a name to resolve.
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")

# Cloud metadata endpoints (AWS/GCP/Azure/OpenStack IPv4, AWS IPv6). Refused even when a broad
# allow-listed CIDR covers them: only an allow-list entry naming the exact address opens them.
_METADATA_IPS = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

# Ranges refused on top of what `ipaddress` flags; listed explicitly because the flags' coverage
# differs between Python releases (3.11.x and 3.12.x changed `is_private`/`is_global`).
_BLOCKED_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT shared space
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",  # unspecified, loopback and deprecated IPv4-compatible addresses
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",
        "2001::/32",  # Teredo: the embedded client address is obfuscated and attacker-chosen
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# ----------------------------------------------------------------------------------------------
# Public API


def is_image_reference(value: str) -> bool:
    """True when `value` names an image by reference (an http(s) URL or a data URI)."""
    head = value.lstrip()[:8].lower()
    return head.startswith(("http://", "https://", "data:"))


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    """`data:image/<format>;base64,<payload>` -> the decoded bytes.

    The size limit is enforced from the payload's length before any decoding, so an oversized
    URI costs no allocation beyond the string the caller already holds.
    """
    head, sep, payload = uri.strip().partition(",")
    if not sep or head[:5].lower() != "data:":
        raise InvalidImageURLError(
            "The image data URI is malformed; send it as data:image/<format>;base64,<data>.", param="image"
        )
    params = [p.strip().lower() for p in head[5:].split(";")]
    if not params[0].startswith("image/") or "base64" not in params[1:]:
        raise InvalidImageURLError(
            "The image data URI must be base64-encoded and of type image/*: "
            "data:image/<format>;base64,<data>.",
            param="image",
        )
    # Whitespace (line-wrapped base64) may inflate the raw length; a payload more than twice the
    # largest legal encoding cannot be explained by that and is refused unseen.
    encoded_limit = 4 * -(-max_bytes // 3)
    if len(payload) > 2 * encoded_limit + 1024:
        raise _too_large(max_bytes)
    if "%" in payload:
        payload = unquote(payload)
    payload = "".join(payload.split())
    if "-" in payload or "_" in payload:
        payload = payload.translate(str.maketrans("-_", "+/"))  # base64url from some clients
    payload = payload.rstrip("=")
    if not payload:
        raise InvalidImageURLError("The image data URI contains no data.", param="image")
    if len(payload) % 4 == 1:
        raise _bad_base64()
    if len(payload) * 3 // 4 > max_bytes:
        raise _too_large(max_bytes)
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad_base64() from None


async def fetch_image_url(url: str, settings: Settings, *, resolver: Resolver | None = None) -> bytes:
    """Download the image at `url` (or decode it, for a data URI) under the SSRF rules above.

    Raises InvalidImageURLError, ImageURLForbiddenError, ImageURLUnreachableError or
    ImageTooLargeError, each with a message the client can act on.
    """
    if url.lstrip()[:5].lower() == "data:":
        return decode_data_uri(url, settings.max_image_bytes)
    target = _parse(url)
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
# URL parsing and the address policy


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str  # ASCII hostname or IP text, lower case, no brackets, no trailing dot
    ip: IPAddress | None  # set when the URL names an address rather than a hostname
    port: int


def _parse(url: str) -> _Target:
    if len(url) > _MAX_URL_CHARS:
        raise InvalidImageURLError(
            f"The image URL is longer than {_MAX_URL_CHARS} characters.", param="image"
        )
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise _malformed() from None
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
        raise _malformed() from None
    if not host:
        raise InvalidImageURLError("The image URL has no host.", param="image")
    ip = _literal_ip(host)
    if ip is None and not _HOSTNAME.match(host):
        raise _malformed()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if ip is not None:
        # Spell the address canonically in the URL itself, so the request, the Host header and the
        # pinning all agree on what `2130706433` or `0x7f.1` really is.
        host = str(ip)
        parsed = parsed.copy_with(host=host)
    return _Target(url=parsed, host=host, ip=ip, port=port)


def _literal_ip(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, in any notation a resolver would accept.

    Legacy IPv4 forms (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) are decoded here, as
    browsers and inet_aton do, so they are checked and dialed as the address they really are.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if not parts[-1] or not re.fullmatch(r"0x[0-9a-f]*|[0-9]+", parts[-1]):
        return None  # the last label is not numeric: a hostname
    if len(parts) > 4:
        raise _malformed()
    numbers = []
    for part in parts:
        try:
            if part.startswith("0x"):
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part, 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            raise _malformed() from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise _malformed()
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address routes to, for the translation schemes that have one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_forbidden(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return True  # zone-scoped addresses are link-local by construction
        v4 = _embedded_ipv4(ip)
        if v4 is not None and _is_forbidden(v4):
            return True
        if ip.ipv4_mapped is not None:
            return False  # the socket dials the IPv4 address just checked
    return (
        ip in _METADATA_IPS
        or any(ip in net for net in _BLOCKED_NETS if net.version == ip.version)
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


@dataclass(frozen=True)
class _AllowList:
    hosts: frozenset[str]
    nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, text: str) -> _AllowList:
        hosts, nets = set(), []
        for raw in text.split(","):
            entry = raw.strip().lower().strip("[]").rstrip(".")
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(nets))

    def covers(self, ip: IPAddress) -> bool:
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        for candidate in candidates:
            for net in self.nets:
                if candidate.version != net.version or candidate not in net:
                    continue
                if candidate in _METADATA_IPS and net.num_addresses != 1:
                    continue
                return True
        return False


# ----------------------------------------------------------------------------------------------
# Resolving and dialing


async def _default_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def _checked_addresses(target: _Target, allow: _AllowList, resolver: Resolver) -> list[str]:
    """The addresses to dial for `target`, every one of them checked; raises if any is refused."""
    host_allowed = target.host in allow.hosts
    if not host_allowed and (target.host in _FORBIDDEN_NAMES or target.host.endswith(_FORBIDDEN_SUFFIXES)):
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
            if _is_forbidden(ip) and not allow.covers(ip):
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
        if url.scheme == "https" and _literal_ip(host) is None:
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
    allow = _AllowList.parse(settings.url_allow)
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
    allow: _AllowList,
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
        raise ImageURLUnreachableError(
            f"{host} stopped sending the image; try again.", param="image"
        ) from None
    except httpx.HTTPError as exc:
        log.info("image URL: reading the body from %s failed: %r", host, exc)
        raise ImageURLUnreachableError(
            f"The connection to {host} failed while reading the image.", param="image"
        ) from None
    return bytes(body)


# ----------------------------------------------------------------------------------------------
# Error constructors (one wording per failure, used from several places)


def _malformed() -> InvalidImageURLError:
    return InvalidImageURLError("The image URL is malformed; check it.", param="image")


def _bad_base64() -> InvalidImageURLError:
    return InvalidImageURLError("The image data URI's payload is not valid base64.", param="image")


def _forbidden(host: str) -> ImageURLForbiddenError:
    return ImageURLForbiddenError(
        f"The image URL's host {host} is a loopback, private, link-local, reserved or cloud-metadata "
        "address; use a public URL (an operator can allow a host with SEGSERVE_URL_ALLOW).",
        param="image",
    )


def _too_large(max_bytes: int, host: str | None = None) -> ImageTooLargeError:
    where = f" at {host}" if host else ""
    return ImageTooLargeError(
        f"The image{where} is larger than the {max_bytes}-byte limit; send a smaller image.", param="image"
    )
