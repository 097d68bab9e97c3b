"""The SSRF rules: address classes, literal forms, allow_hosts. Pure: no sockets."""

from __future__ import annotations

import ipaddress

import pytest

from mediad.netpolicy import NetPolicy, blocked_reason, parse_host_literal

# (host as a tool might write it, the address it means)
LITERALS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0X7F000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("00000177.0.0.01", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("%3A%3A1", "::1"),
    (" 127.0.0.1 ", "127.0.0.1"),
    ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1"),  # fullwidth digits
    ("127\u30020\u30020\u30021", "127.0.0.1"),  # ideographic full stops
    ("127%2E0.0.1", "127.0.0.1"),
    ("0x", "0.0.0.0"),
    ("0", "0.0.0.0"),
    ("2130706434", "127.0.0.2"),
    ("0x7f000002", "127.0.0.2"),
    ("167772161", "10.0.0.1"),
    ("012.0.0.1", "10.0.0.1"),
    ("0xa.1", "10.0.0.1"),
    ("3232235777", "192.168.1.1"),
    ("0xc0.0xa8.0x1.0x1", "192.168.1.1"),
    ("192.168.257", "192.168.1.1"),
    ("2852039166", "169.254.169.254"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
    ("169.16689662", "169.254.169.254"),
    ("134744072", "8.8.8.8"),
    ("010.010.010.010", "8.8.8.8"),
    ("4294967295", "255.255.255.255"),
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[0:0:0:0:0:0:0:1]", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ("[::ffff:7f00:1]", "::ffff:7f00:1"),
    ("[::FFFF:127.0.0.2]", "::ffff:7f00:2"),
    ("[fe80::1%25eth0]", "fe80::1"),
    ("[fe80::1%eth0]", "fe80::1"),
    ("fe80::1%lo", "fe80::1"),
    ("[127.0.0.1]", "127.0.0.1"),
]

NOT_LITERALS = [
    "example.com",
    "localhost",
    "127.0.0.1.nip.io",
    "1.2.3.4.5",
    "0x7g.1",
    "08.0.0.1",  # 8 is no octal digit: libc and browsers treat it as a name
    "1..1",
    "",
    ".",
    "256.0.0.1",
    "1.2.3.256",
    "1.2.65536",
    "4294967296",
    "1_0.0.0.1",
    "+1.0.0.1",
    "-1",
    "0x+1",
    "\u0661\u0662\u0667.0.0.1",  # Arabic-Indic digits: no tool reads them as numbers
    "[::1",
    "[v1.x]",
    "127.0.0.1:80",
    "::gggg",
]

# (address in any form, a fragment its reason must contain)
BLOCKED = [
    ("127.0.0.1", "loopback address 127.0.0.1"),
    ("127.255.255.254", "loopback"),
    ("2130706433", "loopback"),
    ("0x7f.1", "loopback"),
    ("::1", "loopback address ::1"),
    ("0.0.0.0", "unspecified address 0.0.0.0"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified address ::"),
    ("10.0.0.1", "private address 10.0.0.1"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.0.1", "private"),
    ("3232235777", "private address 192.168.1.1"),
    ("fc00::1", "private"),
    ("fd12:3456:789a::1", "private"),
    ("fec0::1", "private"),
    ("169.254.169.254", "cloud metadata address 169.254.169.254"),
    ("2852039166", "cloud metadata"),
    ("0251.0376.0251.0376", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata address fd00:ec2::254"),
    ("169.254.1.1", "link-local address 169.254.1.1"),
    ("fe80::1", "link-local"),
    ("fe80::1%25eth0", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("100.64.0.1", "CGNAT address 100.64.0.1"),
    ("100.127.255.255", "CGNAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff05::1:3", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("254.1.2.3", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("2001:2::1", "benchmarking"),
    ("192.0.0.1", "IETF protocol"),
    ("192.0.0.8", "IETF protocol"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"),
    # IPv4 inside IPv6: the embedded address decides
    ("::ffff:127.0.0.1", "loopback address 127.0.0.1 (via IPv4-mapped ::ffff:127.0.0.1)"),
    ("::ffff:10.1.2.3", "private address 10.1.2.3 (via IPv4-mapped ::ffff:10.1.2.3)"),
    ("::ffff:169.254.169.254", "cloud metadata address 169.254.169.254 (via IPv4-mapped"),
    ("::ffff:0.0.0.0", "unspecified address 0.0.0.0"),
    ("::ffff:100.64.1.1", "CGNAT"),
    ("[::ffff:7f00:2]", "loopback address 127.0.0.2"),
    ("::ffff:0:10.0.0.1", "private address 10.0.0.1 (via IPv4-translated"),
    ("::127.0.0.1", "loopback address 127.0.0.1 (via IPv4-compatible ::127.0.0.1)"),
    ("::10.0.0.1", "private address 10.0.0.1 (via IPv4-compatible"),
    ("::2", "unspecified address 0.0.0.2 (via IPv4-compatible"),
    ("2002:7f00:1::", "loopback address 127.0.0.1 (via 6to4 2002:7f00:1::)"),
    ("2002:a00:1::1", "private address 10.0.0.1 (via 6to4"),
    ("2002:a9fe:a9fe:1234::1", "cloud metadata address 169.254.169.254 (via 6to4"),
    ("2002:c0a8:101::", "private address 192.168.1.1 (via 6to4"),
    ("64:ff9b::7f00:1", "loopback address 127.0.0.1 (via NAT64 64:ff9b::127.0.0.1)"),
    ("64:ff9b::10.0.0.1", "private address 10.0.0.1 (via NAT64"),
    ("64:ff9b::169.254.169.254", "cloud metadata"),
    ("64:ff9b::100.64.0.1", "CGNAT"),
    ("64:ff9b:1::a00:1", "private address 10.0.0.1 (via NAT64"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("64:ff9b:1:7f00:1::", "64:ff9b:1:7f00:1::"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback address 127.0.0.1 (via Teredo"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private address 10.0.0.1 (via Teredo"),
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "private address 10.0.0.1 (via Teredo server of"),
]

PUBLIC = [
    "8.8.8.8",
    "134744072",
    "010.010.010.010",
    "1.1",
    "93.184.216.34",
    "11.0.0.1",
    "126.255.255.255",
    "128.0.0.1",
    "100.63.255.255",
    "100.128.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.255",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "2002:808:808::1",
    "64:ff9b::8.8.8.8",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo: public server, client 8.8.8.8
    "fbff:ffff::1",
    "fe00::1",
]


@pytest.mark.parametrize(("host", "expected"), LITERALS)
def test_parse_host_literal_reads_every_form(host: str, expected: str) -> None:
    assert parse_host_literal(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("host", NOT_LITERALS)
def test_parse_host_literal_leaves_names_alone(host: str) -> None:
    assert parse_host_literal(host) is None


@pytest.mark.parametrize(("address", "fragment"), BLOCKED)
def test_blocked_reason_names_the_class(address: str, fragment: str) -> None:
    reason = blocked_reason(address)
    assert reason is not None and fragment in reason, reason
    assert NetPolicy().check_address(address) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(address) is None
    assert NetPolicy().check_address(address) is None


def test_blocked_reason_takes_address_objects() -> None:
    assert blocked_reason(ipaddress.IPv4Address("10.1.2.3")) == "private address 10.1.2.3"
    assert blocked_reason(ipaddress.IPv6Address("::1")) == "loopback address ::1"
    assert blocked_reason(ipaddress.IPv4Address("1.2.3.4")) is None


def test_blocked_reason_rejects_names() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        blocked_reason("example.com")


@pytest.mark.parametrize(("host", "expected"), LITERALS)
def test_check_address_reads_every_literal_form(host: str, expected: str) -> None:
    assert NetPolicy().check_address(host) == blocked_reason(expected)


# -- allow_hosts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "host", "allowed"),
    [
        (["media.example.com"], "media.example.com", True),
        (["media.example.com"], "MEDIA.Example.COM", True),
        (["media.example.com"], "media.example.com.", True),
        (["Media.Example.com."], "media.example.com", True),
        (["media.example.com"], "a.media.example.com", False),
        (["media.example.com"], "example.com", False),
        (["media.example.com"], "media.example.com.evil.net", False),
        (["*.example.com"], "a.example.com", True),
        (["*.example.com"], "a.b.example.com", True),
        (["*.example.com"], "A.EXAMPLE.COM", True),
        (["*.example.com"], "example.com", False),
        (["*.example.com"], "badexample.com", False),
        (["*.example.com"], "example.com.evil.net", False),
        (["example.com", "*.example.com"], "example.com", True),
        (["nas.lan"], "nas.lan", True),
        (["bücher.example"], "xn--bcher-kva.example", True),
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "2130706433", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["10.0.0.0/8"], "10.9.8.7", True),
        (["10.0.0.0/8"], "0xa.1", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["::1"], "[::1]", True),
        (["[::1]"], "::1", True),
        (["fd00::/8"], "[fd12::1]", True),
        (["fd00::/8"], "[fe80::1]", False),
        ([], "example.com", False),
        ([], "127.0.0.1", False),
    ],
)
def test_host_allowed(entries: list[str], host: str, allowed: bool) -> None:
    assert NetPolicy(allow_hosts=entries).host_allowed(host) is allowed


@pytest.mark.parametrize(
    ("entries", "address", "host", "allowed"),
    [
        (["10.0.0.0/8"], "10.1.2.3", None, True),
        (["10.0.0.0/8"], "192.168.1.1", None, False),
        (["10.1.2.3/8"], "10.200.0.1", None, True),  # host bits are ignored
        (["192.168.1.0/24"], "192.168.1.77", None, True),
        (["192.168.1.0/24"], "192.168.2.1", None, False),
        (["127.0.0.1"], "127.0.0.1", None, True),
        (["127.0.0.1"], "::ffff:127.0.0.1", None, True),  # the very same endpoint
        (["127.0.0.1"], "127.0.0.2", None, False),
        (["127.0.0.1"], "::1", None, False),
        (["::1"], "::1", None, True),
        (["fd00::/8"], "fd00:ec2::254", None, True),  # explicit: even metadata
        (["169.254.169.254"], "169.254.169.254", None, True),
        (["nas.lan"], "192.168.1.10", "nas.lan", True),
        (["nas.lan"], "192.168.1.10", "NAS.LAN.", True),
        (["nas.lan"], "192.168.1.10", "other.lan", False),
        (["*.lan"], "10.0.0.5", "printer.lan", True),
        ([], "8.8.8.8", "dns.google", True),
        ([], "10.0.0.5", "internal.example.com", False),
    ],
)
def test_check_address_with_allow_hosts(
    entries: list[str], address: str, host: str | None, allowed: bool
) -> None:
    reason = NetPolicy(allow_hosts=entries).check_address(address, host)
    assert (reason is None) is allowed, reason


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("fd12::1", True),
        ("8.8.8.8", True),
        # credentials endpoints stay closed unless allow_hosts names them
        ("169.254.169.254", False),
        ("::ffff:169.254.169.254", False),
        ("fd00:ec2::254", False),
        ("100.100.100.200", False),
    ],
)
def test_allow_private(address: str, allowed: bool) -> None:
    reason = NetPolicy(allow_private=True).check_address(address)
    assert (reason is None) is allowed, reason


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "   ",
        "http://example.com",
        "example.com:80",
        "example.com/path",
        "10.0.0.0/33",
        "1.2.3.4/abc",
        "fe80::/129",
        "[::1",
        "*",
        "*.",
        "*.*.example.com",
        "a.*.example.com",
        "exa mple.com",
        "-bad.example.com",
        "bad-.example.com",
        "a..b",
        "x" * 64 + ".com",
        "user@example.com",
        "ex%41mple.com",
    ],
)
def test_invalid_allow_hosts_entries_name_the_entry(entry: str) -> None:
    with pytest.raises(ValueError) as info:
        NetPolicy(allow_hosts=[entry])
    assert repr(entry) in str(info.value)


@pytest.mark.parametrize("entry", [None, 5, ["a"]])
def test_allow_hosts_entries_must_be_strings(entry: object) -> None:
    with pytest.raises(ValueError, match="allow_hosts entry"):
        NetPolicy(allow_hosts=[entry])  # type: ignore[list-item]


# -- the API's early check --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "scheme not allowed"),
        ("file:///etc/passwd", "scheme not allowed"),
        ("gopher://127.0.0.1:6379/_x", "scheme not allowed"),
        ("http:///x", "no host"),
        ("http://127.0.0.1/", "loopback"),
        ("http://2130706433:8080/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("HTTP://[::1]:80/", "loopback"),
        ("http://[::ffff:169.254.169.254]/latest", "cloud metadata"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://10.0.0.1/", "private"),
        ("http://localhost:8080/", "loopback host name localhost"),
        ("http://LOCALHOST./", "loopback host name"),
        ("http://a.localhost/", "loopback host name"),
        ("http://example.com:99999/", "invalid URL"),
    ],
)
def test_check_url_refuses_early(url: str, fragment: str) -> None:
    reason = NetPolicy().check_url(url)
    assert reason is not None and fragment in reason, reason


@pytest.mark.parametrize(
    ("policy", "url"),
    [
        (NetPolicy(), "https://example.com/video"),
        (NetPolicy(), "http://8.8.8.8/x.mp4"),
        (NetPolicy(), "HTTPS://Example.COM:8443/a?b#c"),
        (NetPolicy(allow_hosts=["127.0.0.1"]), "http://127.0.0.1:8080/x"),
        (NetPolicy(allow_hosts=["localhost"]), "http://localhost:8080/x"),
        (NetPolicy(allow_private=True), "http://192.168.1.5/x"),
        (NetPolicy(allow_private=True), "http://localhost/x"),
    ],
)
def test_check_url_lets_through(policy: NetPolicy, url: str) -> None:
    assert policy.check_url(url) is None
