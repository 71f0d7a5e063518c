"""flows.fastrules: trafilatura's callback XPath rules compiled into Python predicates.

The compiled rules must select exactly what lxml's XPath selects, in the same order: checked on
small hand-made trees for each construct, and on the trees trafilatura builds from corpus pages,
at the moment each rule is applied."""

from __future__ import annotations

import contextlib
import gzip
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml.etree import XPath
from lxml.html import fromstring

from flows import fastrules
from flows.fastrules import UnsupportedRule, compile_rule, native_rules
from tests.conftest import needs_corpus, shared_dir

RE_NS = {"re": "http://exslt.org/regular-expressions"}

PAGE = """<html><body>
<div class="cookie-note" id="banner"><p>one</p></div>
<div id="banner" class="cookie-note"><p>two</p></div>
<section style="display: none" role="Navigation"><span class="ad-slot">x</span></section>
<div class="Story-Body"><p class="lead">three</p><p class="lead">four</p>
  <div><p class="lead">five</p></div></div>
<div data-x=""><span class="">six</span><span>seven</span></div>
<ul><li class="reply-1">a</li><li id="reply-2" class="z">b</li><li class="z" id="reply-3">c</li></ul>
<div><h1>title</h1><div class="scroll-box"><h1>inner</h1></div></div>
<!-- a comment --><div class="scroll-box">tail</div>
</body></html>"""

EXPRESSIONS = [
    # first of @id|@class in source order
    ".//*[re:test(@id|@class, '^cookie')]",
    ".//*[starts-with(@id|@class, 'reply-')]",
    ".//*[self::div or self::section][contains(translate(@role, 'N', 'n'), 'nav')]",
    ".//*[contains(@style, 'display: none') or @aria-hidden='true']",
    ".//*[re:test(@class, 'story-body', 'i')]",
    ".//*[re:test(@class, 'story-body')]",
    # a pattern that matches the empty string selects elements with no class at all
    ".//span[re:test(@class, 'x?')]",
    ".//*[re:test(@class, '^$|^ad')]",
    ".//*[@data-x]",
    ".//*[@class='']",
    ".//p[re:test(@class, 'lead')][1]",
    "(.//p[re:test(@class, 'lead')])[1]",
    ".//*[self::div or self::section][re:test(@class, 'scroll')][not(.//h1)]",
    ".//*[self::div][re:test(@class, 'scroll') and (.//h1 or @id)]",
    "//*[self::div or self::li][re:test(@class, '^z$')]",
    "//div[re:test(@class, 'nothing-like-this')]",
    ".//*[not(self::ul or self::li) and re:test(@class, 'reply|ad-')]",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_compiled_rule_selects_what_the_xpath_selects(expression: str) -> None:
    tree = fromstring(PAGE)
    body = tree.find("body")
    expected = XPath(expression, namespaces=RE_NS)(body)
    got = compile_rule(expression)(body)
    assert got == expected
    assert compile_rule(expression)(tree) == XPath(expression, namespaces=RE_NS)(tree)


def test_constructs_above_select_something() -> None:
    """The checks above would pass on empty results alone: most expressions select something."""
    tree = fromstring(PAGE)
    sizes = [len(compile_rule(e)(tree)) for e in EXPRESSIONS]
    assert sum(1 for n in sizes if n) >= len(EXPRESSIONS) - 2
    assert [e.text_content() for e in compile_rule(".//p[re:test(@class, 'lead')][1]")(tree)] == ["three", "five"]
    assert [e.get("id") for e in compile_rule(".//*[starts-with(@id|@class, 'reply-')]")(tree)] == [None, "reply-2"]


@pytest.mark.parametrize("expression", [
    ".//*[string-length(@class) > 3]",
    ".//*[rel='me']",
    ".//*[re:test(@class, 'a', 'x')]",
    ".//*[@class][2]",
    ".//div/p[@class]",
    "//div[@class]|//author",
    "string(.//title)",
])
def test_unknown_constructs_are_refused(expression: str) -> None:
    with pytest.raises(UnsupportedRule):
        compile_rule(expression)


def test_native_rules_apply_only_inside_the_context() -> None:
    from trafilatura import xpaths

    before = list(xpaths.OVERALL_DISCARD_XPATH)
    assert all(isinstance(x, XPath) for x in before)
    with native_rules():
        inside = list(xpaths.OVERALL_DISCARD_XPATH)
        assert any(isinstance(x, fastrules.CompiledRule) for x in inside)
    assert before == xpaths.OVERALL_DISCARD_XPATH
    with contextlib.suppress(RuntimeError), native_rules():
        raise RuntimeError("boom")
    assert before == xpaths.OVERALL_DISCARD_XPATH


def _corpus_items(step: int) -> list[dict[str, Any]]:
    files = sorted((shared_dir() / "corpus").glob("*/html/*.gz"))[::step]
    return [{"url": f"https://news.example.org/{f.stem}", "body": gzip.decompress(Path(f).read_bytes()),
             "content_type": "text/html", "keep_body": False} for f in files]


class _Checked:
    """Stands in for one rule: applies trafilatura's XPath and the compiled rule to the same tree."""

    def __init__(self, xpath: Any, compiled: Any, tally: Counter[str], wrong: list[str]) -> None:
        self.path = xpath.path
        self.xpath, self.compiled, self.tally, self.wrong = xpath, compiled, tally, wrong

    def __call__(self, tree: Any) -> list[Any]:
        expected = self.xpath(tree)
        self.tally[self.path] += 1
        if self.compiled(tree) != expected:
            self.wrong.append(self.path.strip()[:60])
        return expected  # type: ignore[no-any-return]


@contextlib.contextmanager
def _checking(tally: Counter[str], wrong: list[str]) -> Iterator[None]:
    lists = fastrules._rule_lists()
    saved = [rules[:] for rules in lists]
    for rules in lists:
        for k, rule in enumerate(rules):
            with contextlib.suppress(UnsupportedRule):
                if "re:test" in rule.path:
                    rules[k] = _Checked(rule, compile_rule(rule.path), tally, wrong)
    try:
        yield
    finally:
        for rules, original in zip(lists, saved, strict=True):
            rules[:] = original


@needs_corpus
def test_compiled_rules_match_trafilatura_on_corpus_trees() -> None:
    """Every compiled rule, every time trafilatura applies it while extracting corpus pages, selects
    the same elements as its XPath. The pruning rules that cost most are among those checked."""
    import trafilatura
    from trafilatura import xpaths

    tally: Counter[str] = Counter()
    wrong: list[str] = []
    items = _corpus_items(step=5)
    assert len(items) > 100
    with _checking(tally, wrong):
        for item in items:
            trafilatura.bare_extraction(item["body"].decode("utf-8", "replace"), with_metadata=True,
                                        favor_precision=True, include_tables=True)
            trafilatura.bare_extraction(item["body"].decode("utf-8", "replace"), favor_recall=True)
    assert wrong == []
    for name in ("OVERALL_DISCARD_XPATH", "REMOVE_COMMENTS_XPATH", "BODY_XPATH"):
        compiled = [x.path for x in getattr(xpaths, name) if x.path in tally]
        assert compiled, f"no rule of {name} was compiled and applied"
    assert sum(tally.values()) > 5 * len(items)


@needs_corpus
def test_extraction_is_the_same_with_and_without_compiled_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.clean as clean

    items = _corpus_items(step=7)
    fast = [clean.extract_page(item) for item in items]
    monkeypatch.setattr(clean, "native_rules", contextlib.nullcontext)
    slow = [clean.extract_page(item) for item in items]
    assert sum(1 for row in fast if len(row.get("text") or "") > 500) > len(items) // 2
    assert [row["url"] for row, other in zip(fast, slow, strict=True) if row != other] == []


def test_tree_parser_keeps_the_options_and_makes_only_html_elements() -> None:
    from trafilatura.utils import HTML_PARSER

    from flows.clean import _tree_parser

    page = "<html><body><form><input name=a><select><option>o</option></select></form><!-- c --><p>x</p></body></html>"
    ours = fromstring(page, parser=_tree_parser(HTML_PARSER))
    theirs = fromstring(page, parser=HTML_PARSER)
    assert [e.tag for e in ours.iter()] == [e.tag for e in theirs.iter()]  # the comment is removed by both
    assert {type(e).__name__ for e in theirs.iter()} > {"HtmlElement"}  # lxml.html's form classes
    assert {type(e).__name__ for e in ours.iter()} == {"HtmlElement"}
    assert ours.text_content() == theirs.text_content() == "ox"


@needs_corpus
def test_extraction_is_the_same_with_trafilaturas_own_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.clean as clean

    items = _corpus_items(step=9)
    ours = [clean.extract_page(item) for item in items]
    monkeypatch.setattr(clean, "_tree_parser", lambda model: model)
    theirs = [clean.extract_page(item) for item in items]
    assert sum(1 for row in ours if len(row.get("text") or "") > 500) > len(items) // 2
    assert [row["url"] for row, other in zip(ours, theirs, strict=True) if row != other] == []


def test_overlapping_contexts_restore_trafilaturas_rules_once_the_last_closes() -> None:
    from trafilatura import xpaths

    before = list(xpaths.OVERALL_DISCARD_XPATH)
    outer = native_rules()
    inner = native_rules()
    outer.__enter__()
    inner.__enter__()
    compiled = list(xpaths.OVERALL_DISCARD_XPATH)
    assert any(isinstance(x, fastrules.CompiledRule) for x in compiled)
    outer.__exit__(None, None, None)  # a thread that entered first may leave first
    assert list(xpaths.OVERALL_DISCARD_XPATH) == compiled
    inner.__exit__(None, None, None)
    assert before == xpaths.OVERALL_DISCARD_XPATH


def test_a_whole_document_is_left_to_lxml() -> None:
    tree = fromstring(PAGE).getroottree()
    expression = "//*[re:test(@class, 'lead')]"
    assert [e.text for e in compile_rule(expression)(tree)] == ["three", "four", "five"]
    assert compile_rule(expression)(tree) == XPath(expression, namespaces=RE_NS)(tree)
