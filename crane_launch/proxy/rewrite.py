"""Rewriting simple-index pages (PEP 503 HTML, PEP 691 JSON) for the index door.

Every link is resolved against the upstream page URL and passed through
`routing.map_link`: links on the private origin become `/<token>/files/...`, all
others stay absolute and direct. Nothing else on the page changes meaning:

- HTML is scanned with `html.parser`; only `<a href>` start tags are rebuilt (every
  attribute kept, in order, re-escaped with `html.escape(quote=True)`), and every
  `<base href>` is dropped after it has been honoured for resolution (left in place it
  would re-anchor the rewritten `/<token>/files/` links on another host). All other
  characters of the document are copied as they were.
- JSON keeps every key and value; only `files[].url` changes. An index root (a
  `projects` list) passes through byte for byte.

A page that cannot be read raises `PageError`, which the server turns into a 502.

Old builds of the Crane/RDepot index server (a product that shares a name with this
tool, nothing else) answer a missing project with 200 and their "not found" page;
`is_rdepot_not_found_page` recognises that page and nothing else (see its docstring for
the exact shape, taken from that server's `not-found.html` template).
"""

from __future__ import annotations

import codecs
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urlsplit

from crane_launch.config import Origin, origin_of
from crane_launch.errors import UpstreamError
from crane_launch.proxy.routing import map_link, normalise_project

__all__ = [
    "PageError",
    "PageKind",
    "file_hashes",
    "file_links",
    "is_rdepot_not_found_page",
    "lists_index_entries",
    "load_json_object",
    "not_index_shaped",
    "page_kind",
    "rewrite_page",
    "rewrite_root_page",
]

PageKind = Literal["html", "json"]

_HTML_TYPES = frozenset(
    {
        "text/html",
        "application/vnd.pypi.simple.v1+html",
        "application/vnd.pypi.simple.latest+html",
    }
)
_JSON_TYPES = frozenset(
    {
        "application/json",
        "application/vnd.pypi.simple.v1+json",
        "application/vnd.pypi.simple.latest+json",
    }
)
_RDEPOT_NOT_FOUND_MAX_BYTES = 64 * 1024
_DISTRIBUTION_SUFFIXES = (
    ".whl",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tar",
    ".zip",
    ".egg",
    ".exe",
    ".msi",
    ".rpm",
    ".metadata",
)

LinkMapper = Callable[[str, str], str]
"""(href, base URL) -> the href the child gets."""


class PageError(UpstreamError):
    """An upstream index page that cannot be read or rewritten. One line, no secrets."""


# --- content types ------------------------------------------------------------------


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    media, *raw_params = content_type.split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        name, sep, value = raw.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"').strip()
    return media.strip().lower(), params


def page_kind(content_type: str) -> PageKind | None:
    """'html' or 'json' by media type (parameters ignored); None for anything else."""
    media, _ = _media_type(content_type)
    if media in _HTML_TYPES:
        return "html"
    if media in _JSON_TYPES:
        return "json"
    return None


def _html_charset(content_type: str) -> str:
    charset = _media_type(content_type)[1].get("charset") or "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        raise PageError(f"upstream page declares an unknown charset {charset!r}") from None


# --- is it an index page at all? ----------------------------------------------------


def not_index_shaped(body: bytes, content_type: str, *, proof: bool = False) -> str | None:
    """Why `body` is not a simple-index page (PEP 503 HTML or PEP 691 JSON); None when it
    is one. A login page, a form, an empty body, or any other content type is not: only an
    index page can prove crane's credentials, or say what a project has.

    With `proof` (the credential probe), an HTML page must also carry a link or PEP 629's
    `pypi:repository-version` meta: a sign-in shell, an "access denied" page or a script
    that draws a login button proves nothing. An empty index proves itself through the
    probe path set at registration."""
    kind = page_kind(content_type)
    if kind is None:
        media = _media_type(content_type)[0] or "no content type"
        return f"not an index page ({media})"
    if not body.strip():
        return "an empty page"
    if kind == "json":
        return _not_index_json(body)
    try:
        text, _ = _decode_html(body, content_type)
        tags = _tags(text, frozenset({"form", "input", "a", "meta"}))
    except (PageError, ValueError, AssertionError):
        return "an HTML page that cannot be read"
    names = {tag.name for tag in tags}
    attributes = [(name, (value or "").lower()) for tag in tags for name, value in tag.attrs]
    if "form" in names or ("type", "password") in attributes:
        return "a page with a form (a login page?)"
    if proof and "a" not in names and ("name", "pypi:repository-version") not in attributes:
        return "an HTML page without a single link"
    # Outside the probe, a page without links is an empty project: allowed.
    return None


def lists_index_entries(body: bytes, content_type: str, page_url: str) -> bool:
    """Whether `body` shows index content: PEP 691 JSON, PEP 629's meta tag, a link below
    `page_url` (a project of a root page) or a link to a distribution file (a project
    page). A landing page that links elsewhere (`/login`, `/about`) does not."""
    if not_index_shaped(body, content_type, proof=True) is not None:
        return False
    if page_kind(content_type) == "json":
        return True
    try:
        text, _ = _decode_html(body, content_type)
        tags = _tags(text, frozenset({"a", "base", "meta"}))
    except (PageError, ValueError, AssertionError):
        return False
    if any(("name", "pypi:repository-version") in tag.attrs for tag in tags):
        return True
    links = [tag for tag in tags if tag.name in ("a", "base")]
    try:
        base = _base_url(links, page_url)
        targets = [_resolve(href, base, None) for tag in links if (href := tag.href())]
    except PageError:
        return False
    prefix = page_url if page_url.endswith("/") else page_url + "/"
    return any(
        (target.startswith(prefix) and target != prefix) or _looks_like_distribution(target)
        for target in targets
    )


def _not_index_json(body: bytes) -> str | None:
    try:
        data = _load_json(body)
    except (ValueError, RecursionError):
        return "JSON that does not parse"
    if not isinstance(data, dict) or not isinstance(data.get("meta"), dict):
        return "JSON without the PEP 691 `meta` table"
    if not isinstance(data.get("files", data.get("projects")), list):
        return "JSON without `files` or `projects`"
    return None


# --- rewriting ----------------------------------------------------------------------


def rewrite_page(
    body: bytes,
    content_type: str,
    page_url: str,
    private_origin: Origin | None,
    files_prefix: str,
) -> bytes:
    """The page at `page_url` with every link mapped by `routing.map_link`.

    `content_type` is the upstream response's; send it on unchanged (HTML keeps its
    charset; JSON is written as compact UTF-8). `private_origin` None makes every link
    absolute and direct (for public index pages). Raises `PageError` for a page of
    another type, undecodable bytes, invalid JSON or JSON of the wrong shape, and a
    link that cannot be parsed.
    """

    def mapper(href: str, base: str) -> str:
        return map_link(href, base, private_origin, files_prefix)

    return _rewrite_links(body, content_type, page_url, mapper)


def rewrite_root_page(
    body: bytes,
    content_type: str,
    page_url: str,
    private_origin: Origin | None,
    files_prefix: str,
    *,
    simple_prefix: str,
) -> bytes:
    """The index root page, with its project links pointed at the index door.

    A link that resolves to `<page_url><name>/` (or without the slash) becomes
    `<simple_prefix>/<normalised name>/`, `simple_prefix` being like `/<token>/simple`;
    other links are mapped like `rewrite_page` does. PEP 691 JSON roots carry names,
    not links, and pass through unchanged (after a shape check).
    """
    project_base = page_url if page_url.endswith("/") else page_url + "/"
    door = simple_prefix.rstrip("/")

    def mapper(href: str, base: str) -> str:
        resolved = map_link(href, base, None, files_prefix)
        name = _child_segment(resolved, project_base)
        if name is not None:
            return f"{door}/{normalise_project(name)}/"
        return map_link(href, base, private_origin, files_prefix)

    return _rewrite_links(body, content_type, page_url, mapper)


def _rewrite_links(body: bytes, content_type: str, page_url: str, mapper: LinkMapper) -> bytes:
    kind = page_kind(content_type)
    if kind == "html":
        return _rewrite_html(body, content_type, page_url, mapper)
    if kind == "json":
        return _rewrite_json(body, page_url, mapper)
    raise PageError(f"upstream page has unsupported content type {content_type!r}")


def _child_segment(url: str, base: str) -> str | None:
    """The one path segment `url` adds below `base` (a project name on a root page)."""
    url = url.partition("#")[0]
    if "?" in url or not url.startswith(base):
        return None
    rest = url[len(base) :].removesuffix("/")
    if not rest or "/" in rest or rest in (".", ".."):
        return None
    return rest


# --- HTML ---------------------------------------------------------------------------


Attributes = list[tuple[str, str | None]]
"""A start tag's attributes in document order, values unescaped (None: no value)."""


@dataclass(frozen=True)
class _StartTag:
    """One start tag of interest, and where its text sits in the page."""

    start: int
    """Offset of its `<` in the page text."""
    end: int
    """Offset just past its `>`."""
    name: str
    attrs: Attributes
    self_closing: bool
    """Written `<tag ... />`."""

    def href(self) -> str | None:
        """The value of the first `href` attribute that has one."""
        for name, value in self.attrs:
            if name == "href" and value is not None:
                return value
        return None


_SCANNED_TAGS = frozenset({"a", "base", "form", "input", "meta"})


def _tags(text: str, wanted: frozenset[str]) -> list[_StartTag]:
    """The start tags named in `wanted` (a subset of `_SCANNED_TAGS`), in document order."""
    return [tag for tag in _scan(text) if tag.name in wanted]


@lru_cache(maxsize=4)
def _scan(text: str) -> tuple[_StartTag, ...]:
    # The door looks at one page several times (its shape, its hashes, its links): it is
    # parsed once. A page that cannot be parsed raises each time (exceptions are not kept).
    return tuple(_TagScanner(text, _SCANNED_TAGS).tags)


@lru_cache(maxsize=4)
def _load_json(body: bytes) -> Any:
    """`json.loads(body)`, parsed once for the several looks the door takes at a page.
    The result is shared: never change it in place."""
    return json.loads(body)


class _TagScanner(HTMLParser):
    """Finds start tags and where they sit in the text; reports nothing else.

    It is fed a copy of the page in which every `&` is replaced by one character that
    does not occur in the page: the tag structure and every offset stay the same, but
    the parser never meets a character reference, so a stray `&#` cannot make it stop
    early and hand the rest of the page over as text (and leave links unmapped).
    Attribute values are then unescaped here exactly as `HTMLParser` would have.
    """

    def __init__(self, text: str, wanted: frozenset[str]) -> None:
        super().__init__(convert_charrefs=False)
        self._wanted = wanted
        self._amp = _unused_char(text)
        self._line_starts = [0]
        self._line_starts.extend(i + 1 for i, c in enumerate(text) if c == "\n")
        self.tags: list[_StartTag] = []
        self.feed(text.replace("&", self._amp))
        self.close()

    def handle_starttag(self, tag: str, attrs: Attributes) -> None:
        self._record(tag, attrs, self_closing=False)

    def handle_startendtag(self, tag: str, attrs: Attributes) -> None:
        self._record(tag, attrs, self_closing=True)

    def _record(self, tag: str, attrs: Attributes, *, self_closing: bool) -> None:
        if tag not in self._wanted:
            return
        line, column = self.getpos()
        start = self._line_starts[line - 1] + column
        end = start + len(self.get_starttag_text() or "")
        amp = self._amp
        values = [
            (
                name.replace(amp, "&"),
                None if value is None else html.unescape(value.replace(amp, "&")),
            )
            for name, value in attrs
        ]
        self.tags.append(_StartTag(start, end, tag, values, self_closing))


def _unused_char(text: str) -> str:
    present = set(text)
    for code in range(0xE000, 0xF900):  # the private use area
        if chr(code) not in present:
            return chr(code)
    raise PageError("upstream page cannot be scanned (it uses every private-use character)")


def _decode_html(body: bytes, content_type: str) -> tuple[str, str]:
    charset = _html_charset(content_type)
    try:
        return body.decode(charset), charset
    except UnicodeDecodeError as exc:
        raise PageError(f"upstream HTML page is not valid {charset} (byte {exc.start})") from None
    except LookupError:  # a codec that is not a text encoding, such as base64
        raise PageError(f"upstream page declares an unknown charset {charset!r}") from None


def _rewrite_html(body: bytes, content_type: str, page_url: str, mapper: LinkMapper) -> bytes:
    text, charset = _decode_html(body, content_type)
    tags = _scan_links(text)
    out = _rebuild_links(text, tags, _base_url(tags, page_url), mapper)
    try:
        return out.encode(charset)
    except UnicodeEncodeError:
        raise PageError(f"rewritten page cannot be encoded as {charset}") from None


def _scan_links(text: str) -> list[_StartTag]:
    """Every `<a>` and `<base>` start tag of the page, in document order."""
    try:
        return _tags(text, frozenset({"a", "base"}))
    except PageError:
        raise
    except Exception as exc:  # html.parser has a few internal assertions
        raise PageError(f"upstream HTML page cannot be parsed ({type(exc).__name__})") from None


def _base_url(tags: list[_StartTag], page_url: str) -> str:
    """The URL links resolve against: like pip, the first `<base href>` applies to every
    link, wherever it stands."""
    for tag in tags:
        href = tag.href() if tag.name == "base" else None
        if href is not None:
            return _resolve(href, page_url, mapper=None)
    return page_url


def _rebuild_links(text: str, tags: list[_StartTag], base_url: str, mapper: LinkMapper) -> str:
    """`text` with every `<a href>` rebuilt around its mapped link and every `<base href>`
    dropped; every other character stays as it was."""
    out: list[str] = []
    done = 0
    for tag in tags:
        if tag.href() is None:
            continue
        out.append(text[done : tag.start])
        done = tag.end
        if tag.name == "base":
            continue
        new_attrs = [
            (
                name,
                _resolve(value, base_url, mapper)
                if name == "href" and value is not None
                else value,
            )
            for name, value in tag.attrs
        ]
        out.append(_start_tag(tag.name, new_attrs, self_closing=tag.self_closing))
    out.append(text[done:])
    return "".join(out)


def _resolve(href: str, base: str, mapper: LinkMapper | None) -> str:
    try:
        if mapper is None:
            return map_link(href, base, None, "")
        return mapper(href, base)
    except ValueError as exc:
        raise PageError(f"upstream page has a link that cannot be parsed: {exc}") from None


def _start_tag(tag: str, attrs: Attributes, *, self_closing: bool) -> str:
    parts = [f"<{tag}"]
    for name, value in attrs:
        parts.append(f" {name}" if value is None else f' {name}="{html.escape(value, quote=True)}"')
    parts.append("/>" if self_closing else ">")
    return "".join(parts)


# --- JSON ---------------------------------------------------------------------------


def load_json_object(body: bytes) -> dict[str, Any]:
    """A PEP 691 page's JSON object (parsed once per body: memoised); PageError, with a
    short reason, for anything else."""
    try:
        data: Any = _load_json(body)
    except UnicodeDecodeError:
        raise PageError("upstream JSON page is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise PageError(
            f"upstream JSON page is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise PageError(f"upstream JSON page cannot be read ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise PageError("upstream JSON page is not a JSON object")
    return data


def _rewrite_json(body: bytes, page_url: str, mapper: LinkMapper) -> bytes:
    data = load_json_object(body)
    if "files" not in data:
        if isinstance(data.get("projects"), list):
            return body
        raise PageError("upstream JSON page has neither a 'files' nor a 'projects' list")
    files = data["files"]
    if not isinstance(files, list):
        raise PageError("upstream JSON page: 'files' is not a list")
    mapped = []
    for position, entry in enumerate(files):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise PageError(f"upstream JSON page: files[{position}] has no 'url' string")
        mapped.append({**entry, "url": _resolve(entry["url"], page_url, mapper)})
    # New containers for what changes: the parsed page is shared (`_load_json`).
    data = {**data, "files": mapped}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- the hashes a page gives its files -------------------------------------------------


def file_hashes(
    body: bytes, content_type: str, page_url: str, private_origin: Origin
) -> dict[str, str]:
    """The sha256 digests the page at `page_url` gives its files on `private_origin`,
    keyed by path and query (what the child asks the door for): PEP 503 `#sha256=`
    fragments, PEP 691 `hashes`, and the PEP 658/714 hashes of `.metadata` files. A page
    that cannot be read gives none (the door's own rewriting reports it)."""
    links = file_links(body, content_type, page_url, private_origin)
    return {key: digest for key, digest in links.items() if digest is not None}


def file_links(
    body: bytes, content_type: str, page_url: str, private_origin: Origin
) -> dict[str, str | None]:
    """Every file on `private_origin` the page at `page_url` links, keyed as in
    `file_hashes`, with the sha256 the page gives it (None: no sha256). A `.metadata`
    file is listed only with a hash."""
    found: dict[str, str | None] = {}

    def record(href: str, base: str, digest: object) -> None:
        valid = isinstance(digest, str) and _SHA256.fullmatch(digest.lower()) is not None
        try:
            resolved = map_link(href, base, None, "")
            parts = urlsplit(resolved)
            if not parts.netloc or origin_of(resolved) != private_origin:
                return
        except ValueError:
            return
        key = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if valid:
            found[key] = str(digest).lower()
        else:
            found.setdefault(key, None)

    kind = page_kind(content_type)
    try:
        if kind == "html":
            _html_hashes(body, content_type, page_url, record)
        elif kind == "json":
            _json_hashes(body, page_url, record)
    except (PageError, ValueError, RecursionError, AssertionError):
        return {}
    return found


_SHA256 = re.compile(r"[0-9a-f]{64}")
_METADATA_ATTRIBUTES = ("data-core-metadata", "data-dist-info-metadata")

Recorder = Callable[[str, str, object], None]


def _html_hashes(body: bytes, content_type: str, page_url: str, record: Recorder) -> None:
    text, _ = _decode_html(body, content_type)
    tags = _scan_links(text)
    base = _base_url(tags, page_url)
    for tag in tags:
        href = tag.href() if tag.name == "a" else None
        if href is None:
            continue
        fragment = href.partition("#")[2]
        name, _eq, digest = fragment.partition("=")
        record(href, base, digest if name.lower() == "sha256" else None)
        for attribute, value in tag.attrs:
            if attribute in _METADATA_ATTRIBUTES and value:
                name, _eq, digest = html.unescape(value).partition("=")
                if name.lower() == "sha256":
                    record(href.partition("#")[0] + ".metadata", base, digest)


def _json_hashes(body: bytes, page_url: str, record: Recorder) -> None:
    data = _load_json(body)
    files = data.get("files") if isinstance(data, dict) else None
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        url = entry["url"]
        hashes = entry.get("hashes")
        record(url, page_url, hashes.get("sha256") if isinstance(hashes, dict) else None)
        for name in ("core-metadata", "dist-info-metadata"):
            metadata = entry.get(name)
            if isinstance(metadata, dict):
                record(url.partition("#")[0] + ".metadata", page_url, metadata.get("sha256"))


# --- the "200 Not found" page of old Crane/RDepot index servers ----------------------


class _RDepotNotFoundScanner(HTMLParser):
    """Collects what `_is_rdepot_not_found_html` looks at: titles, headings, links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.titles: list[str] = []
        self.headings: list[str] = []
        self.hrefs: list[str] = []
        self.data_attributes = False
        self._capture: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Attributes) -> None:
        if tag in ("title", "h1"):
            self._capture = []
        elif tag == "a":
            self.data_attributes |= any(name.startswith("data-") for name, _ in attrs)
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "h1") and self._capture is not None:
            text = " ".join("".join(self._capture).split())
            (self.titles if tag == "title" else self.headings).append(text)
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._capture.append(data)


def is_rdepot_not_found_page(status: int, content_type: str, body: bytes) -> bool:
    """True for the answer old Crane/RDepot index server builds send with status 200 for
    a missing project.

    Those builds forward a miss to their error controller without setting a status,
    so the error view goes out as 200. As HTML it is that server's `not-found.html`::

        <title>Crane - not found</title> ... <h1>Not found</h1>
        <p>The resource <code>/pypi/simple/x/</code> was not found.</p>
        <a href="https://crane.example/">Go back to the main page</a>

    (some builds insert a navbar with Home / Login / Logout links, and with it a second
    `<title>`). Recognised when all hold: status 200; an HTML media type; at most
    64 KiB; exactly one `<h1>`, whose text is "Not found" (case and whitespace aside);
    no `<title>`, or one that is "not found" or ends in "- not found"; and no link that
    could be a distribution (a `data-*` attribute on a link, or a link to a `.whl`,
    sdist, `.metadata`, ... file).

    To a JSON-first `Accept` the same builds answer `{"status": "error", "code": 404,
    "resource": "..."}`: recognised when the body is a JSON object with exactly those
    three keys, `code` 404 and `status` "error" or "not-found".

    Every other answer, PEP 503/691 project pages included, is not this page.
    """
    if status != 200 or len(body) > _RDEPOT_NOT_FOUND_MAX_BYTES:
        return False
    kind = page_kind(content_type)
    if kind == "json":
        return _is_rdepot_not_found_json(body)
    if kind == "html":
        return _is_rdepot_not_found_html(body, content_type)
    return False


def _is_rdepot_not_found_json(body: bytes) -> bool:
    if b"resource" not in body:
        return False  # cheaper than parsing; the page has this key (spelled plainly)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(data, dict)
        and set(data) == {"status", "code", "resource"}
        and data["code"] == 404
        and data["status"] in ("error", "not-found")
    )


def _is_rdepot_not_found_html(body: bytes, content_type: str) -> bool:
    if not _FOUND.search(body):
        # Cheaper than parsing. A heading spelled with character references is missed:
        # the page then counts as found, which never falls back (the safe side).
        return False
    try:
        charset = _html_charset(content_type)
        scanner = _RDepotNotFoundScanner()
        scanner.feed(body.decode(charset, errors="replace"))
        scanner.close()
    except Exception:  # an unreadable page is not the page we know
        return False
    if [heading.casefold() for heading in scanner.headings] != ["not found"]:
        return False
    if scanner.titles and not any(_is_rdepot_not_found_title(title) for title in scanner.titles):
        return False
    if scanner.data_attributes:
        return False
    return not any(_looks_like_distribution(href) for href in scanner.hrefs)


_FOUND = re.compile(rb"(?i)found")


def _is_rdepot_not_found_title(title: str) -> bool:
    folded = title.casefold()
    return folded == "not found" or folded.endswith("- not found")


def _looks_like_distribution(href: str) -> bool:
    path = href.partition("#")[0].partition("?")[0].lower()
    return path.endswith(_DISTRIBUTION_SUFFIXES)
