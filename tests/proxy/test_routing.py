"""The index door's URL space, its link mapping and its private-first decisions."""

from __future__ import annotations

import pytest

from crane_launch.config import Origin, origin_of
from crane_launch.proxy.routing import (
    Decision,
    IndexRoot,
    PrivateFile,
    ProjectDecision,
    ProjectPage,
    Route,
    auth_failed_message,
    decide,
    fail_for_exception,
    map_link,
    normalise_project,
    parse_request_path,
    private_project_url,
    public_project_url,
)

TOKEN = "Zx8_q-3kP0w"
INDEX = "https://crane.example/pypi/simple/"
PRIVATE = Origin("https", "crane.example", 443)
PAGE = "https://crane.example/pypi/simple/demo/"
FILES = f"/{TOKEN}/files"


# --- names and upstream URLs --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("demo", "demo"),
        ("Demo", "demo"),
        ("Friendly-Bard", "friendly-bard"),
        ("FRIENDLY-BARD", "friendly-bard"),
        ("friendly.bard", "friendly-bard"),
        ("friendly_bard", "friendly-bard"),
        ("friendly--bard", "friendly-bard"),
        ("FrIeNdLy-._.-bArD", "friendly-bard"),
        ("zope.interface", "zope-interface"),
    ],
)
def test_normalise_project_follows_pep_503(name: str, normalised: str) -> None:
    assert normalise_project(name) == normalised


@pytest.mark.parametrize(
    ("base", "project", "url"),
    [
        (INDEX, "demo", "https://crane.example/pypi/simple/demo/"),
        (INDEX, "Zope.Interface", "https://crane.example/pypi/simple/zope-interface/"),
        ("https://crane.example/pypi/simple", "demo", "https://crane.example/pypi/simple/demo/"),
    ],
)
def test_project_urls_append_the_normalised_name(base: str, project: str, url: str) -> None:
    assert private_project_url(base, project) == url
    assert public_project_url(base, project) == url


# --- parse_request_path -------------------------------------------------------------

ROUTES: list[tuple[str, Route | None]] = [
    # the three routes
    (f"/{TOKEN}/simple/", IndexRoot()),
    (f"/{TOKEN}/simple", IndexRoot()),
    (f"/{TOKEN}/simple/demo/", ProjectPage("demo")),
    (f"/{TOKEN}/simple/demo", ProjectPage("demo")),
    (f"/{TOKEN}/simple/Zope.Interface/", ProjectPage("zope-interface")),
    (f"/{TOKEN}/simple/demo/?format=json", ProjectPage("demo")),
    (f"/{TOKEN}/files/repo/demo/demo-1.0.tar.gz", PrivateFile("/repo/demo/demo-1.0.tar.gz")),
    (f"/{TOKEN}/files/packages/x.whl?dl=1&b=2", PrivateFile("/packages/x.whl?dl=1&b=2")),
    (f"/{TOKEN}/files/packages/x.whl.metadata", PrivateFile("/packages/x.whl.metadata")),
    (f"/{TOKEN}/files/a//b", PrivateFile("/a//b")),
    (f"/{TOKEN}/files/", PrivateFile("/")),
    (f"/{TOKEN}/files/x?q=../..", PrivateFile("/x?q=../..")),
    # wrong or missing token
    ("/simple/demo/", None),
    ("/", None),
    ("", None),
    (f"/{TOKEN}x/simple/demo/", None),
    (f"/{TOKEN[:-1]}/simple/demo/", None),
    (f"/{TOKEN.upper()}/simple/demo/", None),
    (f"//{TOKEN}/simple/demo/", None),
    (f"/{TOKEN}", None),
    (f"/{TOKEN}/", None),
    # traversal, plain and encoded
    (f"/{TOKEN}/files/../x", None),
    (f"/{TOKEN}/files/repo/../../x", None),
    (f"/{TOKEN}/files/./x", None),
    (f"/{TOKEN}/files/%2e%2e/x", None),
    (f"/{TOKEN}/files/%2E%2E/x", None),
    (f"/{TOKEN}/files/.%2e/x", None),
    (f"/{TOKEN}/files/repo/%2e", None),
    (f"/{TOKEN}/files/..%2fx", None),
    (f"/{TOKEN}/files/..%5cx", None),
    (f"/{TOKEN}/files/a\\..\\x", None),
    (f"/{TOKEN}/files/a%00b", None),
    (f"/{TOKEN}/simple/../files/x", None),
    (f"/{TOKEN}/simple/%2e%2e/", None),
    (f"/{TOKEN}/simple/..", None),
    # a leading empty segment would be read as a host
    (f"/{TOKEN}/files//evil.example/x", None),
    # unknown paths and shapes
    (f"/{TOKEN}/files", None),
    (f"/{TOKEN}/other/demo/", None),
    (f"/{TOKEN}/simple/demo/extra", None),
    (f"/{TOKEN}/simple/demo//", None),
    (f"/{TOKEN}/simple/-demo/", None),
    (f"/{TOKEN}/simple/de mo/", None),
    (f"/{TOKEN}/simple/d%C3%A9mo/", None),
    (f"/{TOKEN}/files/x#frag", None),
    (f"http://127.0.0.1:8080/{TOKEN}/simple/", None),
    (f"/{TOKEN}/files/caf\u00e9.whl", None),
    (f"/{TOKEN}/simple/demo\n", None),
    (f"/{TOKEN}/simple/demo/\n", None),
    (f"/{TOKEN}/files/x.whl\n", None),
    (f"/{TOKEN}/files/x .whl", None),
]


@pytest.mark.parametrize(("target", "route"), ROUTES)
def test_parse_request_path(target: str, route: Route | None) -> None:
    assert parse_request_path(target, TOKEN) == route


@pytest.mark.parametrize("target", ["//simple/", "//simple/demo/", "//files/x", "/x/simple/"])
def test_an_empty_token_never_opens_the_door(target: str) -> None:
    assert parse_request_path(target, "") is None


# --- map_link -----------------------------------------------------------------------

LINKS = [
    # relative and absolute-path links on the private origin
    ("demo-1.0.tar.gz", f"{FILES}/pypi/simple/demo/demo-1.0.tar.gz"),
    ("../../packages/x.whl", f"{FILES}/pypi/packages/x.whl"),
    ("/repo/demo/demo-1.0.tar.gz", f"{FILES}/repo/demo/demo-1.0.tar.gz"),
    ("/packages/x.whl#sha256=ab12", f"{FILES}/packages/x.whl#sha256=ab12"),
    ("/packages/x.whl?a=1&b=2#md5=cd", f"{FILES}/packages/x.whl?a=1&b=2#md5=cd"),
    ("/packages/x.whl.metadata", f"{FILES}/packages/x.whl.metadata"),
    ("  /padded.whl\n", f"{FILES}/padded.whl"),
    ("", f"{FILES}/pypi/simple/demo/"),
    ("#frag", f"{FILES}/pypi/simple/demo/#frag"),
    # no character is encoded or decoded
    ("/repo/a+b~c@d,e;f=g:h!$'()*.whl", f"{FILES}/repo/a+b~c@d,e;f=g:h!$'()*.whl"),
    ("/repo/%41%2Fstays.whl", f"{FILES}/repo/%41%2Fstays.whl"),
    ("/repo/caf\u00e9.whl", f"{FILES}/repo/caf\u00e9.whl"),
    # absolute URLs on the private origin, in any spelling of it
    ("https://crane.example/repo/x.whl", f"{FILES}/repo/x.whl"),
    ("https://CRANE.EXAMPLE/repo/x.whl", f"{FILES}/repo/x.whl"),
    ("HTTPS://crane.example:443/repo/x.whl", f"{FILES}/repo/x.whl"),
    ("https://crane.example:0443/repo/x.whl", f"{FILES}/repo/x.whl"),
    ("https://crane.example:/repo/x.whl", f"{FILES}/repo/x.whl"),
    ("https://user:pw@crane.example/repo/x.whl", f"{FILES}/repo/x.whl"),
    ("//crane.example/repo/x.whl", f"{FILES}/repo/x.whl"),
    ("https://crane.example", f"{FILES}/"),
    # everything else stays absolute and direct
    ("https://files.example/p/x.whl#sha256=ab", "https://files.example/p/x.whl#sha256=ab"),
    ("//files.example/p/x.whl", "https://files.example/p/x.whl"),
    ("http://crane.example/repo/x.whl", "http://crane.example/repo/x.whl"),
    ("https://crane.example:8443/repo/x.whl", "https://crane.example:8443/repo/x.whl"),
    ("https://crane.example.evil.example/x.whl", "https://crane.example.evil.example/x.whl"),
    ("https://crane.example@evil.example/x.whl", "https://crane.example@evil.example/x.whl"),
    ("https://crane.example.:443/x.whl", "https://crane.example.:443/x.whl"),
    ("mailto:owner@crane.example", "mailto:owner@crane.example"),
]


@pytest.mark.parametrize(("href", "mapped"), LINKS)
def test_map_link(href: str, mapped: str) -> None:
    assert map_link(href, PAGE, PRIVATE, FILES) == mapped


@pytest.mark.parametrize("url", ["https://crane.example", "HTTPS://Crane.Example:443/", INDEX])
def test_the_private_origin_of_any_url_on_it_maps_its_links(url: str) -> None:
    assert origin_of(url) == PRIVATE
    assert map_link("/x.whl", PAGE, origin_of(url), FILES) == f"{FILES}/x.whl"


def test_without_a_private_origin_every_link_becomes_absolute() -> None:
    public_page = "https://index.example/simple/demo/"
    assert map_link("../../p/x.whl#sha256=ab", public_page, None, FILES) == (
        "https://index.example/p/x.whl#sha256=ab"
    )


def test_mapped_links_come_back_to_the_same_private_path() -> None:
    # Children send non-ASCII percent-encoded, and a Crane/RDepot index server refuses
    # `%`: such a link cannot
    # come back through any proxy, so only ASCII links are checked here.
    for href, mapped in LINKS:
        if mapped.startswith(FILES + "/") and "%" not in href and href.isascii():
            target = mapped.partition("#")[0]
            route = parse_request_path(target, TOKEN)
            assert isinstance(route, PrivateFile), href
            assert target == FILES + route.path_and_query


@pytest.mark.parametrize("href", ["https://crane.example:99999/x", "http://[::1/x"])
def test_an_unparsable_link_is_a_value_error(href: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        map_link(href, PAGE, PRIVATE, FILES)


# --- decide -------------------------------------------------------------------------

AUTH_FAILED = f"authentication to {INDEX} failed: run `crane login {INDEX}`"


def fail(*fragments: str) -> tuple[Decision, tuple[str, ...]]:
    return Decision.FAIL, fragments


DECISIONS: list[tuple[str, int, dict[str, object], tuple[Decision, tuple[str, ...]]]] = [
    ("200 is served", 200, {}, (Decision.SERVE_PRIVATE, ())),
    ("200 unproven is served", 200, {"credentials_proven": False}, (Decision.SERVE_PRIVATE, ())),
    (
        "old Crane/RDepot 200 Not found, proven",
        200,
        {"rdepot_not_found_page": True},
        (Decision.FALLBACK_PUBLIC, ()),
    ),
    (
        "old Crane/RDepot 200 Not found, unproven",
        200,
        {"rdepot_not_found_page": True, "credentials_proven": False},
        fail("cannot tell a missing project from a refused one", "'Not found' page"),
    ),
    ("404 proven falls back", 404, {}, (Decision.FALLBACK_PUBLIC, ())),
    ("410 proven falls back", 410, {}, (Decision.FALLBACK_PUBLIC, ())),
    (
        "404 unproven fails",
        404,
        {"credentials_proven": False},
        fail("cannot tell a missing project from a refused one", "answered 404"),
    ),
    (
        "410 unproven fails",
        410,
        {"credentials_proven": False},
        fail("cannot tell a missing project from a refused one"),
    ),
    # Upstream.get has refreshed the token and asked again after a first 401 (see
    # test_door's test_a_401_refreshes_the_token_and_retries): a 401 here is final.
    ("401 fails", 401, {}, fail(AUTH_FAILED)),
    ("401 unproven fails", 401, {"credentials_proven": False}, fail(AUTH_FAILED)),
    ("403 fails", 403, {}, fail(AUTH_FAILED)),
    ("403 unproven fails", 403, {"credentials_proven": False}, fail(AUTH_FAILED)),
    (
        "302 to a login page on another origin",
        302,
        {"redirect_location": "https://idp.example/auth?state=s3cret&nonce=n"},
        fail("another origin, https://idp.example/auth", "not falling back"),
    ),
    (
        "302 to the same origin",
        302,
        {"redirect_location": "/login?next=/pypi/"},
        fail("to https://crane.example/login", "not falling back"),
    ),
    ("301 without a location", 301, {}, fail("answered 301", "not falling back")),
    ("303", 303, {"redirect_location": "//evil.example/x"}, fail("another origin")),
    ("307", 307, {"redirect_location": "http://[::1/x"}, fail("unreadable")),
    ("308", 308, {"redirect_location": "https://u:p@idp.example/x"}, fail("idp.example/x")),
    ("304", 304, {}, fail("answered 304")),
    ("500", 500, {}, fail("answered 500", "not falling back")),
    ("502", 502, {}, fail("answered 502")),
    ("503", 503, {}, fail("answered 503")),
    ("400", 400, {}, fail("answered 400")),
    ("405", 405, {}, fail("answered 405")),
    ("429", 429, {}, fail("answered 429")),
    ("204", 204, {}, fail("answered 204")),
    ("206", 206, {}, fail("answered 206")),
    ("100", 100, {}, fail("answered 100")),
]


@pytest.mark.parametrize(
    ("status", "options", "expected"),
    [
        pytest.param(status, options, expected, id=name)
        for name, status, options, expected in DECISIONS
    ],
)
def test_decide(
    status: int, options: dict[str, object], expected: tuple[Decision, tuple[str, ...]]
) -> None:
    arguments: dict[str, object] = {
        "credentials_proven": True,
        "redirect_location": None,
        "rdepot_not_found_page": False,
    }
    arguments.update(options)
    decision = decide(status, index_url=INDEX, **arguments)  # type: ignore[arg-type]
    kind, fragments = expected
    assert decision.kind is kind
    for fragment in fragments:
        assert fragment in decision.reason
    if kind is Decision.FAIL:
        assert decision.reason
        assert "\n" not in decision.reason
        assert "s3cret" not in decision.reason
        assert ":p@" not in decision.reason
    else:
        assert decision.reason == ""


def test_authentication_failure_text_is_exact() -> None:
    assert auth_failed_message(INDEX) == AUTH_FAILED
    for status in (401, 403):
        assert decide(status, index_url=INDEX, credentials_proven=True) == (
            ProjectDecision.fail(AUTH_FAILED)
        )


def test_nothing_but_a_proven_not_found_falls_back() -> None:
    for status in range(100, 600):
        for proven in (True, False):
            for not_found_page in (True, False):
                decision = decide(
                    status,
                    index_url=INDEX,
                    credentials_proven=proven,
                    rdepot_not_found_page=not_found_page,
                )
                missing = status in (404, 410) or (status == 200 and not_found_page)
                assert (decision.kind is Decision.FALLBACK_PUBLIC) == (proven and missing)


@pytest.mark.parametrize(
    "description",
    ["the index did not answer in time", "cannot connect\nto the index", ""],
)
def test_fail_for_exception_is_one_line_and_never_a_fallback(description: str) -> None:
    reason = fail_for_exception(INDEX, description)
    assert reason.startswith(INDEX)
    assert "\n" not in reason
    assert "not falling back" in reason
