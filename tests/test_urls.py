"""flows/urls.py: canonical URLs, article ids and politeness host keys."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from flows.urls import TRACKING_PARAMS, article_id, canonical_url, host_of

# -- scheme, host, port, fragment -------------------------------------------------------------------


def test_scheme_and_host_are_lower_cased_but_path_case_is_kept():
    assert canonical_url("HTTP://WWW.Example.COM/News/Story") == "http://www.example.com/News/Story"


def test_surrounding_whitespace_is_ignored():
    assert canonical_url("  https://example.com/a \n") == "https://example.com/a"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        # a port is only "default" for its own scheme
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
    ],
)
def test_default_ports_are_dropped_and_others_kept(url, expected):
    assert canonical_url(url) == expected


def test_fragment_is_dropped():
    assert canonical_url("https://example.com/a?id=5#comments") == "https://example.com/a?id=5"
    assert canonical_url("https://example.com/a#") == "https://example.com/a"


def test_trailing_dot_of_host_is_dropped():
    assert canonical_url("https://example.com./a") == "https://example.com/a"


def test_userinfo_is_not_kept():
    assert canonical_url("https://user:secret@example.com/a") == "https://example.com/a"


# -- path ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://example.com", "https://example.com?id=5", "https://example.com#top"])
def test_empty_path_becomes_slash(url):
    assert urlsplit(canonical_url(url)).path == "/"
    assert canonical_url(url).startswith("https://example.com/")


def test_duplicate_slashes_are_collapsed():
    assert canonical_url("https://example.com//news///2024//story") == "https://example.com/news/2024/story"


@pytest.mark.parametrize("path", ["/%7Euser/page", "/%7euser/page", "/~user/page"])
def test_unreserved_percent_escapes_are_decoded(path):
    assert canonical_url("https://example.com" + path) == "https://example.com/~user/page"


@pytest.mark.parametrize("path", ["/caf%c3%a9", "/caf%C3%A9", "/café"])
def test_non_ascii_path_is_percent_encoded_with_upper_case_hex(path):
    assert canonical_url("https://example.com" + path) == "https://example.com/caf%C3%A9"


def test_space_in_path_is_encoded():
    assert canonical_url("https://example.com/a b") == "https://example.com/a%20b"


def test_escaped_percent_sign_is_preserved():
    assert canonical_url("https://example.com/a%2541") == "https://example.com/a%2541"


def test_canonical_url_is_idempotent_for_escaped_percent():
    once = canonical_url("https://example.com/a%2541")
    assert canonical_url(once) == once


def test_encoded_slash_is_not_turned_into_a_separator():
    assert canonical_url("https://example.com/a%2Fb") == "https://example.com/a%2Fb"


# -- query ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "param",
    ["utm_source=rss", "utm_medium=email", "UTM_Campaign=x", "fbclid=abc", "gclid=123", "msclkid=9",
     "mc_cid=1", "_ga=2.1", "pk_campaign=z", "mtm_source=q", "hsa_acc=1"],
)
def test_tracking_params_are_dropped(param):
    assert canonical_url(f"https://example.com/story?{param}") == "https://example.com/story"


def test_tracking_param_set_contains_the_common_click_ids():
    assert {"fbclid", "gclid", "msclkid"} <= TRACKING_PARAMS


@pytest.mark.parametrize("query", ["id=5", "p=123", "page=2", "q=news"])
def test_real_params_are_kept(query):
    assert canonical_url(f"https://example.com/story?{query}") == f"https://example.com/story?{query}"


def test_real_params_are_kept_and_sorted_while_tracking_is_dropped():
    url = "https://example.com/s?utm_source=x&p=123&fbclid=zz&id=5&gclid=1"
    assert canonical_url(url) == "https://example.com/s?id=5&p=123"


def test_repeated_params_keep_all_values_in_sorted_order():
    assert canonical_url("https://example.com/s?b=2&a=9&a=1") == "https://example.com/s?a=1&a=9&b=2"


def test_only_tracking_params_leaves_no_question_mark():
    assert canonical_url("https://example.com/s?utm_source=a&utm_medium=b") == "https://example.com/s"


def test_query_value_encoding_is_normalised():
    assert canonical_url("https://example.com/s?q=a%20b") == canonical_url("https://example.com/s?q=a+b")
    assert canonical_url("https://example.com/s?q=%7E") == canonical_url("https://example.com/s?q=~")


# -- hosts -----------------------------------------------------------------------------------------------


def test_idn_host_is_punycoded():
    assert canonical_url("https://bücher.de/buch") == "https://xn--bcher-kva.de/buch"
    assert canonical_url("https://BÜCHER.de/buch") == "https://xn--bcher-kva.de/buch"


def test_idn_and_punycode_spellings_are_one_url():
    assert canonical_url("https://bücher.de/") == canonical_url("https://XN--BCHER-KVA.DE/")


def test_ipv6_literal_is_bracketed_and_lower_cased():
    assert canonical_url("http://[2001:DB8::1]:8080/x") == "http://[2001:db8::1]:8080/x"
    assert canonical_url("http://[::1]/") == "http://[::1]/"
    assert canonical_url("https://[::1]:443/a") == "https://[::1]/a"


def test_ipv4_literal():
    assert canonical_url("http://127.0.0.1:8000/a") == "http://127.0.0.1:8000/a"


# -- invalid input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "//example.com/no-scheme",
        "example.com/no-scheme",
        "/relative/path",
        "",
        "http:///no-host",
        "http://:80/no-host",
        "https://example.com:99999/bad-port",
        "https://example.com:abc/bad-port",
        "http://[::1/broken-ipv6",
    ],
)
def test_invalid_urls_raise_value_error(url):
    with pytest.raises(ValueError):
        canonical_url(url)


def test_error_message_is_truncated_for_huge_input():
    with pytest.raises(ValueError) as info:
        canonical_url("ftp://" + "a" * 10_000)
    assert len(str(info.value)) < 300


# -- variants collapse -------------------------------------------------------------------------------------

VARIANTS = [
    "https://www.example.com/news/2024/story?id=5",
    "HTTPS://WWW.EXAMPLE.COM/news/2024/story?id=5",
    "https://www.example.com:443/news/2024/story?id=5",
    "https://www.example.com/news/2024/story?id=5#comments",
    "https://www.example.com/news//2024/story?id=5",
    "https://www.example.com/news/2024/story?utm_source=rss&id=5&utm_medium=feed",
    "https://www.example.com/news/2024/story?fbclid=IwAR123&id=5",
    "https://www.example.com/%6Eews/2024/story?id=5",
    "  https://www.example.com./news/2024/story?id=5&gclid=x#top ",
]


def test_variants_of_one_article_give_one_canonical_url():
    canon = {canonical_url(v) for v in VARIANTS}
    assert canon == {"https://www.example.com/news/2024/story?id=5"}


def test_variants_of_one_article_give_one_article_id():
    assert len({article_id(canonical_url(v)) for v in VARIANTS}) == 1


def test_different_articles_stay_different():
    a = canonical_url("https://example.com/story?id=5")
    b = canonical_url("https://example.com/story?id=6")
    c = canonical_url("http://example.com/story?id=5")
    assert len({a, b, c}) == 3
    assert len({article_id(a), article_id(b), article_id(c)}) == 3


@pytest.mark.parametrize("url", VARIANTS + ["http://[2001:DB8::1]:8080/x?b=1&a=2", "https://bücher.de/café"])
def test_canonical_url_is_idempotent(url):
    once = canonical_url(url)
    assert canonical_url(once) == once


# -- article_id ----------------------------------------------------------------------------------------------


def test_article_id_is_16_lower_hex_chars():
    aid = article_id("https://example.com/a")
    assert re.fullmatch(r"[0-9a-f]{16}", aid)


def test_article_id_is_stable():
    # the SHA-256 prefix of the canonical URL: pinned so that a change of hashing is noticed
    assert article_id("https://example.com/") == "0f115db062b7c0dd"
    assert article_id("https://example.com/") == article_id("https://example.com/")


def test_article_id_differs_for_different_urls():
    assert article_id("https://example.com/a") != article_id("https://example.com/b")


# -- host_of --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.COM/a", "example.com"),
        ("https://example.com:443/a", "example.com"),
        ("http://example.com:80/a", "example.com"),
        ("http://example.com:8080/a", "example.com:8080"),
        ("https://example.com:80/a", "example.com:80"),
        ("http://127.0.0.1:8000/", "127.0.0.1:8000"),
    ],
)
def test_host_of(url, expected):
    assert host_of(url) == expected
