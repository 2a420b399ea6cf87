"""Rewriting simple-index pages: fixtures of real page shapes, PEP 691 JSON, the
"200 Not found" page of old Crane/RDepot index servers, and pages that cannot be read.

The `crane_*` fixtures are pages of a Crane/RDepot index server (not this tool)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from crane_launch.config import Origin
from crane_launch.errors import UpstreamError
from crane_launch.proxy.rewrite import (
    PageError,
    is_rdepot_not_found_page,
    page_kind,
    rewrite_page,
    rewrite_root_page,
)

FIXTURES = Path(__file__).parent / "fixtures"
FILES = "/TOKEN/files"
RDEPOT = Origin("https", "crane.example", 443)
RDEPOT_PAGE = "https://crane.example/pypi/simple/demo/"
PYPISERVER = Origin("http", "index.example", 8080)
HTML = "text/html; charset=utf-8"
JSON_V1 = "application/vnd.pypi.simple.v1+json"


class Anchors(HTMLParser):
    """Every `<a>` start tag of a page, attributes decoded, in document order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[list[tuple[str, str | None]]] = []
        self.bases: list[list[tuple[str, str | None]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(attrs)
        elif tag == "base":
            self.bases.append(attrs)


def hrefs(page: bytes) -> list[str | None]:
    return [dict(attrs).get("href") for attrs in Anchors(page.decode()).anchors]


# --- HTML fixtures ------------------------------------------------------------------

HTML_CASES = [
    # fixture, page URL, private origin, the hrefs the child must see
    (
        "pypiserver",
        "http://index.example:8080/simple/demo/",
        PYPISERVER,
        [
            f"{FILES}/packages/demo-1.0-py3-none-any.whl#sha256=8a1f3c0c2b4d6e8f0a1b2c3d4e5f"
            "60718293a4b5c6d7e8f90a1b2c3d4e5f6071",
            f"{FILES}/packages/demo-1.0.tar.gz#sha256=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d"
            "3c4b5a69788796a5b4c3d2e1f0",
        ],
    ),
    (
        "crane_listing",
        "https://crane.example/repo/demo/",
        RDEPOT,
        [
            f"{FILES}/",
            f"{FILES}/logout",
            f"{FILES}/repo/",
            f"{FILES}/repo/demo/",
            f"{FILES}/repo/demo/demo-1.0+local.tar.gz",
            f"{FILES}/repo/demo/demo-2.0~rc1@x,y;z=1-py3-none-any.whl",
            f"{FILES}/repo/demo/demo-3.0.tar.gz",
        ],
    ),
    (
        "relative",
        RDEPOT_PAGE,
        RDEPOT,
        [
            f"{FILES}/pypi/packages/demo-1.0-py3-none-any.whl#sha256=aa",
            f"{FILES}/pypi/simple/demo/demo-1.1.tar.gz",
            f"{FILES}/pypi/simple/demo/demo-1.2.tar.gz?token=abc&v=2#md5=bb",
            f"{FILES}/up/too/far.whl",
            f"{FILES}/pypi/simple/demo/?page=2",
            f"{FILES}/pypi/simple/demo/#top",
        ],
    ),
    (
        "foreign",
        RDEPOT_PAGE,
        RDEPOT,
        [
            "https://files.example/packages/aa/bb/demo-1.0.tar.gz#sha256=cc",
            "https://files.example/packages/demo-1.1.tar.gz",
            "http://crane.example/repo/demo/demo-1.2.tar.gz",
            "https://crane.example:8443/repo/demo/demo-1.3.tar.gz",
            "https://crane.example.evil.example/repo/demo-1.4.tar.gz",
            "https://crane.example@evil.example/repo/demo-1.5.tar.gz",
            f"{FILES}/repo/demo/demo-1.6.tar.gz",
            f"{FILES}/repo/demo/demo-1.7.tar.gz",
            "mailto:owner@crane.example",
        ],
    ),
    (
        "base",
        RDEPOT_PAGE,
        RDEPOT,
        [
            f"{FILES}/pypi/repo/demo/demo-1.0.tar.gz#sha256=dd",
            f"{FILES}/elsewhere/demo-1.1.tar.gz",
            "https://files.example/demo-1.2.tar.gz",
        ],
    ),
    (
        "data_attributes",
        RDEPOT_PAGE,
        RDEPOT,
        [
            f"{FILES}/repo/demo/demo-1.0.tar.gz#sha256=ee",
            f"{FILES}/repo/demo/demo-2.0.tar.gz",
            f"{FILES}/repo/demo/demo-3.0.tar.gz",
            f"{FILES}/repo/demo/demo-4.0.tar.gz",
            None,
            f"{FILES}/repo/demo/demo-5.0.tar.gz",
        ],
    ),
]


@pytest.mark.parametrize(
    ("fixture", "page_url", "origin", "expected"),
    [pytest.param(*case, id=case[0]) for case in HTML_CASES],
)
def test_html_links_are_mapped(
    fixture: str, page_url: str, origin: Origin, expected: list[str | None]
) -> None:
    page = (FIXTURES / f"{fixture}.html").read_bytes()
    out = rewrite_page(page, HTML, page_url, origin, FILES)
    assert hrefs(out) == expected


@pytest.mark.parametrize(
    ("fixture", "page_url", "origin"),
    [pytest.param(*case[:3], id=case[0]) for case in HTML_CASES],
)
def test_html_pages_match_their_reviewed_rewrite(
    fixture: str, page_url: str, origin: Origin
) -> None:
    """Everything but the `<a href>` tags (and `<base>`) is kept character for character."""
    page = (FIXTURES / f"{fixture}.html").read_bytes()
    expected = (FIXTURES / f"{fixture}.expected.html").read_bytes()
    assert rewrite_page(page, HTML, page_url, origin, FILES) == expected


@pytest.mark.parametrize(
    "fixture", ["pypiserver", "crane_listing", "relative", "data_attributes", "base"]
)
def test_no_percent_sign_is_introduced(fixture: str) -> None:
    page = (FIXTURES / f"{fixture}.html").read_bytes()
    out = rewrite_page(page, HTML, RDEPOT_PAGE, RDEPOT, FILES)
    assert b"%" not in page
    assert b"%" not in out


def test_every_other_attribute_keeps_its_meaning() -> None:
    page = (FIXTURES / "data_attributes.html").read_bytes()
    before = Anchors(page.decode()).anchors
    after = Anchors(rewrite_page(page, HTML, RDEPOT_PAGE, RDEPOT, FILES).decode()).anchors
    assert [[a for a in attrs if a[0] != "href"] for attrs in after] == [
        [a for a in attrs if a[0] != "href"] for attrs in before
    ]
    assert dict(after[0])["data-requires-python"] == ">=3.8,<4"
    assert dict(after[1])["data-yanked"] == 'broken: "quotes" & <tags>'
    assert ("data-yanked", None) in after[2]
    assert dict(after[2])["data-custom-thing"] == "x=1 & y"
    assert dict(after[3])["data-requires-python"] == ">=3.9"


def test_links_in_comments_scripts_and_text_are_left_alone() -> None:
    page = (FIXTURES / "data_attributes.html").read_bytes()
    out = rewrite_page(page, HTML, RDEPOT_PAGE, RDEPOT, FILES)
    assert b'<!-- <a href="/in/a/comment"> -->' in out
    assert b"document.write('<a href=\"/in/a/script\">');" in out
    assert b'&lt;a href="/not/a/link"&gt;' in out


def test_base_href_is_honoured_and_every_base_href_is_dropped() -> None:
    page = (FIXTURES / "base.html").read_bytes()
    out = rewrite_page(page, HTML, RDEPOT_PAGE, RDEPOT, FILES)
    assert Anchors(out.decode()).bases == []
    assert b"evil.example" not in out


def test_a_base_without_href_stays() -> None:
    page = b'<base target="_blank"><a href="x.whl">x</a>'
    out = rewrite_page(page, HTML, RDEPOT_PAGE, RDEPOT, FILES)
    assert out == b'<base target="_blank"><a href="/TOKEN/files/pypi/simple/demo/x.whl">x</a>'


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (b'<a href="x.whl"/>', b'<a href="/TOKEN/files/pypi/simple/demo/x.whl"/>'),
        (b"<a href=x.whl/>", b'<a href="/TOKEN/files/pypi/simple/demo/x.whl/">'),
        (
            b'<a href="a.whl" href="b.whl">',
            b'<a href="/TOKEN/files/pypi/simple/demo/a.whl" '
            b'href="/TOKEN/files/pypi/simple/demo/b.whl">',
        ),
        (b"<a\nhref='/x.whl'\n>", b'<a href="/TOKEN/files/x.whl">'),
        (b"<a href>bare</a>", b"<a href>bare</a>"),
        (b'a&#\n<a href="/x.whl">', b'a&#\n<a href="/TOKEN/files/x.whl">'),
        (b'<p>&#;&#;</p><a href="/x.whl">', b'<p>&#;&#;</p><a href="/TOKEN/files/x.whl">'),
        (b'<a href="/x.whl"', b'<a href="/x.whl"'),
        (b'<a data-&amp=1 href="/x.whl">', b'<a data-&amp="1" href="/TOKEN/files/x.whl">'),
        (b"", b""),
    ],
)
def test_html_edge_cases(page: bytes, expected: bytes) -> None:
    assert rewrite_page(page, "text/html", RDEPOT_PAGE, RDEPOT, FILES) == expected


@pytest.mark.parametrize(
    ("charset", "text"),
    [("iso-8859-1", "Caf\u00e9"), ("utf-8", "Caf\u00e9 \u2713"), ("cp1252", "\u20ac")],
)
def test_html_keeps_its_charset(charset: str, text: str) -> None:
    page = f'<p>{text}</p><a href="/x.whl" title="{text}">x</a>'.encode(charset)
    out = rewrite_page(page, f"text/html; charset={charset}", RDEPOT_PAGE, RDEPOT, FILES)
    assert out == f'<p>{text}</p><a href="/TOKEN/files/x.whl" title="{text}">x</a>'.encode(charset)


def test_the_pep_691_html_type_is_html() -> None:
    page = b'<a href="/x.whl">x</a>'
    out = rewrite_page(page, "application/vnd.pypi.simple.v1+html", RDEPOT_PAGE, RDEPOT, FILES)
    assert out == b'<a href="/TOKEN/files/x.whl">x</a>'


def test_public_pages_get_absolute_links_only() -> None:
    page = (FIXTURES / "pypiserver.html").read_bytes()
    out = rewrite_page(page, HTML, "https://index.example/simple/demo/", None, FILES)
    assert all(
        href is not None and href.startswith("https://index.example/packages/")
        for href in hrefs(out)
    )


# --- JSON ---------------------------------------------------------------------------


def test_pep_691_json_maps_file_urls_and_keeps_everything_else() -> None:
    page = (FIXTURES / "pep691.json").read_bytes()
    out = rewrite_page(page, JSON_V1, RDEPOT_PAGE, RDEPOT, FILES)

    expected: dict[str, Any] = json.loads(page)
    mapped_urls = [
        f"{FILES}/repo/demo/demo-1.0.tar.gz",
        f"{FILES}/repo/demo/demo-2.0-py3-none-any.whl#sha256=bb",
        "https://files.example/packages/demo-3.0.tar.gz",
        f"{FILES}/repo/demo/demo-3.1.tar.gz?download=1",
    ]
    for entry, url in zip(expected["files"], mapped_urls, strict=True):
        entry["url"] = url
    assert json.loads(out) == expected
    # Order kept, compact, UTF-8, big integers exact.
    assert out == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    assert b"12345678901234567890" in out
    assert "caf\u00e9".encode() in out


@pytest.mark.parametrize(
    "content_type",
    [
        JSON_V1,
        "application/json",
        "application/json; charset=utf-8",
        "Application/Vnd.Pypi.Simple.V1+JSON",
        "application/vnd.pypi.simple.latest+json",
    ],
)
def test_json_is_chosen_by_content_type(content_type: str) -> None:
    page = b'{"meta":{"api-version":"1.0"},"name":"demo","files":[{"url":"/x.whl"}]}'
    out = rewrite_page(page, content_type, RDEPOT_PAGE, RDEPOT, FILES)
    assert json.loads(out)["files"][0]["url"] == f"{FILES}/x.whl"


def test_a_json_index_root_passes_through_byte_for_byte() -> None:
    page = (FIXTURES / "pep691_root.json").read_bytes()
    assert rewrite_page(page, JSON_V1, "https://crane.example/pypi/simple/", RDEPOT, FILES) == page


def test_an_html_index_root_points_projects_at_the_door() -> None:
    page = (FIXTURES / "simple_root.html").read_bytes()
    out = rewrite_root_page(
        page,
        "text/html",
        "http://index.example:8080/simple/",
        PYPISERVER,
        FILES,
        simple_prefix="/TOKEN/simple",
    )
    assert hrefs(out) == [
        "/TOKEN/simple/demo/",
        "/TOKEN/simple/other-project/",
        "/TOKEN/simple/third-one/",
        f"{FILES}/packages/",
    ]
    assert out == (FIXTURES / "simple_root.expected.html").read_bytes()


def test_a_json_index_root_is_unchanged_by_the_root_rewrite() -> None:
    page = (FIXTURES / "pep691_root.json").read_bytes()
    out = rewrite_root_page(
        page,
        JSON_V1,
        "https://crane.example/pypi/simple/",
        RDEPOT,
        FILES,
        simple_prefix="/T/simple",
    )
    assert out == page


# --- pages that cannot be read ------------------------------------------------------

MALFORMED = [
    ("invalid JSON", JSON_V1, b'{"files": [', "not valid JSON"),
    ("JSON list", JSON_V1, b"[]", "not a JSON object"),
    ("JSON string", JSON_V1, b'"files"', "not a JSON object"),
    ("no files or projects", JSON_V1, b'{"meta": {}}', "neither"),
    ("projects not a list", JSON_V1, b'{"projects": {}}', "neither"),
    ("files not a list", JSON_V1, b'{"files": {"url": "/x"}}', "'files' is not a list"),
    ("file not an object", JSON_V1, b'{"files": ["/x.whl"]}', "files[0]"),
    ("file without url", JSON_V1, b'{"files": [{"url": "/a"}, {"name": "x"}]}', "files[1]"),
    ("url not a string", JSON_V1, b'{"files": [{"url": 3}]}', "files[0]"),
    ("JSON not UTF-8", JSON_V1, b'{"files": [{"url": "\xff"}]}', "UTF-8"),
    ("deeply nested JSON", JSON_V1, b"[" * 100_000 + b"]" * 100_000, "cannot be read"),
    ("bad port in JSON", JSON_V1, b'{"files": [{"url": "https://a:99999/"}]}', "cannot be parsed"),
    ("HTML not UTF-8", HTML, b'<a href="/x.whl">\xff\xfe</a>', "not valid utf-8"),
    ("unknown charset", "text/html; charset=klingon", b"<a href=x>", "unknown charset"),
    ("binary codec", "text/html; charset=base64", b"<a href=x>", "unknown charset"),
    ("text codec", "text/html; charset=rot13", b"<a href=x>", "unknown charset"),
    ("broken IPv6 link", HTML, b'<a href="http://[::1/x">', "cannot be parsed"),
    ("plain text", "text/plain", b"hello", "unsupported content type"),
    ("no content type", "", b"<a href=x>", "unsupported content type"),
    ("future API", "application/vnd.pypi.simple.v2+json", b"{}", "unsupported content type"),
]


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED],
)
def test_malformed_pages_raise_page_error(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(PageError) as caught:
        rewrite_page(body, content_type, RDEPOT_PAGE, RDEPOT, FILES)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, UpstreamError)


# --- page_kind ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("text/html", "html"),
        ("text/html; charset=utf-8", "html"),
        ("TEXT/HTML ;charset=UTF-8", "html"),
        ("application/vnd.pypi.simple.v1+html", "html"),
        ("application/vnd.pypi.simple.v1+json", "json"),
        ("application/json", "json"),
        ("application/json;charset=utf-8", "json"),
        ("text/plain", None),
        ("application/octet-stream", None),
        ("application/vnd.pypi.simple.v2+json", None),
        ("", None),
    ],
)
def test_page_kind(content_type: str, kind: str | None) -> None:
    assert page_kind(content_type) == kind


# --- the "200 Not found" page of old Crane/RDepot index servers ----------------------


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


RDEPOT_NOT_FOUND_CASES = [
    (
        "old Crane/RDepot page",
        200,
        "text/html;charset=UTF-8",
        fixture("crane_not_found.html"),
        True,
    ),
    ("with navbar", 200, "text/html", fixture("crane_not_found_navbar.html"), True),
    ("old Crane/RDepot JSON", 200, "application/json", fixture("crane_not_found.json"), True),
    ("JSON, PEP 691 type", 200, JSON_V1, fixture("crane_not_found.json"), True),
    ("bare heading", 200, "text/html", b"<h1> NOT   found </h1>", True),
    ("title only", 200, "text/html", b"<title>Not found</title>", False),
    ("as a 404", 404, "text/html", fixture("crane_not_found.html"), False),
    ("as a 500", 500, "text/html", fixture("crane_not_found.html"), False),
    ("as plain text", 200, "text/plain", fixture("crane_not_found.html"), False),
    ("a project page", 200, "text/html", fixture("pypiserver.html"), False),
    ("a Crane/RDepot listing", 200, "text/html", fixture("crane_listing.html"), False),
    ("a PEP 691 page", 200, JSON_V1, fixture("pep691.json"), False),
    ("empty page", 200, "text/html", b"", False),
    (
        "heading and a wheel",
        200,
        "text/html",
        b'<h1>Not found</h1><a href="/p/x-1.0-py3-none-any.whl">x</a>',
        False,
    ),
    (
        "heading and an sdist",
        200,
        "text/html",
        b'<h1>Not found</h1><a href="x-1.0.tar.gz#sha256=aa">x</a>',
        False,
    ),
    (
        "heading and a data attribute",
        200,
        "text/html",
        b'<h1>Not found</h1><a href="x" data-requires-python="&gt;=3">x</a>',
        False,
    ),
    (
        "another title",
        200,
        "text/html",
        b"<title>Links for not-found</title><h1>Not found</h1>",
        False,
    ),
    ("two headings", 200, "text/html", b"<h1>Not found</h1><h1>Not found</h1>", False),
    ("other heading", 200, "text/html", b"<h1>Links for not found</h1>", False),
    ("JSON with files", 200, JSON_V1, b'{"status":"error","code":404,"files":[]}', False),
    (
        "JSON other code",
        200,
        "application/json",
        b'{"status":"access_denied","code":403,"resource":"/x"}',
        False,
    ),
    (
        "JSON extra key",
        200,
        "application/json",
        b'{"status":"error","code":404,"resource":"/x","files":[]}',
        False,
    ),
    ("invalid JSON", 200, "application/json", b'{"status":', False),
    ("big page", 200, "text/html", b"<h1>Not found</h1>" + b" " * 70_000, False),
    ("undecodable", 200, "text/html", b"<h1>Not found</h1>\xff", True),
]


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in RDEPOT_NOT_FOUND_CASES],
)
def test_is_rdepot_not_found_page(
    status: int, content_type: str, body: bytes, expected: bool
) -> None:
    assert is_rdepot_not_found_page(status, content_type, body) is expected
