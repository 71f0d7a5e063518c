"""transforms.articles.build_articles: the language column (declared, else detected from the text)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from transforms.articles import EXTRACTED_SCHEMA, build_articles

GERMAN = ("Der Bürgermeister sagte, dass die Stadt nicht mit der Planung fertig ist und sich auch die Kosten "
          "für das Projekt auf die Bürger auswirken wird.")
ENGLISH = ("The mayor said that the city was not ready with the plan and that this would have effects on "
           "the cost of the project for the residents of the town.")


def _row(i: int, text: str, html_lang: str | None) -> dict[str, object]:
    row: dict[str, object] = {c: None for c in EXTRACTED_SCHEMA}
    row.update(article_id=str(i), url=f"https://example.test/{i}", text=text, html_lang=html_lang,
               authors=[], categories=[], tags=[], byline_authors=[],
               fetched_at=datetime(2024, 1, 1, tzinfo=UTC))
    return row


def test_language_declared_wins_and_detection_fills_the_rest() -> None:
    rows = [_row(0, GERMAN, None), _row(1, ENGLISH, "fr"), _row(2, ENGLISH, None), _row(3, "Zzz qqq.", None),
            _row(4, GERMAN, "de")]
    out = build_articles(pl.DataFrame(rows, schema=EXTRACTED_SCHEMA))
    assert out["article_id"].to_list() == ["0", "1", "2", "3", "4"]
    # declared languages are kept even where the text says otherwise; undeclared ones are detected
    assert out["language"].to_list() == ["de", "fr", "en", None, "de"]


def test_language_when_every_page_declares_one_or_none_does() -> None:
    declared = build_articles(pl.DataFrame([_row(0, GERMAN, "it"), _row(1, ENGLISH, "en")], schema=EXTRACTED_SCHEMA))
    assert declared["language"].to_list() == ["it", "en"]
    detected = build_articles(pl.DataFrame([_row(0, GERMAN, None), _row(1, ENGLISH, None)], schema=EXTRACTED_SCHEMA))
    assert detected["language"].to_list() == ["de", "en"]
    empty = build_articles(pl.DataFrame([], schema=EXTRACTED_SCHEMA))
    assert empty.height == 0 and "language" in empty.columns


def test_pages_parsed_ahead_give_what_trafilatura_would_parse(tmp_path):
    """``html_tree`` parses clean UTF-8 pages itself; pages that need trafilatura's repairs go to it as
    text. Either way the extraction is the same as trafilatura's from the text."""
    import trafilatura

    from flows.clean import decode_html, html_tree

    body_text = "".join(f"<p>Paragraph {i} of a page about the council budget and its critics.</p>" for i in range(30))
    clean = f"<!DOCTYPE html><html><head><title>T</title></head><body><article>{body_text}</article></body></html>"
    pages = {
        "clean": clean.encode(),
        "control characters": clean.replace("Paragraph 3", "Paragraph\x0b 3").encode(),
        "xhtml doctype": clean.replace("<!DOCTYPE html>", '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
                                       '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">').encode(),
        "latin-1": clean.replace("budget", "budg\u00e9t").encode("latin-1"),
        "U+FFFE": clean.replace("Paragraph 7", "Paragraph\ufffe 7").encode(),
        # more than 64 characters of U+F000-U+FFFF (lead byte 0xEF) before a U+FFFF
        "fullwidth, then U+FFFF": clean.replace("Paragraph 2", "\uff21" * 100 + " Paragraph 2")
                                  .replace("Paragraph 9", "Paragraph\uffff 9").encode(),
        "fullwidth alone": clean.replace("Paragraph 2", "\uff21\uff22" * 50 + " Paragraph 2").encode(),
    }
    taken = {}
    for name, body in pages.items():
        text, encoding = decode_html(body)
        parsed = html_tree(body, text, encoding)
        taken[name] = not isinstance(parsed, str)
        ours = trafilatura.extract(parsed, favor_precision=True)
        theirs = trafilatura.extract(text, favor_precision=True)
        assert ours == theirs and "council budg" in (ours or ""), name
    assert taken == {"clean": True, "control characters": False, "xhtml doctype": False, "latin-1": False,
                     "U+FFFE": False, "fullwidth, then U+FFFF": False, "fullwidth alone": True}


def test_license_search_is_off_only_inside_newsdesk_extraction():
    """newsdesk stores no license, so its extraction skips trafilatura's license search; trafilatura
    used directly, before and after, still finds one."""
    import trafilatura
    import trafilatura.metadata

    from flows.clean import _license_search_off, extract_page

    paragraphs = "".join(f"<p>Paragraph {i} says the council met and voted on the budget.</p>" for i in range(20))
    page = (f"<html><head><title>Budget vote</title></head><body><article>{paragraphs}</article>"
            '<footer><a rel="license" href="https://creativecommons.org/licenses/by-sa/4.0/">CC BY-SA</a></footer>'
            "</body></html>")
    original = trafilatura.metadata.extract_license
    assert trafilatura.bare_extraction(page, with_metadata=True).license == "CC BY-SA 4.0"
    with _license_search_off():
        assert trafilatura.bare_extraction(page, with_metadata=True).license is None
    row = extract_page({"url": "https://example.org/2024/01/02/budget", "body": page.encode()})
    assert "council met" in row["text"] and row["title"] == "Budget vote"
    assert trafilatura.metadata.extract_license is original
    assert trafilatura.bare_extraction(page, with_metadata=True).license == "CC BY-SA 4.0"
