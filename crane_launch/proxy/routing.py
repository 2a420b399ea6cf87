"""The index door's URL space and its routing decisions, as pure functions.

The proxy answers three kinds of path, all behind the run's token::

    /<token>/simple/              IndexRoot
    /<token>/simple/<project>/    ProjectPage    (the trailing slash is optional)
    /<token>/files/<rest>         PrivateFile    (<rest> is a path on the private origin)

Anything else, a wrong or missing token included, parses to None: the server answers
404 with an empty body and says nothing about why.

`decide` turns the private index's answer for a project page into a `ProjectDecision`.
Its one invariant is the reason this module exists: **never fall back to the public
index on an error.** A fallback is taken only on a 404/410 (or the "200 Not found" page
of old Crane/RDepot index server builds) once the run has proven that the private index
accepts crane's credentials, because a Crane/RDepot index server answers 404 to
forbidden and anonymous requests as well.

`map_link` decides where a link on an upstream page points to in the child's eyes:
links on the private origin go through `/<token>/files/`, every other link stays an
absolute, direct URL. Paths are copied character for character, never percent-encoded
or decoded (a Crane/RDepot index server refuses any `%`).
"""

from __future__ import annotations

import enum
import hmac
import re
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import unquote, urljoin, urlsplit

from crane_launch.config import Origin, origin_of, shown_url

__all__ = [
    "Decision",
    "IndexRoot",
    "PrivateFile",
    "ProjectDecision",
    "ProjectPage",
    "Route",
    "auth_failed_message",
    "decide",
    "fail_for_exception",
    "map_link",
    "normalise_project",
    "parse_request_path",
    "private_project_url",
    "public_project_url",
]

# PEP 508 names; anything else cannot be a project and is not worth a round trip.
_PROJECT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_NAME_SEPARATORS = re.compile(r"[-_.]+")
# Visible ASCII only: h11 already refuses whitespace and controls in a request target.
_TARGET_CHARS = re.compile(r"[\x21-\x7e]*")


# --- routes -------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexRoot:
    """`/<token>/simple/`: the private index's root page."""


@dataclass(frozen=True)
class ProjectPage:
    """`/<token>/simple/<project>/`. `project` is PEP 503-normalised."""

    project: str


@dataclass(frozen=True)
class PrivateFile:
    """`/<token>/files/<rest>`: `path_and_query` is `/<rest>`, the request target on the
    private origin, query string included, exactly as the child sent it."""

    path_and_query: str


Route: TypeAlias = IndexRoot | ProjectPage | PrivateFile


def normalise_project(name: str) -> str:
    """PEP 503: lower case, every run of `-`, `_` and `.` becomes one `-`."""
    return _NAME_SEPARATORS.sub("-", name).lower()


def parse_request_path(path: str, token: str) -> Route | None:
    """The route for a raw request target (`/<token>/...`, query string included).

    None for everything the index door does not serve: a wrong or missing token,
    a target that is not origin-form, characters outside visible ASCII, `.` or `..`
    segments (also percent-encoded, as in `%2e%2e`), encoded slashes or backslashes
    in a file path, an empty first segment after `files/` (it would read as a host),
    and any other path.
    """
    if not path.startswith("/") or not _TARGET_CHARS.fullmatch(path):
        return None
    raw_path, sep, query = path.partition("?")
    if "#" in path:
        return None
    segments = raw_path[1:].split("/")
    if len(segments) < 2 or not _token_matches(segments[0], token):
        return None
    kind, rest = segments[1], segments[2:]

    if kind == "simple":
        if rest in ([], [""]):
            return IndexRoot()
        if len(rest) == 1 or (len(rest) == 2 and rest[1] == ""):
            name = rest[0]
            if _PROJECT_NAME.fullmatch(name):
                return ProjectPage(project=normalise_project(name))
        return None

    if kind == "files":
        if not rest:
            return None
        if rest != [""] and not _safe_file_segments(rest):
            return None
        return PrivateFile("/" + "/".join(rest) + sep + query)

    return None


def _token_matches(candidate: str, token: str) -> bool:
    if not token:
        return False
    return hmac.compare_digest(candidate.encode("utf-8"), token.encode("utf-8"))


def _safe_file_segments(segments: list[str]) -> bool:
    # A leading empty segment would make `//host/...`: a network-path reference.
    if segments[0] == "":
        return False
    for segment in segments:
        decoded = unquote(segment)
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
            return False
    return True


# --- upstream URLs ------------------------------------------------------------------


def private_project_url(index_url: str, project: str) -> str:
    """The project's page on the private index: `<index_url><project>/`, normalised."""
    return _project_url(index_url, project)


def public_project_url(public_url: str, project: str) -> str:
    """The project's page on the public index: `<public_url><project>/`."""
    return _project_url(public_url, project)


def _project_url(base: str, project: str) -> str:
    if not base.endswith("/"):
        base += "/"
    return f"{base}{normalise_project(project)}/"


# --- links --------------------------------------------------------------------------


def map_link(
    href: str,
    page_url: str,
    private_origin: Origin | None,
    files_prefix: str,
) -> str:
    """Where the child must fetch `href`, a link found on the page at `page_url`.

    `href` is resolved against `page_url` with `urllib.parse.urljoin`. A result on
    `private_origin` (None: nothing is private) becomes
    `files_prefix + path [+ '?' + query] [+ '#' + fragment]`, with `files_prefix` like
    `/<token>/files`; any other result is returned as the absolute URL, fragment kept.
    No character of the path, query or fragment is encoded or decoded.

    Raises ValueError for a link that cannot be parsed (a bad port, a broken IPv6 host).
    """
    resolved = urljoin(page_url, href.strip(" \t\n\r\f"))
    if private_origin is None:
        return resolved
    parts = urlsplit(resolved)
    if not parts.netloc or origin_of(resolved) != private_origin:
        return resolved
    mapped = files_prefix.rstrip("/") + (parts.path or "/")
    if parts.query:
        mapped += "?" + parts.query
    if parts.fragment:
        mapped += "#" + parts.fragment
    return mapped


# --- project page decisions ---------------------------------------------------------


class Decision(enum.Enum):
    """What the index door does with a project page, as `decide` concluded."""

    SERVE_PRIVATE = "serve-private"
    """Serve the private index's page, rewritten."""
    FALLBACK_PUBLIC = "fallback-public"
    """The private index has shown that it does not have the project: ask the public one."""
    FAIL = "fail"
    """Answer 502 with the reason as a one-line plain-text body. Never a fallback."""


@dataclass(frozen=True)
class ProjectDecision:
    """What `decide` concluded; `reason` (one line, no secret) is set for FAIL only."""

    kind: Decision
    reason: str = ""

    @classmethod
    def fail(cls, reason: str) -> ProjectDecision:
        return cls(Decision.FAIL, reason)


def auth_failed_message(index_url: str, advice: str | None = None) -> str:
    """The 502 body line when the private index refuses crane's credentials; `advice`
    says what to do (default: log in again)."""
    return f"authentication to {index_url} failed: {advice or f'run `crane login {index_url}`'}"


def decide(
    private_status: int,
    *,
    index_url: str,
    credentials_proven: bool,
    redirect_location: str | None = None,
    rdepot_not_found_page: bool = False,
    private_origin: Origin | None = None,
    auth_advice: str | None = None,
) -> ProjectDecision:
    """What to do with the private index's final answer to a project page request.

    "Final": `Upstream.get` has already refreshed the token and asked again after a 401,
    and has followed the redirects that stay inside the index.

    - 200: serve it, unless `rdepot_not_found_page` (the "200 Not found" page of old
      Crane/RDepot index server builds), which counts as a 404.
    - 404, 410: fall back to the public index only when `credentials_proven`;
      otherwise fail, since a refused request looks the same.
    - 401, 403: fail with `auth_failed_message(index_url, auth_advice)`.
    - 3xx: fail. This redirect leads to a login page or another origin;
      `redirect_location` only shapes the message.
    - Anything else (5xx, other 4xx, other 2xx, 1xx): fail.

    `private_origin` defaults to the origin of `index_url`. Connection errors and
    timeouts never reach here: the caller uses `fail_for_exception`.
    """
    status = 404 if private_status == 200 and rdepot_not_found_page else private_status
    if status == 200:
        return ProjectDecision(Decision.SERVE_PRIVATE)
    if status in (404, 410):
        if credentials_proven:
            return ProjectDecision(Decision.FALLBACK_PUBLIC)
        answer = "its 200 'Not found' page" if rdepot_not_found_page else str(private_status)
        return ProjectDecision.fail(
            f"{index_url} answered {answer} before crane proved its credentials, "
            "so crane cannot tell a missing project from a refused one; "
            "not falling back to the public index"
        )
    if status in (401, 403):
        return ProjectDecision.fail(auth_failed_message(index_url, auth_advice))
    if 300 <= status < 400:
        reason = _redirect_reason(status, index_url, redirect_location, private_origin)
        return ProjectDecision.fail(reason)
    return ProjectDecision.fail(
        f"{index_url} answered {status}; not falling back to the public index"
    )


def _redirect_reason(
    status: int, index_url: str, location: str | None, private_origin: Origin | None
) -> str:
    where = "elsewhere"
    if location:
        try:
            origin = private_origin if private_origin is not None else origin_of(index_url)
            shown = shown_url(urljoin(index_url, location.strip()))
            same = origin_of(shown) == origin
            where = f"to {shown}" if same else f"to another origin, {shown}"
        except ValueError:
            where = "to an unreadable location"
    return (
        f"{index_url} answered {status}, a redirect {where} (a login page?); "
        "not following it and not falling back to the public index"
    )


def fail_for_exception(index_url: str, exc_description: str) -> str:
    """The 502 body line for a private index that could not be asked (connection error,
    timeout): the caller's FAIL, never a fallback."""
    text = " ".join(exc_description.split()) or "no details"
    return f"{index_url} could not be reached ({text}); not falling back to the public index"
