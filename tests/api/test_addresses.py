"""The SSRF address policy on its own: no fetch, no resolver, no socket.

The end-to-end rows (a refused URL never dials, a redirect is re-checked) are in test_fetch.py;
these pin down the pieces those rows rely on, one notation or range at a time.
"""

from __future__ import annotations

import ipaddress

import pytest

from segserve.api.addresses import AllowList, is_forbidden, is_forbidden_name, literal_ip
from segserve.errors import InvalidImageURLError

LITERALS = [
    ("127.0.0.1", "127.0.0.1"),  # dotted quad
    ("2130706433", "127.0.0.1"),  # one decimal number
    ("0x7f000001", "127.0.0.1"),  # one hex number
    ("0x7f.1", "127.0.0.1"),  # hex plus the short form
    ("0177.0.0.1", "127.0.0.1"),  # octal label
    ("127.1", "127.0.0.1"),  # the inet_aton short form
    ("10.1.65535", "10.1.255.255"),  # the last label fills the remaining bytes
    ("::1", "::1"),  # IPv6
    ("example.com", None),  # a hostname
    ("1.example", None),  # numeric first label, but a hostname
]


@pytest.mark.parametrize(("host", "expected"), LITERALS)
def test_literal_ip(host, expected):
    ip = literal_ip(host)
    assert (None if ip is None else str(ip)) == expected


MALFORMED_LITERALS = [
    "256.256.256.256",  # a label over 255
    "1.2.3.4.5",  # too many numeric labels
    "1.2.3.256",  # the last label over its byte
    "0x1g.1",  # not hex after 0x
    "09.1.1.1",  # not octal after a leading 0
]


@pytest.mark.parametrize("host", MALFORMED_LITERALS)
def test_malformed_literals(host):
    with pytest.raises(InvalidImageURLError, match="malformed"):
        literal_ip(host)


ADDRESSES = [
    ("93.184.216.34", False),  # public IPv4
    ("2606:2800:220:1:248:1893:25c8:1946", False),  # public IPv6
    ("::ffff:93.184.216.34", False),  # IPv4-mapped public: the IPv4 address is what gets dialed
    ("127.0.0.1", True),  # loopback
    ("0.0.0.0", True),  # unspecified
    ("10.0.0.1", True),  # RFC 1918
    ("100.64.0.1", True),  # carrier-grade NAT
    ("169.254.169.254", True),  # cloud metadata
    ("fd00:ec2::254", True),  # AWS metadata over IPv6
    ("fe80::1%eth0", True),  # zone-scoped
    ("::ffff:10.0.0.1", True),  # IPv4-mapped private
    ("2002:a00:1::", True),  # 6to4 embedding 10.0.0.1
    ("64:ff9b::c0a8:101", True),  # NAT64 embedding 192.168.1.1
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),  # Teredo
    ("224.0.0.1", True),  # multicast
    ("192.0.2.1", True),  # documentation range
]


@pytest.mark.parametrize(("address", "forbidden"), ADDRESSES)
def test_is_forbidden(address, forbidden):
    assert is_forbidden(ipaddress.ip_address(address)) is forbidden


NAMES = [
    ("localhost", True),  # loopback by name
    ("api.localhost", True),  # *.localhost is loopback by RFC 6761
    ("metadata.google.internal", True),  # GCP metadata by name
    ("example.com", False),  # an ordinary name
    ("localhost.example.com", False),  # "localhost" only as a label
]


@pytest.mark.parametrize(("host", "forbidden"), NAMES)
def test_is_forbidden_name(host, forbidden):
    assert is_forbidden_name(host) is forbidden


ALLOW_LISTS = [
    ("127.0.0.0/8", "127.0.0.1", True),  # a CIDR around the address
    ("127.0.0.1", "::ffff:127.0.0.1", True),  # the mapped form of an allowed IPv4 address
    ("[::1]", "::1", True),  # an IPv6 entry in brackets
    ("10.0.0.0/8", "127.0.0.1", False),  # a CIDR that does not cover it
    ("169.254.0.0/16", "169.254.169.254", False),  # a broad CIDR never opens metadata
    ("169.254.169.254", "169.254.169.254", True),  # naming the exact metadata address does
    ("images.intranet", "127.0.0.1", False),  # a hostname entry covers no address
]


@pytest.mark.parametrize(("allow", "address", "covered"), ALLOW_LISTS)
def test_allow_list_covers(allow, address, covered):
    assert AllowList.parse(allow).covers(ipaddress.ip_address(address)) is covered


def test_allow_list_parse_splits_hosts_from_networks():
    allow = AllowList.parse(" Images.Intranet. , 10.0.0.0/8,, [::1] ")
    assert allow.hosts == frozenset({"images.intranet"})
    assert [str(n) for n in allow.nets] == ["10.0.0.0/8", "::1/128"]
