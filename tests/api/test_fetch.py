"""The SSRF-safe image fetch (bad-inputs.md, "Image URLs"); decoding data URIs is tested with images.

Every origin is served here on 127.0.0.1; hostnames are answered by resolver stubs. The autouse
`network` fixture wraps httpx's real transport so that any dial to a non-loopback address fails
the test, and records every request actually sent and every body byte actually read.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from api_support import serving

from segserve.api import fetch as fetch_module
from segserve.api.fetch import fetch_image, is_image_reference
from segserve.errors import (
    ImageTooLargeError,
    ImageURLForbiddenError,
    ImageURLUnreachableError,
    InvalidImageURLError,
    SegserveError,
)
from segserve.settings import Settings

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # any bytes: the fetcher does not decode images


def fetch(url: str, *, resolver=None, **overrides) -> bytes:
    settings = Settings(**{"url_timeout": 3.0, **overrides})
    return asyncio.run(fetch_image(url, settings, resolver=resolver))


def stub_resolver(answers: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


# ----------------------------------------------------------------------------------------------
# The network spy


@dataclass
class Network:
    requests: list[httpx.Request] = field(default_factory=list)  # as handed to the real transport
    body_chunks: list[int] = field(default_factory=list)  # sizes of body chunks read off the wire
    backend: Callable | None = None  # replaces the real transport (no socket at all) when set


class _CountingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, sizes: list[int]) -> None:
        self._inner, self._sizes = inner, sizes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._sizes.append(len(chunk))
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture(autouse=True)
def network(monkeypatch) -> Network:
    net = Network()
    real_send = httpx.AsyncHTTPTransport.handle_async_request

    async def guarded_send(self, request: httpx.Request) -> httpx.Response:
        net.requests.append(request)
        if net.backend is not None:
            return net.backend(request)
        if request.url.host not in ("127.0.0.1", "::1"):
            pytest.fail(f"a test tried to dial {request.url.host}")
        response = await real_send(self, request)
        response.stream = _CountingStream(response.stream, net.body_chunks)
        return response

    real_resolver = fetch_module._default_resolver

    async def guarded_resolver(host: str, port: int) -> list[str]:
        if host != "localhost":
            pytest.fail(f"a test tried to resolve {host} through DNS")
        return await real_resolver(host, port)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", guarded_send)
    monkeypatch.setattr(fetch_module, "_default_resolver", guarded_resolver)
    return net


# ----------------------------------------------------------------------------------------------
# A test origin on 127.0.0.1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _OriginServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append((self.path, self.headers.get("Host", "")))
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        try:
            if path == "/img":
                self._reply(200, IMAGE)
            elif path == "/404":
                self._reply(404, b"not here")
            elif path == "/500":
                self._reply(500, b"oops")
            elif path.startswith("/redirect/"):  # /redirect/N: N relative redirects in all, then /img
                n = int(path.rsplit("/", 1)[1])
                self._redirect(f"/redirect/{n - 1}" if n > 1 else "/img")
            elif path == "/loop":
                self._redirect("/loop")
            elif path == "/to":
                self._redirect(query["loc"][0])
            elif path == "/no-location":
                self._reply(302, b"")
            elif path == "/drip":  # headers at once, then one body byte per `every` seconds
                self._headers(200, {"Content-Length": "100"})
                self._drip(float(query["every"][0]))
            elif path == "/drip-headers":  # the status line and headers themselves crawl
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self.wfile.flush()
                for _ in range(100):
                    self.wfile.write(b"X: y\r\n")
                    self.wfile.flush()
                    time.sleep(0.25)
            elif path == "/huge":  # 1 GB, no Content-Length, ends with the connection
                self._headers(200, {"Connection": "close"})
                self._flood(1 << 30)
            elif path == "/lying":  # claims a small body, then floods
                self._headers(200, {"Content-Length": query["claim"][0]})
                self._flood(1 << 30)
            elif path == "/declared-huge":  # honest header announcing 1 GB
                self._headers(200, {"Content-Length": str(1 << 30)})
                self._flood(1 << 30)
            elif path == "/gzip-bomb":  # compressed although the fetcher asked for identity
                body = gzip.compress(b"\0" * (20 << 20))
                self._headers(200, {"Content-Length": str(len(body)), "Content-Encoding": "gzip"})
                self.wfile.write(body)
            elif path == "/gzip-small":
                body = gzip.compress(IMAGE)
                self._headers(200, {"Content-Length": str(len(body)), "Content-Encoding": "gzip"})
                self.wfile.write(body)
            else:
                self._reply(404, b"unknown route")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the fetcher hung up, which is what most of these tests want

    def _headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def _reply(self, status: int, body: bytes) -> None:
        self._headers(status, {"Content-Length": str(len(body)), "Content-Type": "image/png"})
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._headers(302, {"Location": location, "Content-Length": "0"})

    def _drip(self, every: float) -> None:
        for _ in range(100):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(every)

    def _flood(self, total: int) -> None:
        chunk = b"\xff" * (64 << 10)
        while self.server.sent < total:
            self.wfile.write(chunk)
            self.server.sent += len(chunk)


class _OriginServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # drip/flood handlers end on their own once the fetcher hangs up

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[tuple[str, str]] = []
        self.sent = 0

    def handle_error(self, request, client_address) -> None:
        # The fetcher hanging up mid-response (timeouts, byte caps) is what these tests provoke.
        pass

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def _origin_server() -> Iterator[_OriginServer]:
    with serving(_OriginServer()) as server:
        yield server


@pytest.fixture
def origin(_origin_server: _OriginServer) -> _OriginServer:
    """One server for the module (fast); its records start empty for each test."""
    _origin_server.hits.clear()
    _origin_server.sent = 0
    return _origin_server


# ----------------------------------------------------------------------------------------------
# Literal addresses and schemes: refused before any lookup or connection

FORBIDDEN_URLS = [
    "http://127.0.0.1/a.png",  # IPv4 loopback
    "http://127.0.0.2:8080/a.png",  # the rest of 127/8
    "http://localhost/a.png",  # loopback by name
    "http://LOCALHOST./a.png",  # ... in capitals with the root dot
    "http://api.localhost/a.png",  # *.localhost is loopback by RFC 6761
    "http://0.0.0.0/a.png",  # unspecified: reaches the local host on Linux
    "http://[::]/a.png",  # IPv6 unspecified
    "http://[::1]/a.png",  # IPv6 loopback
    "http://[::ffff:127.0.0.1]/a.png",  # IPv4-mapped loopback
    "http://[::ffff:7f00:1]/a.png",  # ... written in hex
    "http://[::127.0.0.1]/a.png",  # deprecated IPv4-compatible form
    "http://2130706433/a.png",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/a.png",  # ... as one hex number
    "http://0x7f.1/a.png",  # ... as hex plus a short form
    "http://127.1/a.png",  # ... the inet_aton short form
    "http://10.0.0.1/a.png",  # RFC 1918
    "http://172.16.0.1/a.png",  # RFC 1918
    "http://192.168.1.1/a.png",  # RFC 1918
    "http://100.64.0.1/a.png",  # shared address space (carrier-grade NAT)
    "http://169.254.169.254/latest/meta-data/",  # AWS/GCP/Azure metadata
    "http://169.254.1.1/a.png",  # link-local
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://metadata.google.internal/computeMetadata/v1/",  # GCP metadata by name
    "http://[fe80::1]/a.png",  # IPv6 link-local
    "http://[fc00::1]/a.png",  # IPv6 unique-local
    "http://[2002:a00:1::]/a.png",  # 6to4 embedding 10.0.0.1
    "http://[2002:7f00:1::1]/a.png",  # 6to4 embedding 127.0.0.1
    "http://[64:ff9b::c0a8:101]/a.png",  # NAT64 embedding 192.168.1.1
    "http://[64:ff9b::127.0.0.1]/a.png",  # NAT64 embedding loopback, dotted form
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.png",  # Teredo
    "http://224.0.0.1/a.png",  # multicast
    "http://[ff02::1]/a.png",  # IPv6 multicast
    "http://240.0.0.1/a.png",  # reserved
    "http://255.255.255.255/a.png",  # broadcast
    "http://192.0.2.1/a.png",  # documentation range (never a real origin)
    "https://127.0.0.1:443/a.png",  # https changes nothing
]


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_forbidden_literal_addresses(url, network):
    with pytest.raises(ImageURLForbiddenError) as info:
        fetch(url)
    assert info.value.status == 400 and info.value.code == "image_url_forbidden"
    assert network.requests == []


INVALID_URLS = [
    "file:///etc/passwd",  # local file
    "gopher://127.0.0.1:70/_GET",  # gopher smuggling
    "ftp://example.com/a.png",  # ftp
    "javascript:alert(1)",  # not a fetchable scheme at all
    "http:///a.png",  # no host
    "http://",  # nothing after the scheme
    "https://:443/a.png",  # a port but no host
    "//example.com/a.png",  # scheme-relative
    "example.com/a.png",  # no scheme
    "not a url",  # garbage
    "",  # empty
    "http://exa mple.com/a.png",  # a space in the host
    "http://exa%41mple.com/a.png",  # percent-escapes in the host
    "http://256.256.256.256/a.png",  # out-of-range IPv4
    "http://1.2.3.4.5/a.png",  # too many numeric labels
    "http://user:pass@example.com/a.png",  # credentials in the URL
    "http://127.0.0.1@example.com/a.png",  # userinfo that looks like a host
    "http://example.com/" + "a" * 9000,  # absurdly long
]


@pytest.mark.parametrize("url", INVALID_URLS)
def test_invalid_urls(url, network):
    with pytest.raises(InvalidImageURLError) as info:
        fetch(url)
    assert info.value.status == 400 and info.value.code == "invalid_image_url"
    assert network.requests == []


def test_error_messages_name_the_host_but_not_the_address():
    resolver = stub_resolver({"images.example.com": ["10.1.2.3"]})
    with pytest.raises(ImageURLForbiddenError) as info:
        fetch("http://images.example.com/a.png", resolver=resolver)
    assert "images.example.com" in info.value.message
    assert "10.1.2.3" not in info.value.message
    assert info.value.to_body()["error"]["param"] == "image"


# ----------------------------------------------------------------------------------------------
# Hostnames: every DNS answer is checked, and the checked answer is the one dialed

DNS_CASES = [
    (["127.0.0.1"], ImageURLForbiddenError),  # public-looking name, loopback answer
    (["10.0.0.5"], ImageURLForbiddenError),  # private answer
    (["169.254.169.254"], ImageURLForbiddenError),  # metadata behind an innocent name
    (["::ffff:192.168.0.1"], ImageURLForbiddenError),  # IPv4-mapped private answer
    (["93.184.216.34", "127.0.0.1"], ImageURLForbiddenError),  # one bad answer among good ones
    (["not-an-ip"], ImageURLForbiddenError),  # a resolver that answers nonsense
    ([], ImageURLUnreachableError),  # no answer at all
]


@pytest.mark.parametrize(("answers", "error"), DNS_CASES)
def test_dns_answers_are_all_checked(answers, error, origin, network):
    resolver = stub_resolver({"images.example.com": answers})
    with pytest.raises(error):
        fetch(f"http://images.example.com:{origin.port}/img", resolver=resolver)
    assert origin.hits == [] and network.requests == []  # refused before any connection


def test_dns_failure_is_unreachable(network):
    with pytest.raises(ImageURLUnreachableError) as info:
        fetch("http://no-such-host.example/a.png", resolver=stub_resolver({}))
    assert info.value.code == "image_url_unreachable"
    assert network.requests == []


def test_dials_the_checked_address_with_the_original_host_header(origin, network):
    calls: list[str] = []
    resolver = stub_resolver({"images.intranet": ["127.0.0.1"]}, calls)
    data = fetch(f"http://images.intranet:{origin.port}/img", resolver=resolver, url_allow="images.intranet")
    assert data == IMAGE
    assert calls == ["images.intranet"]  # one lookup: httpx never resolved the name again
    assert [r.url.host for r in network.requests] == ["127.0.0.1"]
    assert origin.hits == [("/img", f"images.intranet:{origin.port}")]


def test_no_second_lookup_for_a_rebinding_name(origin, network):
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    assert fetch(f"http://rebind.test:{origin.port}/img", resolver=rebinding, url_allow="127.0.0.1") == IMAGE
    assert calls == ["rebind.test"]
    assert [r.url.host for r in network.requests] == ["127.0.0.1"]


def test_https_keeps_the_hostname_for_sni_and_certificates(network):
    network.backend = lambda request: httpx.Response(200, stream=httpx.ByteStream(IMAGE))  # no socket
    resolver = stub_resolver({"images.example.com": ["93.184.216.34"]})
    assert fetch("https://images.example.com/a.png", resolver=resolver) == IMAGE
    (sent,) = network.requests
    assert sent.url.host == "93.184.216.34" and sent.url.scheme == "https"
    assert sent.headers["host"] == "images.example.com"
    assert sent.extensions["sni_hostname"] == "images.example.com"


def test_falls_back_to_the_next_checked_address(origin, network):
    # localhost through the real resolver: ::1 (nothing listens there) and/or 127.0.0.1
    assert fetch(f"http://localhost:{origin.port}/img", url_allow="localhost") == IMAGE
    assert network.requests[-1].url.host == "127.0.0.1"


# ----------------------------------------------------------------------------------------------
# The operator allow-list

ALLOW_CASES = [
    ("127.0.0.1", None),  # the exact address
    ("127.0.0.0/8", None),  # a CIDR around it
    ("images.intranet", None),  # the hostname
    ("Images.Intranet.", None),  # the hostname, spelled loosely by the operator
    ("10.0.0.0/8, images.intranet", None),  # one of several entries
    ("", ImageURLForbiddenError),  # nothing allowed
    ("10.0.0.0/8", ImageURLForbiddenError),  # a CIDR that does not cover the answer
    ("other.intranet", ImageURLForbiddenError),  # a different hostname
]


@pytest.mark.parametrize(("allow", "error"), ALLOW_CASES)
def test_allow_list(allow, error, origin):
    resolver = stub_resolver({"images.intranet": ["127.0.0.1"]})
    url = f"http://images.intranet:{origin.port}/img"
    if error is None:
        assert fetch(url, resolver=resolver, url_allow=allow) == IMAGE
    else:
        with pytest.raises(error):
            fetch(url, resolver=resolver, url_allow=allow)


def test_allow_list_by_address_does_not_open_localhost_by_name(origin, network):
    with pytest.raises(ImageURLForbiddenError):
        fetch(f"http://localhost:{origin.port}/img", url_allow="127.0.0.1")
    assert network.requests == []


def test_broad_allow_list_does_not_open_cloud_metadata(network):
    with pytest.raises(ImageURLForbiddenError):
        fetch("http://169.254.169.254/latest/meta-data/", url_allow="169.254.0.0/16")
    assert network.requests == []


# ----------------------------------------------------------------------------------------------
# Redirects: every hop re-checked, at most url_max_redirects of them


def test_relative_redirects_within_the_limit_are_followed(origin):
    assert fetch(origin.url("/redirect/5"), url_allow="127.0.0.1") == IMAGE  # exactly 5 hops


REDIRECT_CASES = [
    ("/redirect/6", ImageURLUnreachableError),  # one hop over the default limit of 5
    ("/loop", ImageURLUnreachableError),  # redirects to itself forever
    ("/no-location", ImageURLUnreachableError),  # a 302 with nowhere to go
    ("/to?loc=http://10.0.0.1/a.png", ImageURLForbiddenError),  # to a private address
    ("/to?loc=http://169.254.169.254/latest/meta-data/", ImageURLForbiddenError),  # to metadata
    ("/to?loc=http://[::ffff:10.0.0.1]/a.png", ImageURLForbiddenError),  # to a mapped private address
    ("/to?loc=http://2130706434/a.png", ImageURLForbiddenError),  # to 127.0.0.2 in decimal (not allowed)
    ("/to?loc=http://evil.example/a.png", ImageURLForbiddenError),  # to a name that resolves private
    ("/to?loc=file:///etc/passwd", InvalidImageURLError),  # to a local file
    ("/to?loc=gopher://127.0.0.1:6379/_FLUSHALL", InvalidImageURLError),  # to gopher
]


@pytest.mark.parametrize(("path", "error"), REDIRECT_CASES)
def test_redirects(path, error, origin, network):
    resolver = stub_resolver({"evil.example": ["192.168.1.1"]})
    with pytest.raises(error):
        fetch(origin.url(path), resolver=resolver, url_allow="127.0.0.1")
    assert {r.url.host for r in network.requests} == {"127.0.0.1"}  # the bad hop was never dialed


def test_redirect_limit_follows_settings(origin):
    with pytest.raises(ImageURLUnreachableError):
        fetch(origin.url("/redirect/1"), url_allow="127.0.0.1", url_max_redirects=0)


# ----------------------------------------------------------------------------------------------
# Origins that answer badly


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UNREACHABLE_CASES = [
    ("/404", 3.0),  # not found
    ("/500", 3.0),  # server error
    ("/drip?every=1", 1.0),  # one byte a second: the per-read timeout or the deadline ends it
    ("/drip?every=0.2", 1.0),  # fast enough for every single read, not for the whole deadline
    ("/drip-headers", 1.0),  # headers that never finish
]


@pytest.mark.parametrize(("path", "timeout"), UNREACHABLE_CASES)
def test_unreachable_origins(path, timeout, origin):
    with pytest.raises(ImageURLUnreachableError) as info:
        fetch(origin.url(path), url_allow="127.0.0.1", url_timeout=timeout)
    assert info.value.status == 400 and info.value.code == "image_url_unreachable"


def test_refused_connection_is_unreachable():
    with pytest.raises(ImageURLUnreachableError):
        fetch(f"http://127.0.0.1:{_closed_port()}/a.png", url_allow="127.0.0.1")


# httpcore reads the socket in chunks of at most 64 KiB, so the bytes pulled off the wire can
# pass the cap by at most one such chunk; the fetcher keeps no more than max_image_bytes + 1.
MAX_BYTES = 100_000
WIRE_SLACK = 64 << 10

TOO_LARGE_CASES = [
    "/huge",  # 1 GB with no Content-Length
    "/declared-huge",  # an honest Content-Length of 1 GB: refused before reading
    f"/lying?claim={MAX_BYTES * 1000}",  # a Content-Length over the limit, whatever follows
    "/gzip-bomb",  # 20 MB of zeros in ~20 KB of gzip
]


@pytest.mark.parametrize("path", TOO_LARGE_CASES)
def test_too_large_bodies(path, origin, network):
    with pytest.raises(ImageTooLargeError) as info:
        fetch(origin.url(path), url_allow="127.0.0.1", max_image_bytes=MAX_BYTES)
    assert info.value.status == 413 and info.value.code == "image_too_large"
    assert sum(network.body_chunks) <= MAX_BYTES + 1 + WIRE_SLACK


def test_declared_size_is_refused_before_reading(origin, network):
    with pytest.raises(ImageTooLargeError):
        fetch(origin.url("/declared-huge"), url_allow="127.0.0.1", max_image_bytes=MAX_BYTES)
    assert network.body_chunks == []


def test_content_length_understating_the_body_does_not_lift_the_cap(origin, network):
    data = fetch(origin.url("/lying?claim=50"), url_allow="127.0.0.1", max_image_bytes=MAX_BYTES)
    assert len(data) <= 50  # the declared length bounds the read; the flood behind it is ignored
    assert sum(network.body_chunks) <= MAX_BYTES + 1 + WIRE_SLACK


def test_small_gzip_body_is_inflated(origin):
    assert fetch(origin.url("/gzip-small"), url_allow="127.0.0.1") == IMAGE


def test_body_exactly_at_the_limit_is_accepted(origin):
    assert fetch(origin.url("/img"), url_allow="127.0.0.1", max_image_bytes=len(IMAGE)) == IMAGE
    with pytest.raises(ImageTooLargeError):
        fetch(origin.url("/img"), url_allow="127.0.0.1", max_image_bytes=len(IMAGE) - 1)


# ----------------------------------------------------------------------------------------------
# Data URIs: decoded, never fetched

B64 = base64.b64encode(IMAGE).decode()


def test_fetch_accepts_a_data_uri(network):
    assert fetch(f"data:image/png;base64,{B64}") == IMAGE
    assert network.requests == []


IMAGE_REFERENCES = [
    ("http://example.com/a.png", True),  # http
    ("HTTPS://example.com/a.png", True),  # https, any case
    ("data:image/png;base64,AAAA", True),  # a data URI
    ("  https://example.com/a.png", True),  # leading whitespace
    ("file:///etc/passwd", False),  # another scheme
    ("iVBORw0KGgoAAAANSUhEUg", False),  # bare base64
    ("example.com/a.png", False),  # no scheme
    ("", False),  # empty
]


@pytest.mark.parametrize(("value", "expected"), IMAGE_REFERENCES)
def test_is_image_reference(value, expected):
    assert is_image_reference(value) is expected


def test_every_error_is_a_segserve_error():
    for cls in (InvalidImageURLError, ImageURLForbiddenError, ImageURLUnreachableError, ImageTooLargeError):
        assert issubclass(cls, SegserveError)
