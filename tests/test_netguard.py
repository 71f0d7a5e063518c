"""flows/netguard.py: the address policy, decided on literals only (nothing here connects anywhere)."""

from __future__ import annotations

import ipaddress

import pytest

from flows.netguard import HostAllowList, address_blocked_reason, parse_host_literal


def reason(text: str) -> str | None:
    return address_blocked_reason(ipaddress.ip_address(text))


# -- blocked ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("192.168.255.255", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoint
        ("169.254.0.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("fc00::1", "unique-local"),
        ("fd12:3456:789a::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("ff05::1:3", "multicast"),
    ],
)
def test_non_public_addresses_are_blocked_with_their_reason(addr, expected):
    assert reason(addr) == expected


@pytest.mark.parametrize(
    ("addr", "inner"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:192.168.1.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:0.0.0.0", "unspecified"),
    ],
)
def test_ipv4_mapped_ipv6_is_judged_by_its_ipv4_address(addr, inner):
    assert reason(addr) == f"IPv4-mapped {inner}"


def test_6to4_wrapping_a_private_address_is_blocked():
    assert reason("2002:7f00:1::") is not None  # 6to4 of 127.0.0.1
    assert reason("2002:a00:1::") is not None  # 6to4 of 10.0.0.1


def test_teredo_is_blocked():
    assert reason("2001:0:4136:e378:8000:63bf:3fff:fdd2") == "teredo"


@pytest.mark.parametrize(
    "addr",
    ["255.255.255.255", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "240.0.0.1", "0.1.2.3",
     "2001:db8::1", "::127.0.0.1"],
)
def test_other_special_purpose_addresses_are_blocked(addr):
    assert reason(addr) is not None


# -- allowed ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        # just outside the private ranges
        "172.15.255.255",
        "172.32.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "11.0.0.1",
        "192.167.255.255",
        "169.253.255.255",
    ],
)
def test_public_addresses_are_allowed(addr):
    assert reason(addr) is None


# -- literals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[fe80::1]", "fe80::1"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_parse_host_literal(host, expected):
    assert parse_host_literal(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("host", ["example.com", "localhost", "1.2.3.4.5", "1e3", "[not:an:addr", "", "xn--bcher-kva.de"])
def test_names_are_not_literals(host):
    assert parse_host_literal(host) is None


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "[::1]", "0", "[::ffff:10.0.0.1]"])
def test_odd_spellings_of_internal_addresses_are_blocked(host):
    addr = parse_host_literal(host)
    assert addr is not None
    assert address_blocked_reason(addr) is not None


# -- allow list -----------------------------------------------------------------------------------------------

ALLOW = HostAllowList(["127.0.0.1:8080", "localhost", "[::1]:9000"])


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 8080),
        ("localhost", 80),
        ("localhost", 8080),
        ("localhost", 65535),
        ("LOCALHOST", 443),
        ("::1", 9000),
        ("[::1]", 9000),
    ],
)
def test_allow_list_allows_what_it_names(host, port):
    assert ALLOW.allows(host, port)


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 80),  # named with a port: only that port
        ("127.0.0.1", 8081),
        ("127.0.0.2", 8080),
        ("::1", 8080),
        ("::1", 9001),
        ("[::1]", 80),
        ("localhost.localdomain", 80),
        ("example.com", 8080),
        ("10.0.0.1", 8080),
    ],
)
def test_allow_list_refuses_everything_else(host, port):
    assert not ALLOW.allows(host, port)


def test_allow_list_parses_entries():
    assert ALLOW.hosts == {"localhost"}
    assert ALLOW.host_ports == {("127.0.0.1", 8080), ("::1", 9000)}


def test_allow_list_bare_ipv6_and_bracketed_without_port_allow_any_port():
    allow = HostAllowList(["::1", "[fd00::5]", " Example.COM ", ""])
    assert allow.hosts == {"::1", "fd00::5", "example.com"}
    assert allow.host_ports == set()
    assert allow.allows("::1", 1) and allow.allows("[fd00::5]", 8443) and allow.allows("example.com", 80)
    assert not allow.allows("127.0.0.1", 80)


def test_empty_allow_list_allows_nothing():
    allow = HostAllowList()
    assert not allow.allows("localhost", 80)
    assert not allow.allows("127.0.0.1", 8080)
