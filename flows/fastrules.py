"""trafilatura's boilerplate rules, evaluated without a Python call per element.

trafilatura prunes boilerplate with XPath expressions whose predicates call EXSLT ``re:test``.
lxml implements that function in Python, so libxml2 calls back into Python for nearly every
element of the page, two or three times: about 2 µs a call, and 10-12 ms of a 31 ms extraction
in newsdesk's precision mode, although the regular expressions themselves take little of it.

This module reads each such expression and compiles it into a plain Python predicate over the
element's attributes, memoised within a call on (tag, attributes): a page repeats the same few
class and id values many times over. Nothing is hand-copied from trafilatura: the tag tests, attribute tests
and patterns are parsed out of the expressions themselves, so a trafilatura release that changes
its vocabulary is followed. An expression with anything the parser does not know (a function,
an axis, a position, a flag) keeps trafilatura's own XPath. tests/test_fastrules.py checks that
every compiled rule selects exactly the elements the XPath selects, in the same order, on the
trees trafilatura builds for the corpus pages.

``native_rules()`` swaps the compiled rules into trafilatura's rule lists for the duration of
newsdesk's own extraction calls (as ``flows.clean`` does for the license search), so trafilatura
used directly is left as it was.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["compile_rule", "native_rules", "UnsupportedRule"]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'[^']*'|"[^"]*")
    | (?P<func>not|contains|starts-with|translate|re:test)\(
    | (?P<self>self::[A-Za-z][\w-]*)
    | (?P<desc>\.//(?:\*|[A-Za-z][\w-]*))
    | (?P<abs>//(?:\*|[A-Za-z][\w-]*))
    | (?P<num>\d+)
    | (?P<attr>@[A-Za-z][\w:-]*)
    | (?P<word>and|or)(?![\w-])
    | (?P<punct>[|()\[\],=])
    )""",
    re.VERBOSE,
)

Attrs = dict[str, str]
Pred = Callable[[Any, Attrs], bool]
Req = frozenset[str] | None


class UnsupportedRule(ValueError):
    """The expression uses something this module does not translate."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise UnsupportedRule(f"cannot read {text[pos:pos + 30]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    """Recursive descent over the small part of XPath 1.0 that trafilatura's predicates use."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.toks = tokens
        self.i = 0
        self.structural = False  # a test looks below the element: its result cannot be memoised

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        k, v = self.peek()
        if k != kind or (value is not None and v != value):
            raise UnsupportedRule(f"expected {value or kind}, found {v or k}")
        self.i += 1
        return v

    # Each parse method returns (predicate, required): ``required`` is a set of attribute names one
    # of which every element the predicate accepts must carry, or None when there is no such set
    # (a tag test, a not(), a pattern that matches the empty string).

    def _operands(self, word: str, operand: Callable[[], tuple[Pred, Req]]) -> list[tuple[Pred, Req]]:
        parts = [operand()]
        while self.peek() == ("word", word):
            self.i += 1
            parts.append(operand())
        return parts

    def or_expr(self) -> tuple[Pred, Req]:
        parts = self._operands("or", self.and_expr)
        if len(parts) == 1:
            return parts[0]
        preds = [p for p, _ in parts]
        reqs = [r for _, r in parts]
        # one of the alternatives' attributes, when every alternative needs one
        req = None if any(r is None for r in reqs) else frozenset().union(*reqs)  # type: ignore[arg-type]
        return (lambda el, a: any(p(el, a) for p in preds)), req

    def and_expr(self) -> tuple[Pred, Req]:
        parts = self._operands("and", self.unary)
        if len(parts) == 1:
            return parts[0]
        preds = [p for p, _ in parts]
        known = [r for _, r in parts if r is not None]  # any one operand's requirement holds
        return (lambda el, a: all(p(el, a) for p in preds)), (min(known, key=len) if known else None)

    def unary(self) -> tuple[Pred, Req]:
        kind, value = self.peek()
        if kind == "func" and value == "not":
            self.i += 1
            inner, _ = self.or_expr()
            self.take("punct", ")")
            return (lambda el, a: not inner(el, a)), None
        if (kind, value) == ("punct", "("):
            self.i += 1
            inner, req = self.or_expr()
            self.take("punct", ")")
            return inner, req
        return self.atom()

    def attrset(self) -> list[str]:
        names = [self.take("attr")[1:]]
        while self.peek() == ("punct", "|"):
            self.i += 1
            names.append(self.take("attr")[1:])
        if any(":" in n for n in names):
            raise UnsupportedRule("namespaced attribute")
        return names

    def string(self) -> str:
        return self.take("str")[1:-1]

    def strarg(self) -> tuple[Callable[[Any, Attrs], str], frozenset[str]]:
        """A string argument: the first of the attributes in document order, or its translate();
        with the attributes it reads (when none is there, the string is empty)."""
        if self.peek() == ("func", "translate"):
            self.i += 1
            get, names = self.strarg()
            self.take("punct", ",")
            src = self.string()
            self.take("punct", ",")
            dst = self.string()
            self.take("punct", ")")
            table = {ord(c): (dst[k] if k < len(dst) else None) for k, c in reversed(list(enumerate(src)))}
            return (lambda el, a: get(el, a).translate(table)), names
        attrs = self.attrset()
        wanted = frozenset(attrs)
        if len(attrs) == 1:
            name = attrs[0]
            return (lambda el, a: a.get(name, "")), wanted

        def first(el: Any, a: Attrs) -> str:
            # a node-set's string value is its first node's; attributes come in source order
            for key, val in a.items():
                if key in wanted:
                    return val
            return ""

        return first, wanted

    def atom(self) -> tuple[Pred, Req]:
        kind, value = self.peek()
        if kind == "self":
            self.i += 1
            tag = value[len("self::"):]
            return (lambda el, a: el.tag == tag), None
        if kind == "desc" and value != ".//*":
            self.i += 1
            self.structural = True
            below = value
            return (lambda el, a: el.find(below) is not None), None
        if kind == "attr":
            names = self.attrset()
            if self.peek() == ("punct", "="):
                self.i += 1
                want = self.string()
                return (lambda el, a: any(a.get(n) == want for n in names)), frozenset(names)
            return (lambda el, a: any(n in a for n in names)), frozenset(names)
        if kind == "func" and value in ("contains", "starts-with"):
            self.i += 1
            get, reads = self.strarg()
            self.take("punct", ",")
            needle = self.string()
            self.take("punct", ")")
            req = reads if needle else None
            if value == "contains":
                return (lambda el, a: needle in get(el, a)), req
            return (lambda el, a: get(el, a).startswith(needle)), req
        if kind == "func" and value == "re:test":
            self.i += 1
            get, reads = self.strarg()
            self.take("punct", ",")
            text = self.string()
            flags = 0
            if self.peek() == ("punct", ","):  # EXSLT flags: "i" ignores case, "g" means nothing to a test
                self.i += 1
                given = self.string()
                if set(given) - {"i", "g"}:
                    raise UnsupportedRule(f"re:test flags {given!r}")
                flags = re.IGNORECASE if "i" in given else 0
            self.take("punct", ")")
            pattern = re.compile(text, flags)
            search = pattern.search
            return (lambda el, a: search(get(el, a)) is not None), (None if search("") else reads)
        raise UnsupportedRule(f"unsupported test {value or kind}")


class CompiledRule:
    """Called like an lxml XPath on an element: the matching elements, in document order.

    ``absolute`` walks the element's whole document, root included (``//``); otherwise its
    descendants (``.//``). ``first_per_parent`` keeps only the first match among each parent's
    children (a trailing ``[1]``); ``first_only`` keeps the first match of all (``(...)[1]``)."""

    def __init__(self, source: str, tags: tuple[str, ...] | None, preds: list[Pred], memo: bool,
                 required: frozenset[str] | None = None, *, absolute: bool = False,
                 first_per_parent: bool = False, first_only: bool = False) -> None:
        self.path = source  # lxml's XPath objects expose their text as .path too
        self._preds = preds
        self._memoise = memo
        self._absolute = absolute
        self._first_per_parent = first_per_parent
        self._first_only = first_only
        self._xpath: Any = None  # lxml's own XPath for the same text, built when first needed
        self._prefilter: Any = None
        from lxml.etree import Element, XPath

        self._walk_tags: tuple[Any, ...] = tags if tags is not None else (Element,)
        if required and tags is None:
            # libxml2 itself narrows a walk over every element to those carrying one of the
            # attributes each match must have (no Python call per element: no functions in it).
            # With tags, lxml's own tag filter is faster than such an XPath (measured).
            scope = "//*" if absolute else ".//*"
            self._prefilter = XPath(scope + "[" + " or ".join(f"@{n}" for n in sorted(required)) + "]")

    def _walk(self, tree: Any) -> Iterator[Any]:
        if self._prefilter is not None:
            return iter(self._prefilter(tree))
        if self._absolute:
            return tree.getroottree().getroot().iter(*self._walk_tags)
        return tree.iterdescendants(*self._walk_tags)

    def _matches(self, tree: Any) -> Iterator[Any]:
        preds = self._preds
        if not self._memoise:
            for el in self._walk(tree):
                attrs = dict(el.items())
                if all(p(el, attrs) for p in preds):
                    yield el
            return
        # per call: a page repeats its class and id values many times over, while keeping the
        # memo across pages saved nothing measurable and would hold memory in every worker
        memo: dict[tuple[Any, ...], bool] = {}
        for el in self._walk(tree):
            items = el.items()
            key = (el.tag, *items)
            hit = memo.get(key)
            if hit is None:
                attrs = dict(items)
                hit = memo[key] = all(p(el, attrs) for p in preds)
            if hit:
                yield el

    def __call__(self, tree: Any) -> list[Any]:
        if not hasattr(tree, "iterdescendants"):  # a whole ElementTree, say: lxml's XPath handles it
            if self._xpath is None:
                from lxml.etree import XPath

                self._xpath = XPath(self.path, namespaces={"re": "http://exslt.org/regular-expressions"})
            return self._xpath(tree)
        found = self._matches(tree)
        if self._first_per_parent:
            # in document order, a parent's first matching child comes before its later ones
            parents: set[Any] = set()
            kept = []
            for el in found:
                parent = el.getparent()
                if parent not in parents:
                    parents.add(parent)
                    kept.append(el)
            found = iter(kept)
        if self._first_only:
            first = next(found, None)
            return [] if first is None else [first]
        return list(found)


def _only_tags(tokens: list[tuple[str, str]]) -> tuple[str, ...] | None:
    """The tags of a predicate that is nothing but ``self::a or self::b ...``, else None."""
    tags = []
    for k, (kind, value) in enumerate(tokens):
        if k % 2 == 0 and kind == "self":
            tags.append(value[len("self::"):])
        elif k % 2 == 1 and (kind, value) == ("word", "or"):
            continue
        else:
            return None
    return tuple(tags) if tags and len(tokens) % 2 == 1 else None


def compile_rule(source: str) -> CompiledRule:
    """``.//*[...][...]``, ``//tag[...]``, a trailing ``[1]``, or ``( ... )[1]`` around one of them,
    with the tests the parser knows, as a CompiledRule. Raises UnsupportedRule for anything else."""
    toks = _tokens(source)
    first_only = False
    if toks[:1] == [("punct", "(")] and toks[-4:] == [("punct", ")"), ("punct", "["), ("num", "1"), ("punct", "]")]:
        first_only, toks = True, toks[1:-4]
    if not toks or toks[0][0] not in ("desc", "abs"):
        raise UnsupportedRule("not a descendant path")
    absolute = toks[0][0] == "abs"
    head = toks[0][1].lstrip("./")
    rest = toks[1:]
    # split the predicates [..][..] at bracket depth zero
    groups: list[list[tuple[str, str]]] = []
    depth = 0
    for tok in rest:
        if tok == ("punct", "[") and depth == 0:
            groups.append([])
            depth = 1
            continue
        if not groups:
            raise UnsupportedRule("steps after the first")
        if tok == ("punct", "["):
            raise UnsupportedRule("nested predicate")
        if tok == ("punct", "]"):
            depth = 0
            continue
        if depth == 0:
            raise UnsupportedRule("steps after the predicates")
        groups[-1].append(tok)
    if depth != 0 or any(not g for g in groups):
        raise UnsupportedRule("unbalanced predicate")
    first_per_parent = False
    if groups and groups[-1] == [("num", "1")]:
        first_per_parent, groups = True, groups[:-1]
    if any(kind == "num" for g in groups for kind, _ in g):
        raise UnsupportedRule("a position other than a last [1]")
    tags: tuple[str, ...] | None = None if head == "*" else (head,)
    if tags is None and groups and (only := _only_tags(groups[0])) is not None:
        tags, groups = only, groups[1:]
    preds: list[Pred] = []
    required: list[frozenset[str]] = []
    structural = False
    for group in groups:
        parser = _Parser(group)
        pred, req = parser.or_expr()
        if parser.i != len(group):
            raise UnsupportedRule(f"unread {parser.peek()[1]!r}")
        preds.append(pred)
        if req is not None:
            required.append(req)
        structural = structural or parser.structural
    return CompiledRule(source, tags, preds, memo=not structural,
                        required=min(required, key=len) if required else None, absolute=absolute,
                        first_per_parent=first_per_parent, first_only=first_only)


def _rule_lists() -> list[list[Any]]:
    """trafilatura's lists of XPath rules that call back into Python (EXSLT regular expressions)."""
    try:
        from lxml.etree import XPath
        from trafilatura import xpaths
    except ImportError:
        return []
    found = []
    for value in vars(xpaths).values():
        if (isinstance(value, list) and value and all(isinstance(x, XPath) for x in value)
                and any("re:test" in x.path for x in value)):
            found.append(value)
    return found


def _compiled(rules: list[Any]) -> list[Any]:
    """The list with every translatable callback rule compiled; the others as they were."""
    out = []
    for rule in rules:
        if "re:test" not in rule.path:
            out.append(rule)
            continue
        try:
            out.append(compile_rule(rule.path))
        except UnsupportedRule:
            out.append(rule)
    return out


@functools.cache
def _swaps() -> list[tuple[list[Any], list[Any], list[Any]]]:
    """(trafilatura's list, its original rules, their compiled forms), found and compiled once per
    process, before any swap."""
    return [(rules, rules[:], _compiled(rules)) for rules in _rule_lists()]


_SWAP_LOCK = threading.Lock()
_ACTIVE = 0  # native_rules() contexts open in this process (threads may overlap them)


@contextlib.contextmanager
def native_rules() -> Iterator[None]:
    """trafilatura's callback rules replaced by their compiled forms, in place, until exit.

    The first context to open swaps them in and the last to close swaps trafilatura's back, so
    overlapping contexts in threads neither nest swaps nor restore early."""
    global _ACTIVE
    with _SWAP_LOCK:
        if _ACTIVE == 0:
            for rules, _, compiled in _swaps():
                rules[:] = compiled
        _ACTIVE += 1
    try:
        yield
    finally:
        with _SWAP_LOCK:
            _ACTIVE -= 1
            if _ACTIVE == 0:
                for rules, original, _ in _swaps():
                    rules[:] = original
