"""A small threaded HTTP server on 127.0.0.1 for the bundled sample site (``newsdesk demo``),
the tests and the benchmarks.

The sample site under ``seeds/site`` is served as files; ``{{BASE}}`` in text files (and inside
``.gz`` files) is replaced by the server's base URL so feeds and sitemaps carry real links. The
project's seed article is rendered from ``../shared/seed/seed-article.txt`` into the site's
article template when that file exists.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flows.config import REPO_ROOT, SEEDS_DIR

__all__ = ["Response", "LoopbackServer", "SiteHandler", "shared_dir", "seed_article_path", "SEED_PATH",
           "SEED_TITLE"]

SITE_DIR = SEEDS_DIR / "site"
SEED_PATH = "/world/2020/01/08/iran-strikes-iraq-crisis.html"
SEED_TITLE = "Iran’s missile strikes leave Iraq caught between Tehran and Washington"
_TEXT_SUFFIXES = {".html", ".xml", ".txt", ".csv", ".json"}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".gz": "application/gzip",
    ".pdf": "application/pdf",
}


def shared_dir() -> Path:
    """The shared data folder: ``NEWSDESK_SHARED`` or ``../shared`` next to the repository."""
    return Path(os.environ.get("NEWSDESK_SHARED", REPO_ROOT.parent / "shared"))


def seed_article_path() -> Path:
    return shared_dir() / "seed" / "seed-article.txt"


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[str, dict[str, str]], Response]


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "newsdesk-test/1"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        handler: Handler = self.server.handler  # type: ignore[attr-defined]
        request_headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            response = handler(self.path, request_headers)
        except Exception as exc:  # a bug in a test route: answer 500 and keep serving
            response = Response(500, f"handler error: {exc}".encode())
        body = response.body
        headers = dict(response.headers)
        if (
            "gzip" in request_headers.get("accept-encoding", "")
            and len(body) > 1024
            and "content-encoding" not in {k.lower() for k in headers}
            and headers.get("Content-Type", "").startswith(("text/", "application/xml"))
        ):
            body = gzip.compress(body, 5)
            headers["Content-Encoding"] = "gzip"
        self.send_response(response.status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # silence per-request logs
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-response (a fetcher refusing a page over its size cap, a run
        ending) is normal for a web server: not worth a traceback on the demo's stderr. Anything else
        still gets one."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class LoopbackServer:
    """Serves ``handler(path, headers) -> Response`` on 127.0.0.1 in a background thread."""

    def __init__(self, handler: Handler | None = None, port: int = 0) -> None:
        self._httpd = _QuietServer(("127.0.0.1", port), _RequestHandler)
        self._httpd.daemon_threads = True
        self._httpd.handler = handler or (lambda path, headers: Response(404))  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_handler(self, handler: Handler) -> None:
        self._httpd.handler = handler  # type: ignore[attr-defined]

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def render_seed_article(base: str, template: str, seed_file: Path) -> bytes | None:
    """The seed article as a page of the sample site, or None when the seed file is absent."""
    try:
        text = seed_file.read_text(encoding="utf-8")
    except OSError:
        return None
    first, _, rest = text.strip().partition("\n")
    words = first.split()
    date = words[1] if len(words) > 1 and words[0].lower() == "date" else "2020-01-08"
    author = first.split(" By ", 1)[1].strip() if " By " in first else ""
    paragraphs = [p.strip() for p in rest.split("\n\n") if p.strip()]
    body = "\n".join(f"<p>{html.escape(' '.join(p.split()), quote=False)}</p>" for p in paragraphs)
    page = (
        template.replace("{{TITLE}}", html.escape(SEED_TITLE, quote=True))
        .replace("{{AUTHOR}}", html.escape(author))
        .replace("{{DATE}}", date)
        .replace("{{BODY}}", body)
        .replace("{{BASE}}", base)
    )
    return page.encode("utf-8")


class SiteHandler:
    """Serves a folder as a site, with ``{{BASE}}`` substitution and the seed article page."""

    def __init__(self, root: Path = SITE_DIR, seed_file: Path | None = None) -> None:
        self.root = root.resolve()
        self.seed_file = seed_file if seed_file is not None else seed_article_path()
        self.base = ""
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def bind(self, base: str) -> SiteHandler:
        self.base = base
        return self

    def __call__(self, raw_path: str, headers_in: dict[str, str]) -> Response:
        with self._lock:
            self.requests.append(raw_path)
        path = unquote(urlsplit(raw_path).path)
        if path == SEED_PATH:
            template = self.root / "_seed_template.html"
            page = render_seed_article(self.base, template.read_text("utf-8"), self.seed_file) if template.exists() else None
            if page is None:
                return Response(404, b"not found", {"Content-Type": "text/plain"})
            return Response(200, page, {"Content-Type": _TYPES[".html"]})
        if path.endswith("/"):
            path += "index.html"
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root) or not target.is_file() or target.name.startswith("_"):
            return Response(404, b"<html><body><h1>Not found</h1></body></html>", {"Content-Type": _TYPES[".html"]})
        data = target.read_bytes()
        suffix = target.suffix.lower()
        if suffix in _TEXT_SUFFIXES:
            data = data.replace(b"{{BASE}}", self.base.encode())
        elif suffix == ".gz":
            data = gzip.compress(gzip.decompress(data).replace(b"{{BASE}}", self.base.encode()), 6, mtime=0)
        headers = {"Content-Type": _TYPES.get(suffix, "application/octet-stream")}
        if suffix in (".xml", ".gz", ".txt"):  # feeds and lists answer conditional requests
            etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
            headers["ETag"] = etag
            if headers_in.get("if-none-match") == etag:
                return Response(304, b"", {"ETag": etag})
        return Response(200, data, headers)


def serve_site(root: Path = SITE_DIR) -> tuple[LoopbackServer, SiteHandler]:
    """Start the sample site on a free loopback port."""
    handler = SiteHandler(root)
    server = LoopbackServer(handler).start()
    handler.bind(server.base)
    return server, handler
