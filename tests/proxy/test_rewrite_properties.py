"""Property: after rewriting, no link reaches the private origin except through the door.

Pages with random links (relative, absolute-path, absolute on the private origin in
various spellings, on other origins, with queries and fragments) are rewritten; every
link the child sees must either start with the files prefix and come back, through
`parse_request_path`, to exactly the private path it named, or be an absolute URL on
another origin, unchanged from its resolution against the page URL.
"""

from __future__ import annotations

import html
import json
import string
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crane_launch.config import Origin, origin_of
from crane_launch.proxy.rewrite import rewrite_page
from crane_launch.proxy.routing import PrivateFile, parse_request_path

TOKEN = "p7Hk_2-xQ"
FILES = f"/{TOKEN}/files"
PRIVATE = Origin("https", "crane.example", 443)
PAGE = "https://crane.example/pypi/simple/demo/"

SAFE = string.ascii_letters + string.digits + "-._~!$'()*+,;=:@"

# Dot segments only ever come from relative prefixes, which resolution removes.
segments = st.text(SAFE, min_size=1, max_size=6).map(lambda s: s + "x" if s in (".", "..") else s)
paths = st.lists(segments, min_size=0, max_size=4).map("/".join)
queries = st.one_of(st.just(""), st.text(SAFE + "/?&", max_size=8).map(lambda q: "?" + q))
fragments = st.one_of(
    st.just(""),
    st.text(string.hexdigits, min_size=1, max_size=12).map(lambda h: "#sha256=" + h),
    st.text(SAFE + "/?#", max_size=8).map(lambda f: "#" + f),
)
private_authorities = st.sampled_from(
    [
        "https://crane.example",
        "https://CRANE.example",
        "HTTPS://crane.example",
        "https://crane.example:443",
        "https://crane.example:0443",
        "https://crane.example:",
        "https://someone@crane.example",
        "//crane.example",
        "//crane.example:443",
    ]
)
other_authorities = st.sampled_from(
    [
        "https://files.example",
        "//files.example",
        "http://crane.example",
        "http://crane.example:443",
        "https://crane.example:8443",
        "https://crane.example.evil.example",
        "https://crane.example@evil.example",
        "https://crane.example:443@evil.example",
        "https://evil.example",
        "https://crane.example.",
    ]
)
relative_prefixes = st.sampled_from(["", "./", "../", "../../", "../../../../../", "x/../"])

links = st.one_of(
    st.builds(lambda p, a, b, c: p + a + b + c, relative_prefixes, paths, queries, fragments),
    st.builds(lambda a, b, c: "/" + a + b + c, paths, queries, fragments),
    st.builds(lambda o, a, b, c: f"{o}/{a}{b}{c}", private_authorities, paths, queries, fragments),
    st.builds(lambda o, a, b, c: f"{o}/{a}{b}{c}", other_authorities, paths, queries, fragments),
    st.sampled_from(["", "#top", "?page=2", "mailto:someone@crane.example"]),
)


def check_link(href: str, out: str) -> None:
    """The property, for one link `href` on the page and what the child got for it."""
    resolved = urljoin(PAGE, href)
    parts = urlsplit(resolved)
    if parts.netloc and origin_of(resolved) == PRIVATE:
        assert out.startswith(FILES + "/"), (href, out)
        target, _, fragment = out.partition("#")
        assert fragment == parts.fragment
        route = parse_request_path(target, TOKEN)
        expected = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        assert route == PrivateFile(expected), (href, out)
    else:
        assert not out.startswith(f"/{TOKEN}/"), (href, out)
        assert out == resolved
        assert urlsplit(out).scheme, (href, out)
        assert origin_of(out) != PRIVATE, (href, out)


attribute_values = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("<>&\"'=")
)
data_attributes = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "data-requires-python",
                "data-dist-info-metadata",
                "data-core-metadata",
                "data-yanked",
                "data-gpg-sig",
                "data-x-custom",
            ]
        ),
        st.none() | attribute_values,
    ),
    max_size=3,
    unique_by=lambda attr: attr[0],
)
quotes = st.sampled_from(['"', "'"])


def html_attribute(name: str, value: str | None, quote: str) -> str:
    if value is None:
        return f" {name}"
    escaped = html.escape(value, quote=True)
    return f" {name}={quote}{escaped}{quote}"


@st.composite
def html_pages(draw: st.DrawFn) -> tuple[str, list[tuple[str, list[tuple[str, str | None]]]]]:
    anchors = draw(st.lists(st.tuples(links, data_attributes, quotes), max_size=6))
    parts = ["<!DOCTYPE html>\n<html><head><title>Links for demo</title></head><body>\n"]
    expected = []
    for href, attrs, quote in anchors:
        before = draw(st.integers(0, len(attrs)))
        tag_attrs = [*attrs[:before], ("href", href), *attrs[before:]]
        name_case = draw(st.sampled_from([str.lower, str.upper]))
        rendered = "".join(html_attribute(name_case(n), v, quote) for n, v in tag_attrs)
        text = html.escape(draw(st.text(SAFE + " <>&", max_size=6)))
        parts.append(f"<a{rendered}>{text}</a><br/>\n")
        expected.append((href, tag_attrs))
    parts.append("</body></html>\n")
    return "".join(parts), expected


class Anchors(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[list[tuple[str, str | None]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(attrs)


FAST = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(page=html_pages(), origin_as_url=st.booleans())
def test_html_links_reach_the_private_origin_only_through_the_door(
    page: tuple[str, list[tuple[str, list[tuple[str, str | None]]]]], origin_as_url: bool
) -> None:
    text, expected = page
    origin = origin_of("https://crane.example/pypi/simple/") if origin_as_url else PRIVATE
    out = rewrite_page(text.encode(), "text/html; charset=utf-8", PAGE, origin, FILES).decode()

    anchors = Anchors(out).anchors
    assert len(anchors) == len(expected)
    for attrs, (href, original_attrs) in zip(anchors, expected, strict=True):
        assert [name for name, _ in attrs] == [name for name, _ in original_attrs]
        assert [a for a in attrs if a[0] != "href"] == [a for a in original_attrs if a[0] != "href"]
        out_href = dict(attrs)["href"]
        assert out_href is not None
        check_link(href, out_href)
    if "%" not in text:
        assert "%" not in out


file_entries = st.fixed_dictionaries(
    {"url": links},
    optional={
        "filename": st.text(SAFE, min_size=1, max_size=10),
        "hashes": st.dictionaries(st.sampled_from(["sha256", "md5"]), st.text("0123456789abcdef")),
        "requires-python": st.sampled_from([">=3.8", ">=3.8,<4", "!=3.0.*"]),
        "yanked": st.booleans() | st.text(max_size=10),
        "core-metadata": st.booleans() | st.just({"sha256": "ab"}),
        "dist-info-metadata": st.booleans(),
        "size": st.integers(0, 2**63),
        "upload-time": st.just("2024-01-02T03:04:05.000006Z"),
        "x-unknown": st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=4), children, max_size=3)
            ),
            max_leaves=6,
        ),
    },
)


@FAST
@given(files=st.lists(file_entries, max_size=6))
def test_json_links_reach_the_private_origin_only_through_the_door(
    files: list[dict[str, object]],
) -> None:
    document = {"meta": {"api-version": "1.1"}, "name": "demo", "files": files}
    body = json.dumps(document).encode()
    out = json.loads(
        rewrite_page(body, "application/vnd.pypi.simple.v1+json", PAGE, PRIVATE, FILES)
    )

    assert set(out) == set(document)
    assert out["meta"] == document["meta"]
    assert len(out["files"]) == len(files)
    for entry, original in zip(out["files"], files, strict=True):
        assert list(entry) == list(original)
        assert {k: v for k, v in entry.items() if k != "url"} == {
            k: v for k, v in original.items() if k != "url"
        }
        href = original["url"]
        assert isinstance(href, str)
        check_link(href, entry["url"])
