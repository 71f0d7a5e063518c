"""Address policy: refuse to connect to loopback, private and other non-public addresses unless allowed.

The decision is made on the address actually connected to: the guarded network backend resolves
the host, checks every address, then connects to a checked address itself, so a DNS answer cannot
change between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore

__all__ = ["BlockedAddress", "address_blocked_reason", "parse_host_literal", "GuardedBackend", "HostAllowList",
           "literal_blocked_reason"]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are an IPv4 address


class BlockedAddress(Exception):
    """Raised instead of connecting to a forbidden address."""


def parse_host_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Interpret a URL host the way C resolvers do: dotted quads, but also ``2130706433``,
    ``0x7f.1`` and ``0177.0.0.1``. Returns None for names that are not address literals."""
    text = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if ":" in text:
        return None
    try:
        # inet_aton accepts the legacy forms (decimal, hex, octal, short dotted) as the resolver does
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def address_blocked_reason(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not be connected to by default, or None if it is public."""
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            inner = address_blocked_reason(mapped)
            return f"IPv4-mapped {inner}" if inner else None
        if addr.teredo:
            return "teredo"
        if addr in _NAT64:
            inner = address_blocked_reason(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
            return f"NAT64 {inner}" if inner else None
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return "carrier-grade NAT"
    if isinstance(addr, ipaddress.IPv6Address) and addr in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    if addr.is_multicast:
        return "multicast"
    if addr.is_private:
        return "private"
    if addr.is_reserved or not addr.is_global:
        return "reserved"
    return None


class HostAllowList:
    """Hosts (``host`` or ``host:port``) that may be connected to even if their address is not public."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.hosts: set[str] = set()
        self.host_ports: set[tuple[str, int]] = set()
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            if entry.startswith("["):  # [::1]:8080
                host, _, rest = entry[1:].partition("]")
                port = rest.lstrip(":")
            elif entry.count(":") == 1:
                host, port = entry.split(":")
            else:
                host, port = entry, ""
            if port:
                self.host_ports.add((host, int(port)))
            else:
                self.hosts.add(host)

    def allows(self, host: str, port: int) -> bool:
        h = host.strip("[]").lower()
        return h in self.hosts or (h, port) in self.host_ports


def literal_blocked_reason(host: str, port: int, allow: HostAllowList) -> str | None:
    """For a URL host that is an address literal (in any spelling a resolver accepts), why connecting
    to it is refused; None for names (decided after resolution) and for allowed or public addresses.
    Lets a fetch be refused before anything is opened, even when the URL parser rejects the spelling."""
    literal = parse_host_literal(host)
    if literal is None:
        return None
    reason = address_blocked_reason(literal)
    if reason is None or allow.allows(host, port) or allow.allows(str(literal), port):
        return None
    return f"{host}: {literal} is {reason}"


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that resolves, checks, then connects to the checked address."""

    def __init__(self, allow: HostAllowList) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow = allow

    async def _resolve(self, host: str, port: int) -> list[str]:
        literal = parse_host_literal(host)
        if literal is not None:
            return [str(literal)]
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        allowed_host = self._allow.allows(host, port)
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        reasons = []
        last_exc: Exception | None = None
        for address in addresses:
            ip = ipaddress.ip_address(address)
            reason = address_blocked_reason(ip)
            if reason and not (allowed_host or self._allow.allows(address, port)):
                reasons.append(f"{address} is {reason}")
                continue
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                last_exc = exc
        if last_exc is not None:
            raise last_exc
        raise BlockedAddress(f"{host}: " + "; ".join(reasons))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not used")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
