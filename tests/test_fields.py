"""transforms.fields: quotes with speakers, entities, amounts, bylines; and the gold-label floors."""

from __future__ import annotations

import polars as pl
import pytest

from flows.siteserver import seed_article_path, shared_dir
from transforms.fields import FIELDS_VERSION, article_fields, field_frames

FLOORS = {"quotes": 0.90, "quote_speaker": 0.80, "person": 0.85, "organization": 0.75, "place": 0.75, "amounts": 0.80}
needs_gold = pytest.mark.skipif(
    not (shared_dir() / "gold" / "quotes.json").is_file(), reason=f"gold labels not found under {shared_dir() / 'gold'}"
)
needs_seed = pytest.mark.skipif(not seed_article_path().is_file(), reason=f"seed article not found at {seed_article_path()}")


def quotes(text: str) -> list[dict]:
    return article_fields(text)["quotes"]


def amounts(text: str) -> list[dict]:
    return article_fields(text)["amounts"]


def amount(text: str) -> dict:
    found = amounts(text)
    assert len(found) == 1, found
    return found[0]


# --- quotes -----------------------------------------------------------------------------------------

def test_attribution_after_the_quote_with_name_and_pronoun() -> None:
    text = (
        "Senator Maria Okafor, a former judge, spoke on Monday.\n\n"
        "“We will not back down,” Okafor said. “Not now, not ever.”\n\n"
        "“The vote is next week and we are ready for it,” she said."
    )
    qs = quotes(text)
    assert [q["quote"] for q in qs] == ["We will not back down,", "Not now, not ever.", "The vote is next week and we are ready for it,"]
    assert {q["speaker"] for q in qs} == {"Maria Okafor"}
    assert qs[0]["verb"] == "said" and qs[0]["speaker_type"] == "person"
    for q in qs:
        assert text[q["start_char"]: q["end_char"]] == q["quote"]


def test_attribution_before_inverted_and_in_the_middle() -> None:
    text = (
        "Harold Brennan, chief executive of Northwind Logistics, disagreed.\n"
        "He added: “The numbers do not support that claim at all.”\n"
        "“It is a fair question,” said Priya Raman, an analyst at the firm, “but the answer is no.”"
    )
    qs = quotes(text)
    assert [(q["speaker"], q["verb"]) for q in qs] == [
        ("Harold Brennan", "added"), ("Priya Raman", "said"), ("Priya Raman", "said")
    ]
    assert qs[1]["speaker_role"] == "analyst at the firm"


def test_pronoun_resolves_by_gender_to_the_sentence_subject() -> None:
    text = (
        "“We expected a tougher fight in the north,” said Thomas Whitfield.\n"
        "Laura Chen, who runs the campaign, pushed back on that view.\n"
        "“We have been knocking on doors in every county for a year,” she said."
    )
    qs = quotes(text)
    assert qs[-1]["speaker"] == "Laura Chen"


def test_quote_across_a_paragraph_break_and_follow_on_paragraph() -> None:
    text = (
        "“The river rose faster than anyone had predicted and the town was not ready for\n"
        "what came next in the night,” said Daniel Moreau, the mayor.\n"
        "“We will rebuild every house on that street, one at a time, with help from everybody.”"
    )
    qs = quotes(text)
    assert len(qs) == 3
    assert all(q["speaker"] == "Daniel Moreau" for q in qs)
    assert qs[0]["paragraph"] == 0 and qs[1]["paragraph"] == 1 and qs[2]["paragraph"] == 2


def test_scare_quotes_and_titles_are_not_quotes() -> None:
    text = (
        "The so-called “reckless” plan is part of the new “Clean Streets Initiative” program.\n"
        "She appeared on “Morning Talk Live” to promote her song “Paint It Blue.”"
    )
    assert quotes(text) == []


def test_statement_and_document_speakers() -> None:
    text = (
        "The ministry released a statement on Friday. “No decision has been made on the border crossing yet,” "
        "the statement said.\n"
        "An anonymous letter from residents reached the council. The letter ended with a plea: "
        "“Please listen to the people who live here every single day.”"
    )
    qs = quotes(text)
    assert [q["speaker_type"] for q in qs] == ["document", "document"]
    assert qs[1]["speaker"] == "anonymous letter"


# --- amounts ----------------------------------------------------------------------------------------

def test_counts_with_qualifier_and_object() -> None:
    a = amount("Police said more than 400 protesters were detained.")
    assert (a["value"], a["qualifier"], a["object"], a["unit"]) == (400.0, "more than", "protesters", None)
    assert a["text"] == "more than 400 protesters"


def test_number_words_and_vague_amounts() -> None:
    a = amount("The company hired twelve engineers.")
    assert (a["value"], a["object"]) == (12.0, "engineers")
    v = amount("Thousands of fans gathered outside.")
    assert v["approximate"] is True and v["value"] == 1000.0


def test_years_dates_times_ages_and_ordinals_are_not_amounts() -> None:
    text = (
        "In 2019, the 43-year-old mayor, who was 27 when first elected, met on March 3 at 10:30 a.m. "
        "for the second time at Gate 7."
    )
    assert amounts(text) == []


def test_ranges_currencies_and_percent() -> None:
    a = amount("The deal is worth $4.2 million.")
    assert (a["value"], a["unit"]) == (4200000.0, "currency:USD")
    b = amount("Britain paid £1.1 billion last year.")
    assert (b["value"], b["unit"]) == (1.1e9, "currency:GBP")
    c = amount("Turnout rose to about 20 percent.")
    assert (c["value"], c["unit"], c["qualifier"]) == (20.0, "percent", "about")
    d = amount("They expect between 30 and 40 percent growth.")
    assert (d["value"], d["value_max"], d["unit"]) == (30.0, 40.0, "percent")
    e = amount("The trip took 15 hours and 15 minutes.")
    assert (e["value"], e["unit"]) == (15.25, "hours")
    f = amount("The town is some 225 miles away.")
    assert (f["value"], f["unit"], f["qualifier"]) == (225.0, "miles", "about")


# --- entities and bylines ---------------------------------------------------------------------------

def test_entities_aliases_acronyms_and_places() -> None:
    text = (
        "Secretary of State Mike Pompeo met officials of the Popular Mobilization Forces (PMF) in Baghdad.\n"
        "Pompeo said the PMF had influence across Iraq."
    )
    ents = {e["name"]: e for e in article_fields(text)["entities"]}
    assert ents["Mike Pompeo"]["kind"] == "person" and "Pompeo" in ents["Mike Pompeo"]["aliases"]
    assert ents["Mike Pompeo"]["mentions"] == 2
    assert ents["Popular Mobilization Forces"]["kind"] == "organization"
    assert ents["Popular Mobilization Forces"]["aliases"] == ["PMF"]
    assert (ents["Baghdad"]["kind"], ents["Baghdad"]["country_code"]) == ("place", "IQ")
    assert (ents["Iraq"]["kind"], ents["Iraq"]["country_code"]) == ("place", "IQ")


def test_dateline_byline_and_text_date() -> None:
    b = article_fields("date 2020-01-08 By Douglas Burton\n\nBAGHDAD — The vote was held on Sunday.")["byline"]
    assert b == {"dateline_place": "Baghdad", "byline_authors": ["Douglas Burton"], "text_date": "2020-01-08"}
    b2 = article_fields("LONDON (Reuters) - Prices rose in March.")["byline"]
    assert b2["dateline_place"] == "London" and b2["byline_authors"] == [] and b2["text_date"] is None


def test_field_frames_schema_and_empty_input() -> None:
    empty = field_frames([])
    full = field_frames([("a1", article_fields("“We are ready for this,” said Anna Berg, in Oslo, about 20 percent."))])
    for key in ("quotes", "entities", "amounts", "datelines"):
        assert empty[key].height == 0
        assert empty[key].schema == full[key].schema
    assert full["quotes"]["transform_version"].to_list() == [FIELDS_VERSION]
    assert full["entities"].schema["aliases"] == pl.List(pl.String)
    assert full["quotes"].columns[0] == "article_id" and full["quotes"].columns[-1] == "transform_version"


# --- synthetic articles (written for these tests; no name in them is in the gold set) ---------------
# Each exercises the general rules together: organisation keywords and contexts, titles before names,
# places from the gazetteer, quotes attributed by name, pronoun and role, and amounts.

def _by_name(fields: dict) -> dict[str, dict]:
    return {e["name"]: e for e in fields["entities"]}


def test_synthetic_business_story() -> None:
    f = article_fields(
        "Shares of Halvorsen Shipping Group fell 12 percent on Tuesday after the company said it would cut about "
        "1,500 jobs.\n\n"
        "Chief Executive Ingrid Solberg told the Financial Chronicle that the decision had been painful. “We waited "
        "too long to act, and now the bill has arrived,” she said.\n\n"
        "Analysts at Brightwater Capital expect a loss of $2.3 billion this year. Solberg, who worked at Tidewater "
        "Freight before joining the shipper in 2015, spoke to reporters in Oslo."
    )
    ents = _by_name(f)
    orgs = {n for n, e in ents.items() if e["kind"] == "organization"}
    # keyword suffixes (Group, Capital), a newspaper spoken to, an employer named after "worked at"
    assert orgs == {"Halvorsen Shipping Group", "Financial Chronicle", "Brightwater Capital", "Tidewater Freight"}
    assert ents["Ingrid Solberg"]["kind"] == "person" and ents["Ingrid Solberg"]["aliases"] == ["Solberg"]
    assert (ents["Oslo"]["kind"], ents["Oslo"]["country_code"]) == ("place", "NO")
    [q] = f["quotes"]
    assert (q["speaker"], q["speaker_type"], q["verb"]) == ("Ingrid Solberg", "person", "said")  # "she said"
    assert q["speaker_role"] == "Chief Executive"
    got = {(a["text"], a["value"], a["unit"], a["qualifier"]) for a in f["amounts"]}
    assert got == {("12 percent", 12.0, "percent", None), ("about 1,500 jobs", 1500.0, None, "about"),
                   ("$2.3 billion", 2.3e9, "currency:USD", None)}


def test_synthetic_government_story() -> None:
    f = article_fields(
        "Governor Rosa Delgado of New Mexico signed the water bill on Friday in Santa Fe. The measure, drafted with "
        "the Southwest Water Authority (SWA), sets aside $45 million for new pipelines.\n\n"
        "“This is about every family that turns on a tap and gets nothing,” Delgado said. The SWA said nearly 30 "
        "towns would benefit.\n\n"
        "A Desert Rivers Alliance spokesman called the bill a good start."
    )
    ents = _by_name(f)
    assert ents["Southwest Water Authority"]["kind"] == "organization"
    assert ents["Southwest Water Authority"]["aliases"] == ["SWA"]  # acronym definition folds the short form
    assert ents["Desert Rivers Alliance"]["kind"] == "organization"
    assert ents["Rosa Delgado"]["kind"] == "person" and "Governor" not in ents["Rosa Delgado"]["name"]
    assert ents["New Mexico"]["kind"] == "place" and ents["Santa Fe"]["kind"] == "place"
    assert sum(1 for e in f["entities"] if e["kind"] == "organization") == 2
    [q] = f["quotes"]
    assert (q["speaker"], q["speaker_role"]) == ("Rosa Delgado", "Governor")
    by_text = {a["text"]: a for a in f["amounts"]}
    assert by_text["$45 million"]["value"] == 45e6
    assert (by_text["nearly 30 towns"]["value"], by_text["nearly 30 towns"]["qualifier"]) == (30.0, "nearly")


def test_synthetic_sports_story() -> None:
    f = article_fields(
        "The Denver Bears beat the Portland Pilots on Saturday to stay top of the table. Striker Austin Reyes scored "
        "twice.\n\n"
        "Coach Marcus Feld praised his defenders after the game. “They never gave the other side a clean look all "
        "night,” he said, adding that more than 20,000 fans had travelled for the match.\n\n"
        "Feld, a former player for the Bears, signed a new contract worth $3 million in March."
    )
    ents = _by_name(f)
    # city + plural nickname is a team; a person whose first name is also a city is still a person
    assert ents["Denver Bears"]["kind"] == "organization" and ents["Portland Pilots"]["kind"] == "organization"
    assert ents["Austin Reyes"]["kind"] == "person"
    assert ents["Marcus Feld"]["kind"] == "person" and "Feld" in ents["Marcus Feld"]["aliases"]
    [q] = f["quotes"]
    assert q["speaker"] == "Marcus Feld"  # "he said", the subject of the sentence before
    by_text = {a["text"]: a for a in f["amounts"]}
    assert (by_text["more than 20,000 fans"]["value"], by_text["more than 20,000 fans"]["object"]) == (20000.0, "fans")
    assert by_text["$3 million"]["unit"] == "currency:USD"


def test_synthetic_music_story_and_award_list() -> None:
    f = article_fields(
        "The folk duo Paper Lanterns announced their first tour in a post on Instagram on Monday. The tour starts in "
        "Glasgow and visits 14 cities.\n\n"
        "Tickets priced at £35 sold out within two hours, the band told the Evening Courier. “We honestly thought "
        "nobody would come,” singer Aoife Brennan said.\n\n"
        "Brennan later thanked fans in a video posted on Instagram."
    )
    ents = _by_name(f)
    orgs = {n for n, e in ents.items() if e["kind"] == "organization"}
    assert orgs == {"Paper Lanterns", "Instagram", "Evening Courier"}  # "duo X", "posted on X", "told the X"
    assert ents["Glasgow"]["kind"] == "place" and ents["Aoife Brennan"]["kind"] == "person"
    [q] = f["quotes"]
    assert (q["speaker"], q["verb"]) == ("Aoife Brennan", "said")  # a lower-case role before the name
    by_text = {a["text"]: a for a in f["amounts"]}
    assert (by_text["£35"]["value"], by_text["£35"]["unit"]) == (35.0, "currency:GBP")
    assert by_text["14 cities"]["value"] == 14.0

    listing = article_fields(
        "The winners of this year's Harbour Music Prizes were named on Thursday night in Cardiff.\n\n"
        "Band of the Year\n\nVelvet Orchards\n\nNorthbound Static – WINNER\n\nThe Lamplighters\n\n"
        "Solo Artist of the Year\n\nMara Quinlan – WINNER\n\nDevon Ashby\n\n"
        "Album of the Year\n\nMara Quinlan, Salt and Glass\n\nVelvet Orchards, Low Tide Letters"
    )
    kinds = {e["name"]: e["kind"] for e in listing["entities"]}
    # headings, the winner marker, the prize and the album titles are not entities
    assert kinds == {"Cardiff": "place", "Velvet Orchards": "organization", "Northbound Static": "organization",
                     "The Lamplighters": "organization", "Mara Quinlan": "person", "Devon Ashby": "person"}


# --- the seed article and the gold floors -----------------------------------------------------------

@needs_seed
def test_seed_article_quotes_speakers_and_amounts() -> None:
    text = seed_article_path().read_text()
    for variant in (text, text.replace("\n\n", "\n")):  # the pipeline's text has one newline per paragraph
        f = article_fields(variant)
        speakers = [(q["speaker"], q["speaker_type"]) for q in f["quotes"] if len(q["quote"].split()) > 3]
        names = {s for s, _ in speakers}
        assert {"Trump", "Ernie Audino", "Frank Gaffney", "Mike Pompeo"} <= names
        assert any(t == "organization" and s and "Kataib Hezbollah" in s for s, t in speakers)
        assert any(t == "document" and s and "banner" in s for s, t in speakers)
        assert any(t == "document" and s and "letter" in s for s, t in speakers)
        assert all(s is not None for s, _ in speakers)
        by_text = {a["text"]: a for a in f["amounts"]}
        assert by_text["600 American combat fatalities"]["value"] == 600.0
        assert by_text["600 American combat fatalities"]["object"] == "American combat fatalities"
        m = by_text["more than 400 protestors"]
        assert (m["value"], m["qualifier"], m["object"]) == (400.0, "more than", "protestors")
        p = by_text["about 20 percent"]
        assert (p["value"], p["qualifier"], p["unit"]) == (20.0, "about", "percent")
        assert f["byline"] == {"dateline_place": None, "byline_authors": ["Douglas Burton"], "text_date": "2020-01-08"}


_GOLD_CACHE: dict[str, dict] = {}


def _overall() -> dict:
    if "overall" not in _GOLD_CACHE:
        from bench.eval_fields import evaluate

        _GOLD_CACHE["overall"] = evaluate()["overall"]
    return _GOLD_CACHE["overall"]


def _metric(overall: dict, name: str) -> float:
    if name in ("person", "organization", "place"):
        return float(overall["entities"][name]["f1"])
    return float(overall[name]["f1"])


@needs_gold
@pytest.mark.parametrize(
    "name",
    [
        "quotes",
        "quote_speaker",
        "person",
        "organization",
        "place",
        "amounts",
    ],
)
def test_gold_floor(name: str) -> None:
    got = _metric(_overall(), name)
    assert got >= FLOORS[name], f"{name} F1 {got:.3f} is below the floor {FLOORS[name]}"
