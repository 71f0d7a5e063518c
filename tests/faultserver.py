"""A fault-injecting HTTP server on 127.0.0.1 for the reliability tests.

Unlike ``flows.siteserver.LoopbackServer`` it writes raw bytes to the socket, so a route can stall,
trickle, drop the connection mid-body, lie in Content-Length, stream forever or serve compression
bombs. Every connection and request is counted, so a test can assert how often it was asked (or that
it was never connected to at all). Every response closes its connection.

Routes are looked up by path (without the query string); ``add(path, fn)`` adds or replaces one.
A route is ``fn(server, request, conn)`` and writes its own response with ``conn.send(...)``/``conn.raw(...)``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import socket
import socketserver
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

__all__ = ["FaultServer", "Request", "Conn", "ARTICLE", "bomb", "self_signed_context"]

MB = 1 << 20

ARTICLE = (
    b"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>A test article</title></head><body>"
    b"<article><h1>A test article</h1>"
    + b"<p>The council met on Tuesday to discuss the budget for the coming year in some detail.</p>" * 20
    + b"</article></body></html>"
)


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class Conn:
    """What a route writes to: the client socket, plus helpers that ignore a client that went away."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.closed_by_peer = False

    def raw(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed_by_peer = True
            return False

    def head(self, status: int, headers: dict[str, str] | None = None, reason: str = "X") -> bool:
        lines = [f"HTTP/1.1 {status} {reason}"]
        hdrs = {"Connection": "close", **(headers or {})}
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        return self.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bool:
        hdrs = {"Content-Type": "text/html; charset=utf-8", **(headers or {})}
        hdrs.setdefault("Content-Length", str(len(body)))
        return self.head(status, hdrs) and self.raw(body)

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; False when it is."""
        return not self.stop.wait(seconds)


Route = Callable[["FaultServer", Request, Conn], None]


def bomb(size: int, encodings: tuple[str, ...] = ("gzip",)) -> bytes:
    """``size`` zero bytes compressed with each encoding in turn (applied left to right)."""
    data: bytes | None = None
    for enc in encodings:
        if data is None:  # stream the first layer so the plain body is never held in memory
            comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS)
            block = bytes(MB)
            parts = [comp.compress(block) for _ in range(size // MB)]
            parts.append(comp.flush())
            data = b"".join(parts)
        else:
            data = gzip.compress(data, 9) if enc == "gzip" else zlib.compress(data, 9)
    assert data is not None
    return data


def self_signed_context() -> ssl.SSLContext:
    """A server-side TLS context with a fresh self-signed certificate for 127.0.0.1 (untrusted by clients)."""
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = f"{tmp}/cert.pem", f"{tmp}/key.pem"
        with open(cert_path, "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


# -- default routes ---------------------------------------------------------------------------------------


def _ok(server: FaultServer, req: Request, conn: Conn) -> None:
    conn.send(200, ARTICLE)


def _robots(server: FaultServer, req: Request, conn: Conn) -> None:
    robots = server.robots
    if robots is None:
        conn.send(404, b"not found", {"Content-Type": "text/plain"})
    elif isinstance(robots, int):
        conn.send(robots, b"robots error", {"Content-Type": "text/plain"})
    elif robots == b"STALL":
        _stall(server, req, conn)
    else:
        conn.send(200, robots, {"Content-Type": "text/plain"})


def _stall(server: FaultServer, req: Request, conn: Conn) -> None:
    conn.sleep(30)  # accepted, request read, nothing ever sent


def _trickle(server: FaultServer, req: Request, conn: Conn) -> None:
    interval = float(req.query.get("every", "0.3"))
    conn.head(200, {"Content-Type": "text/html", "Content-Length": "100000"})
    while conn.raw(b"<") and conn.sleep(interval):
        pass


def _status(server: FaultServer, req: Request, conn: Conn) -> None:
    code = int(req.path.rsplit("/", 1)[1])
    headers = {}
    if "retry_after" in req.query:
        headers["Retry-After"] = req.query["retry_after"]
    if "retry_in" in req.query:  # Retry-After as an HTTP date this many seconds ahead
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float(req.query["retry_in"]))
        headers["Retry-After"] = format_datetime(when, usegmt=True)
    conn.send(code, f"<html><body>status {code}</body></html>".encode(), headers)


def _flaky(server: FaultServer, req: Request, conn: Conn) -> None:
    fails = int(req.query.get("fails", "2"))
    n = server.bump(req.target)
    if n <= fails:
        conn.send(503, b"try again")
    else:
        conn.send(200, ARTICLE)


def _redirect(server: FaultServer, req: Request, conn: Conn) -> None:
    rest = req.path[len("/redirect/"):]
    if rest == "loop-a":
        location = "/redirect/loop-b"
    elif rest == "loop-b":
        location = "/redirect/loop-a"
    elif rest.startswith("chain/"):
        n = int(rest.split("/")[1])
        location = f"/redirect/chain/{n - 1}" if n > 0 else "/ok"
    else:  # /redirect/to?url=...
        location = req.query["url"]
    conn.send(302, b"", {"Location": location})


def _big_declared(server: FaultServer, req: Request, conn: Conn) -> None:
    size = 200 * MB
    conn.head(200, {"Content-Type": "text/html", "Content-Length": str(size)})
    block = b"<p>" + b"x" * (64 * 1024 - 3)
    sent = 0
    while sent < size and conn.raw(block):
        sent += len(block)


def _big_undeclared(server: FaultServer, req: Request, conn: Conn) -> None:
    """Chunked, endless (until the client goes away or 1 GB)."""
    conn.head(200, {"Content-Type": "text/html", "Transfer-Encoding": "chunked"})
    block = b"<p>" + b"x" * (64 * 1024 - 3)
    frame = b"%x\r\n" % len(block) + block + b"\r\n"
    for _ in range(16 * 1024):
        if not conn.raw(frame):
            return


def _bomb(server: FaultServer, req: Request, conn: Conn) -> None:
    kind = req.path.rsplit("/", 1)[1]
    body, encoding = server.bombs[kind]
    headers = {"Content-Type": "text/html", "Content-Length": str(len(body))}
    if encoding:
        headers["Content-Encoding"] = encoding
    conn.send(200, body, headers)


def _drop(server: FaultServer, req: Request, conn: Conn) -> None:
    """Declares the whole article, sends a third of it, then closes. ``?times=N`` drops only N times."""
    times = int(req.query.get("times", "1000"))
    if server.bump(req.target) <= times:
        conn.head(200, {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(ARTICLE))})
        conn.raw(ARTICLE[: len(ARTICLE) // 3])
        return
    conn.send(200, ARTICLE)


def _drop_chunked(server: FaultServer, req: Request, conn: Conn) -> None:
    conn.head(200, {"Content-Type": "text/html", "Transfer-Encoding": "chunked"})
    part = ARTICLE[:500]
    conn.raw(b"%x\r\n" % len(part) + part + b"\r\n")  # and no terminating chunk


def _page(server: FaultServer, req: Request, conn: Conn) -> None:
    """A prepared page: server.pages[name] = (body, headers)."""
    name = req.path[len("/page/"):]
    body, headers = server.pages[name]
    conn.send(200, body, headers)


DEFAULT_ROUTES: dict[str, Route] = {
    "/ok": _ok,
    "/robots.txt": _robots,
    "/stall": _stall,
    "/trickle": _trickle,
    "/status/": _status,
    "/flaky": _flaky,
    "/redirect/": _redirect,
    "/big/declared": _big_declared,
    "/big/chunked": _big_undeclared,
    "/bomb/": _bomb,
    "/drop": _drop,
    "/drop-chunked": _drop_chunked,
    "/page/": _page,
}


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        owner = self.server.owner
        sock: socket.socket = self.request
        sock.settimeout(10)
        if owner.tls is not None:
            try:
                sock = owner.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                owner.count("tls_handshake_failed")
                return
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                piece = sock.recv(4096)
                if not piece:
                    return
                data += piece
                if data[:1] == b"\x16":  # a TLS ClientHello sent to plain HTTP: answer as web servers do
                    owner.count("tls_to_plain")
                    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                    return
        except (OSError, TimeoutError):
            return
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            return
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        req = Request(method, target, parts.path, query, headers)
        owner.record(req)
        conn = Conn(sock, owner.stop)
        route = owner.route_for(parts.path)
        try:
            if route is None:
                conn.send(404, b"<html><body>no such route</body></html>")
            else:
                route(owner, req, conn)
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultServer

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        self.owner.count("connections")
        super().process_request(request, client_address)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-response is normal here


class FaultServer:
    """``with FaultServer() as srv: srv.url('/stall')``. Counts connections and requests per path."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.routes: dict[str, Route] = dict(DEFAULT_ROUTES)
        self.robots: bytes | int | None = None  # None: 404; an int: that status; b"STALL": stall
        self.pages: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.bombs: dict[str, tuple[bytes, str]] = {}
        self.requests: list[Request] = []
        self.counts: Counter[str] = Counter()
        self._bumps: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self._tcp = _TCPServer(("127.0.0.1", 0), _Handler)
        self._tcp.owner = self
        self._thread: threading.Thread | None = None

    # -- bookkeeping
    def record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)
            self.counts["requests"] += 1

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def bump(self, key: str) -> int:
        with self._lock:
            self._bumps[key] += 1
            return self._bumps[key]

    def hits(self, path: str) -> int:
        """Requests whose path (without query) is ``path``."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [r.at for r in self.requests if r.path == path]

    @property
    def connections(self) -> int:
        return self.counts["connections"]

    # -- routes
    def add(self, path: str, route: Route) -> None:
        self.routes[path] = route

    def page(self, name: str, body: bytes, headers: dict[str, str] | None = None) -> str:
        self.pages[name] = (body, headers if headers is not None else {"Content-Type": "text/html"})
        return self.url(f"/page/{name}")

    def route_for(self, path: str) -> Route | None:
        if path in self.routes:
            return self.routes[path]
        best = None
        for prefix, route in self.routes.items():
            if prefix.endswith("/") and path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, route)
        return best[1] if best else None

    # -- addresses
    @property
    def port(self) -> int:
        return int(self._tcp.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    # -- lifecycle
    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self._tcp.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._tcp.shutdown()
        self._tcp.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
