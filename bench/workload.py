"""Benchmark workload: the shared corpus pages replicated under distinct URLs, served fast over loopback.

``Workload(n, hosts)`` names ``n`` article URLs: article ``i`` is corpus page ``i % P`` served again
under ``/r<i // P>/...`` on host ``127.0.0.<1 + i % hosts>``. ``FastServer`` serves them from a
separate process with an asyncio protocol and pre-encoded responses (identity and gzip), keep-alive,
so that serving costs little next to extraction. Besides the pages it answers ``/robots.txt``,
``/lists/h<k>.txt`` (the URLs of host k) and any extra routes given to it (feeds, lists).
"""

from __future__ import annotations

import asyncio
import gzip
import multiprocessing
import os
import re
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

from bench.corpus import CorpusPage, load_pages, read_page

__all__ = ["Workload", "FastServer", "corpus_pages", "corpus_bodies", "rss_feed"]

CORPORA = ("aeb", "fundus")


def corpus_pages() -> list[CorpusPage]:
    pages: list[CorpusPage] = []
    for name in CORPORA:
        pages.extend(load_pages(name))
    return pages


def corpus_bodies() -> list[tuple[str, bytes]]:
    """(served path, decoded HTML) of every corpus page, in a stable order."""
    return [(p.path, read_page(p.file)) for p in corpus_pages()]


@dataclass
class Workload:
    articles: int
    hosts: int = 1
    port: int = 0

    def __post_init__(self) -> None:
        self.pages = corpus_pages()

    def host(self, k: int) -> str:
        return f"127.0.0.{1 + k}"

    def base(self, k: int) -> str:
        return f"http://{self.host(k)}:{self.port}"

    def allow_hosts(self) -> list[str]:
        return [f"{self.host(k)}:{self.port}" for k in range(self.hosts)]

    def path(self, i: int) -> str:
        page = self.pages[i % len(self.pages)]
        return f"/r{i // len(self.pages)}{page.path}"

    def page_index(self, i: int) -> int:
        return i % len(self.pages)

    def url(self, i: int) -> str:
        return self.base(i % self.hosts) + self.path(i)

    def urls(self) -> list[str]:
        return [self.url(i) for i in range(self.articles)]

    def host_urls(self, k: int) -> list[str]:
        return [self.url(i) for i in range(k, self.articles, self.hosts)]

    def list_routes(self) -> dict[str, tuple[str, bytes]]:
        return {f"/lists/h{k}.txt": ("text/plain; charset=utf-8", "\n".join(self.host_urls(k)).encode())
                for k in range(self.hosts)}

    def sources_csv(self, kind: str = "urls", route: str = "/lists/h{k}.txt") -> str:
        rows = ["name,kind,url,schedule,enabled,concurrency,delay"]
        for k in range(self.hosts):
            rows.append(f"bench{k},{kind},{self.base(k)}{route.format(k=k)},,true,,")
        return "\n".join(rows) + "\n"


def rss_feed(urls: list[str], base: str) -> bytes:
    now = format_datetime(datetime(2024, 1, 1, tzinfo=UTC), usegmt=True)
    items = "".join(f"<item><title>item {i}</title><link>{escape(u)}</link><guid>{escape(u)}</guid></item>"
                    for i, u in enumerate(urls))
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>bench</title>'
            f"<link>{base}/</link><description>bench</description><lastBuildDate>{now}</lastBuildDate>"
            f"{items}</channel></rss>").encode()


# -- the server ------------------------------------------------------------------------------------------
_REPLICA = re.compile(r"^/r\d+(/.*)$")


def _response(status: str, ctype: str, body: bytes, gz: bool) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
            "Server: newsdesk-bench"]
    if gz:
        head.append("Content-Encoding: gzip")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Routes:
    def __init__(self, pages: list[tuple[str, bytes]], extra: dict[str, tuple[str, bytes]]) -> None:
        self.plain: dict[str, bytes] = {}
        self.gzip: dict[str, bytes] = {}
        entries = {path: ("text/html; charset=utf-8", body) for path, body in pages}
        entries.update(extra)
        entries["/robots.txt"] = ("text/plain", b"User-agent: *\nAllow: /\n")
        for path, (ctype, body) in entries.items():
            self.plain[path] = _response("200 OK", ctype, body, False)
            self.gzip[path] = _response("200 OK", ctype, gzip.compress(body, 6, mtime=0), True) if len(body) > 1024 \
                else self.plain[path]
        self.missing = _response("404 Not Found", "text/plain", b"not found", False)

    def get(self, path: str, gz: bool) -> bytes:
        table = self.gzip if gz else self.plain
        hit = table.get(path)
        if hit is None:
            m = _REPLICA.match(path)
            if m:
                hit = table.get(m.group(1))
        return hit if hit is not None else self.missing


class _Http(asyncio.Protocol):
    def __init__(self, routes: _Routes) -> None:
        self.routes = routes
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            lower = head.lower()
            gz = b"accept-encoding:" in lower and b"gzip" in lower.split(b"accept-encoding:", 1)[1].split(b"\r\n", 1)[0]
            assert self.transport is not None
            self.transport.write(self.routes.get(path, gz))
            if b"connection: close" in lower:
                self.transport.close()
                return


def _serve(hosts: list[str], port: int, extra: dict[str, tuple[str, bytes]], conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    routes = _Routes(corpus_bodies(), extra)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = []
        chosen = port
        for host in hosts:
            server = await loop.create_server(lambda: _Http(routes), host, chosen, backlog=1024, reuse_address=True)
            chosen = server.sockets[0].getsockname()[1]
            servers.append(server)
        conn.send(chosen)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        for s in servers:
            s.close()

    asyncio.run(main())


class FastServer:
    """Serves the corpus pages (any ``/r<k>`` replica) and ``extra`` routes on hosts 127.0.0.1..N, one
    port, from a child process. Use as a context manager; ``port`` is set once it listens."""

    def __init__(self, hosts: int = 1, extra: dict[str, tuple[str, bytes]] | None = None, port: int = 0) -> None:
        self.hosts = [f"127.0.0.{1 + k}" for k in range(hosts)]
        self.extra = extra or {}
        self.port = port
        self._proc: multiprocessing.process.BaseProcess | None = None

    def __enter__(self) -> FastServer:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(self.hosts, self.port, self.extra, child), daemon=True)
        self._proc.start()
        if not parent.poll(60):
            raise RuntimeError("benchmark server did not start")
        self.port = parent.recv()
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.is_alive():
            os.kill(self._proc.pid, signal.SIGTERM)  # type: ignore[arg-type]
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = None
