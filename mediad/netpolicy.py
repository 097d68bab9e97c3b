"""Pure: which addresses a download may connect to (the SSRF rules).

With ``network.allow_private: false`` (the default) no tool may reach loopback, private,
link-local, CGNAT, multicast, unspecified, reserved or cloud-metadata addresses, whatever
form the address takes: dotted, decimal, octal or hex IPv4 (``2130706433``, ``0x7f.1``),
or IPv4 embedded in IPv6 (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo).
``network.allow_hosts`` lists host names (``media.lan``, ``*.media.lan``) and addresses or
CIDRs (``10.0.0.0/8``) let through anyway.

The egress proxy (``mediad.egress``) applies :meth:`NetPolicy.check_address` to every
address it connects to; the API calls :meth:`NetPolicy.check_url` first, for a clear 400
on what is knowable without DNS. Nothing here touches the network.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Platform endpoints that hand out credentials. They are refused even with
# allow_private: a home lab wants its NAS, never the host's IAM role. Only an explicit
# allow_hosts entry lets one through.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address, reachable only from inside)
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)

# First match wins, so narrower ranges come before the ranges holding them.
_V4_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "CGNAT"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "IETF protocol"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "reserved"),  # the retired 6to4 relay anycast
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_V6_RANGES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("2001:10::/28"), "reserved"),  # ORCHID
    (_V6("2001:20::/28"), "reserved"),  # ORCHIDv2
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("fc00::/7"), "private"),  # unique local
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "private"),  # site-local, deprecated but still routed by some
    (_V6("ff00::/8"), "multicast"),
)

_MAPPED = _V6("::ffff:0:0/96")
_TRANSLATED = _V6("::ffff:0:0:0/96")  # SIIT "IPv4-translated"
_COMPATIBLE = _V6("::/96")
_SIXTOFOUR = _V6("2002::/16")
_NAT64 = _V6("64:ff9b::/96")
_NAT64_LOCAL = _V6("64:ff9b:1::/48")
_TEREDO = _V6("2001::/32")

# Dots that IDNA maps to "." (ideographic, fullwidth, halfwidth ideographic).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_LOCALHOST_NAMES = ("localhost", "localhost.localdomain")
_DEC_DIGITS = frozenset("0123456789")
_OCT_DIGITS = frozenset("01234567")
_HEX_DIGITS = frozenset("0123456789abcdef")


def blocked_reason(ip: str | IPAddress) -> str | None:
    """Why a connection to ``ip`` would reach something internal, or None for a public
    address. No allow rules apply here; see :meth:`NetPolicy.check_address`."""
    address = _as_address(ip)
    return _classify(address)


def _classify(address: IPAddress) -> str | None:
    if address in _METADATA:
        return f"cloud metadata address {address}"
    if isinstance(address, ipaddress.IPv4Address):
        for network, kind in _V4_RANGES:
            if address in network:
                return f"{kind} address {address}"
        return None
    for network6, kind in _V6_RANGES:
        if address in network6:
            return f"{kind} address {address}"
    for form, inner in _embedded_ipv4(address):
        reason = _classify(inner)
        if reason is not None:
            return f"{reason} (via {form} {_show(address)})"
    if address in _NAT64_LOCAL:
        return f"local-use NAT64 address {address}"
    return None


def _show(address: ipaddress.IPv6Address) -> str:
    """IPv6 with its last 32 bits dotted where they hold IPv4: ``::ffff:10.1.2.3``."""
    prefixes = ((_MAPPED, "::ffff:"), (_TRANSLATED, "::ffff:0:"), (_COMPATIBLE, "::"))
    for network, prefix in (*prefixes, (_NAT64, "64:ff9b::")):
        if address in network:
            return prefix + str(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return str(address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses a packet to ``address`` may end up at, with the form's name."""
    value = int(address)

    def v4(bits: int) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(bits & 0xFFFFFFFF)

    if address in _MAPPED:
        return [("IPv4-mapped", v4(value))]
    if address in _TRANSLATED:
        return [("IPv4-translated", v4(value))]
    if address in _COMPATIBLE:
        return [("IPv4-compatible", v4(value))]
    if address in _SIXTOFOUR:
        return [("6to4", v4(value >> 80))]
    if address in _NAT64:
        return [("NAT64", v4(value))]
    if address in _NAT64_LOCAL:
        # RFC 6052 places the IPv4 address by the operator's prefix length (48 to 96
        # bits), unknowable from here; _classify refuses this local-use range anyway and
        # reads the common /96 form only for a precise reason.
        return [("NAT64", v4(value))]
    if address in _TEREDO:
        server = v4(value >> 64)
        client = v4(~value)  # the client address is stored with every bit flipped
        return [("Teredo", client), ("Teredo server of", server)]
    return []


def parse_host_literal(host: str) -> IPAddress | None:
    """The address a tool or libc would read in ``host``, or None for a real host name.

    Accepts what ``inet_aton`` and the WHATWG URL parser accept: dotted quads, 1 to 3
    parts (``127.1``), decimal (``2130706433``), octal (``0177.0.0.1``,
    ``017700000001``), hex (``0x7f.1``, ``0x7f000001``), a trailing dot, fullwidth digits
    and dots, percent-encoding; IPv6 with or without brackets, with or without a zone.
    """
    text = unicodedata.normalize("NFKC", host.strip()).translate(_DOTS)
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        return _parse_ipv6(text)
    if "%" in text:
        text = unquote(text)
        if ":" in text:  # "%3A%3A1": no URL parser reads that as IPv6, but be safe
            return _parse_ipv6(text)
    if text.endswith("."):
        text = text[:-1]
    return _parse_ipv4(text)


def _parse_ipv6(text: str) -> ipaddress.IPv6Address | None:
    text = unquote(text.split("%25", 1)[0]).split("%", 1)[0]  # drop the zone: "%25eth0"
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _parse_ipv4(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_parse_ipv4_part(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = [n for n in numbers if n is not None]
    if any(n > 0xFF for n in head) or last >= 1 << (8 * (5 - len(parts))):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _parse_ipv4_part(part: str) -> int | None:
    # Only ASCII digits: int() would also take "٣", "1_0", " 1" and "+1".
    lowered = part.lower()
    if lowered.startswith("0x"):
        digits = lowered[2:]
        if not all(c in _HEX_DIGITS for c in digits):
            return None
        return int(digits, 16) if digits else 0
    if not part or not all(c in _DEC_DIGITS for c in part):
        return None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if all(c in _OCT_DIGITS for c in part) else None
    return int(part, 10)


def _as_address(ip: str | IPAddress) -> IPAddress:
    if isinstance(ip, str):
        parsed = parse_host_literal(ip)
        if parsed is None:
            raise ValueError(f"not an IP address: {ip!r}")
        ip = parsed
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(int(ip))  # the zone does not change where it lands
    return ip


def normalize_host_name(host: str) -> str:
    """A host name as compared with allow_hosts and ``localhost``, in the form a resolver
    gets it: NFKC (full-width and circled letters, ideographic dots: what browsers and
    IDNA map), lower case, ASCII (IDNA), no final dot. UnicodeError when IDNA refuses it."""
    name = unicodedata.normalize("NFKC", host.strip()).translate(_DOTS).rstrip(".").lower()
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return name


class NetPolicy:
    """The egress rules of one configuration: ``network.allow_private`` and
    ``network.allow_hosts``. Raises ValueError naming an invalid allow_hosts entry."""

    def __init__(self, allow_private: bool = False, allow_hosts: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self._names: set[str] = set()
        self._suffixes: set[str] = set()  # "*.example.com" → ".example.com"
        self._networks: list[IPNetwork] = []
        for entry in allow_hosts:
            self._add(entry)

    def _add(self, entry: str) -> None:
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"allow_hosts entry {entry!r}: empty or not a string")
        text = entry.strip()
        if "/" in text:
            try:
                self._networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError as exc:
                raise ValueError(f"allow_hosts entry {entry!r}: not a CIDR ({exc})") from None
            return
        literal = parse_host_literal(text)
        if literal is not None:
            literal = _as_address(literal)
            self._networks.append(ipaddress.ip_network(literal))
            return
        wildcard = text.startswith("*.")
        try:
            name = normalize_host_name(text[2:] if wildcard else text)
        except UnicodeError:
            raise ValueError(f"allow_hosts entry {entry!r}: not a valid host name") from None
        if not _valid_host_name(name):
            raise ValueError(
                f"allow_hosts entry {entry!r}: expected a host name, *.domain, IP or CIDR"
            )
        if wildcard:
            self._suffixes.add("." + name)
        else:
            self._names.add(name)

    def host_allowed(self, host: str) -> bool:
        """Whether allow_hosts lets ``host`` through whatever it resolves to: a name
        entry (exact, or ``*.domain`` for its subdomains), or for an IP literal a CIDR."""
        literal = parse_host_literal(host)
        if literal is not None:
            return self._network_allows(_as_address(literal))
        try:
            name = normalize_host_name(host)
        except UnicodeError:
            return False
        if name in self._names:
            return True
        return any(name.endswith(suffix) for suffix in self._suffixes)

    def check_address(self, ip: str | IPAddress, host: str | None = None) -> str | None:
        """None when a connection to ``ip`` (which ``host`` resolved to, if given) is
        allowed; else a short reason such as ``"loopback address 127.0.0.1"``."""
        address = _as_address(ip)
        if host is not None and self.host_allowed(host):
            return None
        if self._network_allows(address):
            return None
        reason = _classify(address)
        if reason is None:
            return None
        if self.allow_private and not reason.startswith("cloud metadata"):
            return None
        return reason

    def check_url(self, url: str) -> str | None:
        """What can be refused before any DNS lookup, for the API's early 400: the
        scheme, a missing host, an IP literal that is blocked, ``localhost``. None when
        the URL may go on to the egress proxy (which has the last word)."""
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname
            _ = parts.port  # raises ValueError on a bad port
        except ValueError as exc:
            return f"invalid URL ({exc})"
        if parts.scheme.lower() not in ALLOWED_SCHEMES:
            return "scheme not allowed"
        if not host:
            return "URL has no host"
        literal = parse_host_literal(host)
        if literal is not None:
            return self.check_address(literal, host)
        if self.allow_private or self.host_allowed(host):
            return None
        try:
            name = normalize_host_name(unquote(host))
        except UnicodeError:  # IDNA refuses it; its NFKC form is what a resolver would try
            name = unicodedata.normalize("NFKC", unquote(host)).translate(_DOTS).lower()
            name = name.rstrip(".")
        if name in _LOCALHOST_NAMES or name.endswith(".localhost"):
            return f"loopback host name {name}"
        return None

    def _network_allows(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)  # the very same endpoint
        return any(a in n for a in candidates for n in self._networks if a.version == n.version)


def _valid_host_name(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))
