"""Reading simple-index pages for `crane audit`: the versions a project page offers, the
projects a root page lists, and comparing version sets by PEP 440."""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from crane_launch.proxy.listing import highest, listed_projects, overlap, project_versions
from crane_launch.proxy.rewrite import PageError

HTML = "text/html; charset=utf-8"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
JSON_V1 = "application/vnd.pypi.simple.v1+json"


def html_page(*anchors: str) -> bytes:
    links = "\n".join(f"    {anchor}<br/>" for anchor in anchors)
    return f"<!DOCTYPE html>\n<html>\n  <body>\n{links}\n  </body>\n</html>\n".encode()


def json_page(files: list[dict[str, Any]], **extra: Any) -> bytes:
    page: dict[str, Any] = {"meta": {"api-version": "1.0"}, "name": "foo", "files": files}
    page.update(extra)
    return json.dumps(page).encode()


# --- project pages: HTML ------------------------------------------------------------

FOO_HTML = html_page(
    '<a href="/packages/foo-1.0.tar.gz#sha256=ab12">foo-1.0.tar.gz</a>',
    '<a href="/packages/foo-1.0-py3-none-any.whl" data-dist-info-metadata="true">w</a>',
    '<a href="/packages/foo-1.0-py3-none-any.whl.metadata">w.metadata</a>',
    '<a href="https://files.example/f/foo-1.1-2-py3-none-any.whl">built twice</a>',
    '<a href="foo-1.1-1a-cp311-cp311-manylinux_2_17_x86_64.whl">build tag</a>',
    '<a href="foo-2.0rc1.zip" data-yanked="broken">yanked</a>',
    '<a href="../../eggs/foo-0.9-py2.7.egg">egg</a>',
    '<a href="foo-0.8.egg">egg</a>',
    '<a href="foo-bar-1.0.tar.gz">another project</a>',
    '<a href="foo_bar-3.0-py3-none-any.whl">another project</a>',
    '<a href="foo-1-5.0.tar.gz">project foo-1</a>',
    '<a href="foo-docs.tar.gz">no version</a>',
    '<a href="foo-4.0.win32.exe">installer</a>',
    '<a href="/simple/">back</a>',
    "<a>no href</a>",
)


def test_html_page_offers_every_file_version_of_its_project_only() -> None:
    assert project_versions(FOO_HTML, HTML, "foo") == {"1.0", "1.1", "2.0rc1", "0.9", "0.8"}


@pytest.mark.parametrize("content_type", [HTML, HTML_V1, "", "text/plain", "TEXT/HTML"])
def test_html_is_read_for_html_and_unknown_content_types(content_type: str) -> None:
    assert project_versions(FOO_HTML, content_type, "foo") == {
        "1.0",
        "1.1",
        "2.0rc1",
        "0.9",
        "0.8",
    }


def test_sdist_names_with_hyphens_split_at_the_project_name() -> None:
    page = html_page(
        '<a href="foo-bar-1.0.tar.gz">a</a>',
        '<a href="Foo_Bar-1.1.tar.bz2">b</a>',
        '<a href="foo.bar-1.2.tar.zst">c</a>',
        '<a href="foo-bar-baz-9.0.tar.gz">d</a>',
        '<a href="foo-9.9.tar.gz">e</a>',
    )
    assert project_versions(page, HTML, "foo-bar") == {"1.0", "1.1", "1.2"}
    assert project_versions(page, HTML, "foo") == {"9.9"}
    assert project_versions(page, HTML, "foo-bar-baz") == {"9.0"}


def test_project_argument_is_normalised() -> None:
    page = html_page('<a href="foo_bar-1.0.tar.gz">a</a>')
    assert project_versions(page, HTML, "Foo.Bar") == {"1.0"}


def test_versions_are_pep440_canonical_and_unparseable_ones_kept_lower_case() -> None:
    page = html_page(
        '<a href="foo-01.0.tar.gz">a</a>',
        '<a href="foo-1.0.0-py3-none-any.whl">b</a>',
        '<a href="foo-2.0-ALPHA1.tar.gz">c</a>',
        '<a href="foo-v3.tar.gz">d</a>',
        '<a href="foo-2.0~RC1.tar.gz">e</a>',
        '<a href="foo-4.0~x-py3-none-any.whl">f</a>',
    )
    assert project_versions(page, HTML, "foo") == {"1.0", "1.0.0", "2.0a1", "3", "2.0~rc1", "4.0~x"}


def test_file_names_are_percent_decoded_without_query_or_fragment() -> None:
    page = html_page(
        '<a href="/p/foo-1.0%2Blocal.tar.gz?token=x&amp;y=1#sha256=00">a</a>',
        '<a href="/p/foo%2D2.0%2Dpy3%2Dnone%2Dany.whl#frag">b</a>',
        '<a href="/p/foo-3.0.tar.gz/">a directory</a>',
    )
    assert project_versions(page, HTML, "foo") == {"1.0+local", "2.0"}


def test_an_empty_project_page_offers_nothing() -> None:
    assert project_versions(html_page(), HTML, "foo") == frozenset()


def test_html_page_in_another_charset() -> None:
    page = '<a href="foo-1.0.tar.gz">f\xf6\xf6</a>'.encode("latin-1")
    assert project_versions(page, "text/html; charset=latin-1", "foo") == {"1.0"}


# --- project pages: JSON ------------------------------------------------------------


def test_json_page_reads_filenames_with_url_as_fallback() -> None:
    page = json_page(
        [
            {"filename": "foo-1.0.tar.gz", "url": "https://files.example/x/blob", "hashes": {}},
            {"url": "https://files.example/p/foo-1.1-py3-none-any.whl#sha256=00", "hashes": {}},
            {"url": "../p/foo-1.2%2Blocal.zip?x=1", "hashes": {}},
            {"filename": "foo-2.0.tar.gz", "url": "u", "hashes": {}, "yanked": "broken"},
            {"filename": "foo-bar-9.0.tar.gz", "url": "u", "hashes": {}},
            {"filename": "foo-1.0-py3-none-any.whl.metadata", "url": "u", "hashes": {}},
        ]
    )
    assert project_versions(page, JSON_V1, "foo") == {"1.0", "1.1", "1.2+local", "2.0"}


def test_json_pep700_versions_count_from_api_version_1_1() -> None:
    files = [{"filename": "foo-1.0.tar.gz", "url": "u", "hashes": {}}]
    listed = ["1.0", "0.5", "03.0", "Weird-One"]
    v1_1 = json_page(files, meta={"api-version": "1.1"}, versions=listed)
    assert project_versions(v1_1, JSON_V1, "foo") == {"1.0", "0.5", "3.0", "weird-one"}
    v1_10 = json_page([], meta={"api-version": "1.10"}, versions=["2.0"])
    assert project_versions(v1_10, JSON_V1, "foo") == {"2.0"}
    v1_0 = json_page(files, versions=listed)
    assert project_versions(v1_0, JSON_V1, "foo") == {"1.0"}
    other = json_page([], name="foo-bar", meta={"api-version": "1.1"}, versions=["7.0"])
    assert project_versions(other, JSON_V1, "foo") == frozenset()


@pytest.mark.parametrize(
    "content_type",
    [JSON_V1, "application/vnd.pypi.simple.latest+json", "application/json; charset=utf-8"],
)
def test_json_content_types(content_type: str) -> None:
    page = json_page([{"filename": "foo-1.0.tar.gz", "url": "u", "hashes": {}}])
    assert project_versions(page, content_type, "foo") == {"1.0"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\xfa", "not valid"),
        (b"[]", "not a JSON object"),
        (b'{"meta": {"api-version": "1.0"}}', "no 'files' list"),
        (b'{"meta": {}, "files": {}}', "no 'files' list"),
        (b'{"meta": {}, "projects": []}', "index root"),
        (b'{"meta": {}, "files": ["foo-1.0.tar.gz"]}', r"files\[0\]"),
        (b'{"meta": {}, "files": [{"hashes": {}}]}', r"files\[0\]"),
    ],
)
def test_json_that_is_not_a_project_page_raises(body: bytes, reason: str) -> None:
    with pytest.raises(PageError, match=reason):
        project_versions(body, JSON_V1, "foo")


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", HTML, "empty"),
        (b"  \n", "", "empty"),
        (b'<form action="/login"><input name="user"></form>', HTML, "form"),
        (b'<a href="foo-1.0.tar.gz">x</a><input type="PASSWORD">', HTML, "form"),
        ('<a href="foo-1.0.tar.gz">\xe9</a>'.encode("latin-1"), HTML, "not valid utf-8"),
        (b"<a>x</a>", "text/html; charset=no-such-charset", "unknown charset"),
    ],
)
def test_html_that_is_not_an_index_page_raises(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(PageError, match=reason):
        project_versions(body, content_type, "foo")
    with pytest.raises(PageError, match=reason):
        listed_projects(body, content_type)


# --- root pages ---------------------------------------------------------------------


def test_html_root_lists_anchor_texts_normalised_in_page_order() -> None:
    page = html_page(
        '<a href="/simple/zeta/">Zeta</a>',
        '<a href="/simple/foo-bar/">\n      Foo_Bar\n    </a>',
        '<a href="/simple/x/"><span> Alpha.Beta </span></a>',
        '<a href="/simple/amp/">Tom&#95;and&#x2D;Jerry</a>',
        '<a href="/simple/ent/">caf&eacute;</a>',
        '<a href="/simple/zeta/">zeta</a>',
        '<a href="/simple/foo.bar/">foo.bar</a>',
    )
    assert listed_projects(page, HTML) == ["zeta", "foo-bar", "alpha-beta", "tom-and-jerry"]


def test_html_root_anchor_without_text_names_the_last_href_segment() -> None:
    page = html_page(
        '<a href="/simple/Empty_One/"></a>',
        '<a href="/simple/spaced/">  \n </a>',
        '<a href="https://index.example/simple/My%2EPkg?x=1#y"></a>',
        '<a href="/"></a>',
        "<a></a>",
    )
    assert listed_projects(page, HTML) == ["empty-one", "spaced", "my-pkg"]


def test_html_root_skips_invalid_names() -> None:
    page = html_page(
        '<a href="/simple/ok/">ok</a>',
        '<a href="/simple/a/">two words</a>',
        '<a href="/simple/b/">-leading</a>',
        '<a href="/simple/c/">trailing.</a>',
        '<a href="/simple/d/">&lt;script&gt;</a>',
        '<a href="/simple/%20/"></a>',
        '<a name="anchor-only">not-a-link</a>',
        '<a href="/simple/9/">9</a>',
    )
    assert listed_projects(page, HTML) == ["ok", "9"]


def test_html_root_survives_stray_ampersands_and_unclosed_anchors() -> None:
    page = b'AT&T &# &amp <a href="/s/a/">a<a href="/s/b/">b</a>&#<a href="/s/c/">c'
    assert listed_projects(page, "") == ["a", "b", "c"]
    # A stray reference inside an anchor's text makes the text an invalid name.
    assert listed_projects(b'<a href="/s/d/">d &#</a><a href="/s/e/">e</a>', HTML) == ["e"]


def test_json_root_lists_names() -> None:
    page = json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "projects": [
                {"name": "Zeta"},
                {"name": "foo_bar"},
                {"name": "bad name"},
                {"name": "FOO.BAR"},
                {"name": "a", "_last-serial": 3},
            ],
        }
    ).encode()
    assert listed_projects(page, JSON_V1) == ["zeta", "foo-bar", "a"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"nope", "not valid JSON"),
        (b'"projects"', "not a JSON object"),
        (b'{"meta": {}}', "no 'projects' list"),
        (b'{"meta": {}, "files": []}', "project page"),
        (b'{"meta": {}, "projects": [{"nom": "x"}]}', r"projects\[0\]"),
        (b'{"meta": {}, "projects": ["x"]}', r"projects\[0\]"),
    ],
)
def test_json_that_is_not_a_root_page_raises(body: bytes, reason: str) -> None:
    with pytest.raises(PageError, match=reason):
        listed_projects(body, JSON_V1)


# --- comparing versions -------------------------------------------------------------


def test_overlap_compares_pep440_versions_and_keeps_the_private_spelling() -> None:
    private = ["1.0", "2.0", "3.0rc1", "v4", "Weird~1", "5"]
    public = ["1.0.0", "3.0c1", "4.0", "weird~1", "6"]
    assert overlap(private, public) == {"1.0", "3.0rc1", "v4", "Weird~1"}
    assert overlap(public, private) == {"1.0.0", "3.0c1", "4.0", "weird~1"}
    assert overlap([], public) == frozenset()
    assert overlap(iter(private), iter(["2"])) == {"2.0"}


def test_highest_by_pep440_with_unparseable_versions_last() -> None:
    assert highest([]) is None
    assert highest(["1.0", "10.0", "9.9", "10.0rc1"]) == "10.0"
    assert highest(["zzz", "1.0", "~weird"]) == "1.0"
    assert highest(["1.0.post1", "1.0", "1.0+local"]) == "1.0.post1"
    assert highest(["b~x", "a~x"]) == "b~x"
    assert highest(iter(["0.1"])) == "0.1"


# --- property: every generated file set reads back -----------------------------------

LETTERS = string.ascii_lowercase
names = st.lists(st.text(LETTERS + string.digits, min_size=1, max_size=4), min_size=1, max_size=3)
separators = st.sampled_from(["-", "_", ".", "--", "_."])
numbers = st.integers(0, 30)
pre = st.one_of(
    st.just(""),
    st.tuples(st.sampled_from(["a", "b", "rc", "alpha", "c", "pre"]), numbers).map(
        lambda t: f"{t[0]}{t[1]}"
    ),
)
post = st.one_of(st.just(""), numbers.map(lambda n: f".post{n}"))
dev = st.one_of(st.just(""), numbers.map(lambda n: f".dev{n}"))
local = st.one_of(st.just(""), st.from_regex(r"\+[a-z0-9]{1,4}(\.[0-9]{1,2})?", fullmatch=True))
versions = st.builds(
    lambda epoch, release, pad, *rest: (
        epoch + ".".join(f"{n:0{pad}d}" for n in release) + "".join(rest)
    ),
    st.sampled_from(["", "1!"]),
    st.lists(numbers, min_size=1, max_size=4),
    st.integers(1, 2),
    pre,
    post,
    dev,
    local,
)


def spell(parts: list[str], draw_sep: Any, upper: bool) -> str:
    name = parts[0]
    for part in parts[1:]:
        name += draw_sep() + part
    return name.upper() if upper else name


@st.composite
def project_pages(draw: st.DrawFn) -> tuple[str, bytes, str, set[str]]:
    parts = draw(names.filter(lambda p: p[0][0] in LETTERS))
    project = "-".join(parts)
    # A project whose name extends this one's: its sdists must not count here.
    other = [*parts, draw(st.text(LETTERS.replace("v", ""), min_size=1, max_size=3))]
    filenames: list[str] = []
    expected: set[str] = set()
    for version in draw(st.lists(versions, max_size=6)):
        kind = draw(st.sampled_from(["wheel", "build", "sdist", "zip", "egg", "metadata"]))
        upper = draw(st.booleans())
        sdist_name = spell(parts, lambda: draw(separators), upper)
        wheel_name = "_".join(parts)
        if kind == "wheel":
            filenames.append(f"{wheel_name}-{version}-py3-none-any.whl")
        elif kind == "build":
            build = draw(st.integers(0, 99))
            filenames.append(f"{wheel_name}-{version}-{build}b-cp311-abi3-linux_x86_64.whl")
        elif kind == "metadata":
            filenames.append(f"{wheel_name}-{version}-py3-none-any.whl.metadata")
        elif kind == "egg":
            filenames.append(f"{wheel_name}-{version}-py3.11.egg")
        else:
            filenames.append(f"{sdist_name}-{version}.{'zip' if kind == 'zip' else 'tar.gz'}")
        expected.add(str(Version(version)))
        foreign = spell(other, lambda: draw(separators), upper)
        filenames.append(f"{foreign}-{version}.tar.gz")
    if draw(st.booleans()):
        anchors = [
            f'<a href="../../files/{quote(name)}#sha256=00">{name}</a>' for name in filenames
        ]
        return project, html_page(*anchors), HTML, expected
    entries: list[dict[str, Any]] = [
        {"filename": name, "url": f"/files/{quote(name)}", "hashes": {}}
        if draw(st.booleans())
        else {"url": f"https://files.example/files/{quote(name)}?a=b", "hashes": {}}
        for name in filenames
    ]
    return project, json_page(entries, name=project), JSON_V1, expected


@settings(max_examples=150, deadline=None)
@given(project_pages())
def test_generated_file_sets_read_back(page: tuple[str, bytes, str, set[str]]) -> None:
    project, body, content_type, expected = page
    assert project_versions(body, content_type, project) == expected
