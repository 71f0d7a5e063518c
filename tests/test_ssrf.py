"""SSRF: a fetched page (or a source) decides where we connect, so the address policy is applied to the
address actually connected to, on every redirect hop, before any socket is opened.

Only loopback is ever connected to. Non-loopback addresses are decided with the real network backend
replaced by a stub that refuses everything, so a mistake in the guard could not send traffic either.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpcore
import pytest

from flows.config import Settings, load_settings
from flows.fetch import Fetcher, FetchResult
from flows.netguard import BlockedAddress, GuardedBackend, HostAllowList
from tests.faultserver import FaultServer


@pytest.fixture
def server_a() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def server_b() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def settings(*allow: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(allow_hosts=allow, host_delay=0.0, connect_timeout=1.0, read_timeout=1.0,
                                request_deadline=2.0, max_retries=0, backoff_base=0.01)
    base.update(overrides)
    return load_settings(env={}, **base)


def fetch(s: Settings, url: str) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(s) as fetcher:
            return await fetcher.fetch(url)

    return asyncio.run(go())


@pytest.fixture
def connect_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every address the real backend is asked to connect to; only loopback goes through."""
    calls: list[str] = []
    original = httpcore.AnyIOBackend.connect_tcp

    async def guarded_connect(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"test stub: refusing to connect to {host}")
        return await original(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", guarded_connect)
    return calls


# -- loopback in every spelling: refused before a socket is opened ---------------------------------------------


LOOPBACK_SPELLINGS = [
    "127.0.0.1", "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "017700000001", "127.1", "127.0.0.1.",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]", "[64:ff9b::127.0.0.1]", "[::1]",
    "0.0.0.0", "[::]", "localhost",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_loopback_in_any_spelling_is_blocked_without_connecting(server_b, connect_log, host):
    r = fetch(settings(), f"http://{host}:{server_b.port}/ok")
    assert r.outcome == "blocked_address", r
    assert server_b.connections == 0
    assert connect_log == []


# -- private, link-local, CGNAT, unique-local, mapped forms: decided on the literal, nothing connected ---------


NON_PUBLIC = [
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.254",
    "[fd00::1]", "[fe80::1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "[64:ff9b::a00:1]",
    "0xa000001", "167772161", "0xa9.254.169.254", "[2002:a00:1::]",
]


@pytest.mark.parametrize("host", NON_PUBLIC)
def test_non_public_literals_are_blocked_without_connecting(connect_log, host):
    r = fetch(settings(), f"http://{host}/latest/meta-data/")
    assert r.outcome == "blocked_address", r
    assert connect_log == []


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "100.64.0.1", "fd00::1", "::ffff:127.0.0.1",
                                  "2130706433", "127.0.0.1"])
def test_guarded_backend_refuses_before_connecting(connect_log, host):
    backend = GuardedBackend(HostAllowList())
    with pytest.raises(BlockedAddress):
        asyncio.run(backend.connect_tcp(host, 80, timeout=1.0))
    assert connect_log == []


def test_names_are_checked_after_resolution_and_the_checked_address_is_connected(monkeypatch, server_b,
                                                                                   connect_log):
    # a name whose DNS answer mixes a private address with an allowed one: only the allowed one is used
    def fake_getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "news.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port))) for ip in ("10.9.8.7", "127.0.0.1")]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    allowed_by_address = settings(f"127.0.0.1:{server_b.port}")
    r = fetch(allowed_by_address, f"http://news.test:{server_b.port}/ok")
    assert r.ok, r
    assert set(connect_log) == {"127.0.0.1"}  # the address we checked, never the name, never 10.9.8.7
    assert server_b.requests[-1].headers["host"] == f"news.test:{server_b.port}"

    connect_log.clear()
    r = fetch(settings(), f"http://news.test:{server_b.port}/ok")
    assert r.outcome == "blocked_address" and "10.9.8.7 is private" in r.detail
    assert connect_log == []


# -- redirects: every hop is checked ----------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["127.0.0.1", "2130706433", "localhost", "[::ffff:127.0.0.1]"])
def test_redirect_to_a_forbidden_address_is_blocked_and_never_connected(server_a, server_b, spelling):
    target = f"http://{spelling}:{server_b.port}/ok"
    r = fetch(settings(server_a.host), server_a.url("/redirect/to?url=" + quote(target, safe="")))
    assert r.outcome == "blocked_address", r
    assert server_a.hits("/redirect/to") == 1
    assert server_b.connections == 0


def test_redirect_to_an_allowed_port_is_followed(server_a, server_b):
    r = fetch(settings(server_a.host, server_b.host), server_a.url("/redirect/to?url=" + quote(server_b.url("/ok"))))
    assert r.ok and r.final_url == server_b.url("/ok")


# -- the allow list ---------------------------------------------------------------------------------------------


def test_allowed_host_and_port(server_b):
    assert fetch(settings(server_b.host), server_b.url("/ok")).ok


def test_allowed_host_any_port(server_b):
    assert fetch(settings("127.0.0.1"), server_b.url("/ok")).ok


def test_allowed_port_does_not_allow_another_port(server_a, server_b):
    assert fetch(settings(server_a.host), server_b.url("/ok")).outcome == "blocked_address"
    assert server_b.connections == 0


def test_allowed_name_reaches_its_loopback_address(server_b):
    r = fetch(settings(f"localhost:{server_b.port}"), f"http://localhost:{server_b.port}/ok")
    assert r.ok, r


# -- proxies from the environment cannot route around the guard -----------------------------------------------


def test_environment_proxies_are_ignored(monkeypatch, server_a, server_b):
    proxy = server_a.url("")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    r = fetch(settings(), server_b.url("/ok"))
    assert r.outcome == "blocked_address"
    assert server_a.connections == 0 and server_b.connections == 0
