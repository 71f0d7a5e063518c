"""URL canonicalisation: one spelling per article, so variants collapse to one row."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["canonical_url", "article_id", "host_of", "TRACKING_PARAMS"]

TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
        "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "ocid", "cmpid", "cmp",
        "smid", "smtyp", "sr_share", "share", "ito", "ns_mchannel", "ns_source", "ns_campaign",
        "ns_linkname", "ns_fee", "s_cid", "src", "ref", "ref_src", "referrer", "spm", "cid",
        "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3", "at_custom4",
        "guccounter", "guce_referrer", "guce_referrer_sig", "soc_src", "soc_trk", "rss",
        "feature", "outputtype", "partner", "taid", "__twitter_impression",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "at_", "oly_", "vero_", "__s", "ga_")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MULTI_SLASH = re.compile(r"/{2,}")


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normalise_escapes(path: str) -> str:
    """Decode escapes of unreserved characters, upper-case the others, and escape what must be
    escaped; an escaped '%' or '/' keeps its meaning."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return quote(_ESCAPE.sub(fix, path), safe="/:@!$&'()*+,;=-._~%")


def _is_tracking(key: str) -> bool:
    k = key.lower()
    return k in TRACKING_PARAMS or k.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """Canonical form: lower-case scheme and host, no default port, no fragment, no tracking
    parameters, remaining parameters sorted, path percent-encoding normalised.

    Raises ValueError for anything that is not an absolute http(s) URL.
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError(f"URL has no host: {url[:200]!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"URL has an invalid port: {url[:200]!r}") from None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise ValueError(f"URL has an invalid host name: {url[:200]!r}") from None
    netloc = host.lower()
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = _MULTI_SLASH.sub("/", parts.path or "/")
    path = _normalise_escapes(path)
    query_items = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    query = urlencode(sorted(query_items), doseq=True)
    return urlunsplit((scheme, netloc, path, query, ""))


def article_id(canonical: str) -> str:
    """A stable key for an article: 16 hex digits of the SHA-256 of its canonical URL."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def host_of(url: str) -> str:
    """``host[:port]`` as used for politeness and robots.txt."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    scheme = parts.scheme.lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        return f"{host}:{port}"
    return host
