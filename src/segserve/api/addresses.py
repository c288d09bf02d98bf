"""Which addresses an image fetch may dial: the SSRF address policy, kept apart from the fetch.

A host is refused when its name is one split-horizon DNS could point anywhere (`localhost`,
cloud metadata names) or when it denotes, in any notation, an address that is loopback, private,
link-local, reserved, or a cloud metadata endpoint, including IPv4 addresses embedded in IPv6
translation schemes. The operator's allow-list (SEGSERVE_URL_ALLOW) reopens named hosts and CIDRs,
but a broad CIDR never reopens a metadata address.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from segserve.errors import InvalidImageURLError

__all__ = ["AllowList", "IPAddress", "is_forbidden", "is_forbidden_name", "literal_ip", "malformed_url"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names refused before any lookup: split-horizon DNS or /etc/hosts may point them anywhere.
_FORBIDDEN_NAMES = frozenset({"localhost", "metadata.google.internal"})
_FORBIDDEN_SUFFIXES = (".localhost",)

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


def malformed_url() -> InvalidImageURLError:
    """The one wording for a URL that cannot be parsed, shared with the fetch's URL parsing."""
    return InvalidImageURLError("The image URL is malformed; check it.", param="image")


def is_forbidden_name(host: str) -> bool:
    """True for a hostname refused by name alone, whatever it would resolve to."""
    return host in _FORBIDDEN_NAMES or host.endswith(_FORBIDDEN_SUFFIXES)


def literal_ip(host: str) -> IPAddress | None:
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
        raise malformed_url()
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
            raise malformed_url() from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise malformed_url()
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


def is_forbidden(ip: IPAddress) -> bool:
    """True for an address a fetch must not dial unless the allow-list covers it."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return True  # zone-scoped addresses are link-local by construction
        v4 = _embedded_ipv4(ip)
        if v4 is not None and is_forbidden(v4):
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
class AllowList:
    """The operator's exceptions (SEGSERVE_URL_ALLOW): hostnames and CIDRs, comma-separated."""

    hosts: frozenset[str]
    nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, text: str) -> AllowList:
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
