"""The index door: a PEP 503/691 index at `/<token>/simple/` that is private-first.

For each project the private index is asked first. Its answer decides (see
`routing.decide`): served (links rewritten to come back through the door), a fallback
to the public index (only a definitive not-found after the credentials were proven
good: a 404/410, or the "200 Not found" page of old Crane/RDepot index server builds),
or a 502 with a plain one-line reason. Errors never fall back: a fallback on an
error would let a public project shadow a private one (dependency confusion).

Files under `/<token>/files/...` are streamed from the private origin with credentials;
the whole body is never held in memory.

With a `provenance.Ledger`, the door records every answer of the private index for a
project page (the guard's lookups included), the pages it served and from which index,
and the private files the child downloaded with the sha256 their page gave.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from crane_launch.config import origin_of, origin_url, shown_url
from crane_launch.errors import AuthError, ConfigError, CraneError, UpstreamError
from crane_launch.proxy import listing, rewrite, routing
from crane_launch.proxy.cache import CacheEntry, CacheWriter, FileCache
from crane_launch.proxy.cached import disk_reply, teed_reply
from crane_launch.proxy.guard import NameStatus, distribution_projects
from crane_launch.proxy.provenance import Ledger
from crane_launch.proxy.server import Reply, Request
from crane_launch.proxy.upstream import Upstream, UpstreamResponse, streamed_reply

__all__ = ["IndexDoor", "IndexSpec"]

log = logging.getLogger(__name__)

_DEFAULT_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
_FILE_REQUEST_HEADERS = ("range", "if-range", "if-none-match", "if-modified-since")
_CONDITIONAL_HEADERS = frozenset({"if-none-match", "if-modified-since", "if-range"})
_PASSED_FILE_STATUSES = frozenset({200, 206, 304, 404, 410, 416})
_PAGE_LIMIT = 64 * 2**20
"""The most of a public project page the audit and the public check read."""


@dataclass(frozen=True)
class IndexSpec:
    """A plain description of the indexes: what the launchers hand to the proxy."""

    url: str
    """The private index's simple URL, normalised (ends with '/')."""
    public_url: str
    """The public index's simple URL, asked only on a proven not-found."""
    probe_path: str | None = None
    """A path on the private origin that proves the credentials, for an index whose
    root page cannot be fetched; None: the index root is probed."""
    auth_advice: str | None = None
    """What to do when the index refuses crane's credentials; None: log in again."""


class IndexDoor:
    """The door as a `server.Door`: answers `/<token>/...` requests for one private index.

    `token` (random when None) is the secret first path segment; `proven` turns True
    once the private index has accepted crane's credentials.
    """

    def __init__(
        self,
        spec: IndexSpec,
        upstream: Upstream,
        *,
        token: str | None = None,
        cache: FileCache | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.spec = spec
        self._cache = cache
        self._ledger = ledger
        self._hashes: dict[str, str] = {}
        """The sha256 the private pages served this run give each file (path and query)."""
        self._unsure: set[str] = set()
        """Files pages gave different hashes this run: served uncached."""
        self._page_of: dict[str, str | None] = {}
        """The project whose private page linked each file (None: more than one)."""
        self._cut: set[str] = set()
        """Files whose download this run was cut for a hash mismatch (path and query)."""
        self.token = token or secrets.token_urlsafe(32)
        self._upstream = upstream
        self._private_origin = origin_of(spec.url)
        self._private_origin_url = origin_url(self._private_origin)
        self._files_prefix = f"/{self.token}/files"
        self._told: set[str] = set()
        self._served: dict[str, bool] = {}
        self.proven = False

    def __repr__(self) -> str:
        return f"IndexDoor({self.spec.url!r}, proven={self.proven})"

    def index_url(self, port: int) -> str:
        """The URL the child uses as its index, for the door served on 127.0.0.1:`port`."""
        return f"http://127.0.0.1:{port}/{self.token}/simple/"

    # -- start-up -------------------------------------------------------------------------

    async def probe(self) -> None:
        """Prove that the private index accepts our credentials.

        Until this succeeds a 404 from the private index is no evidence of absence
        (a server may hide forbidden projects behind 404), so nothing falls back. Only an
        index page proves it: answered 2xx, without leaving the index's path (or the
        probe path), and shaped like a PEP 503/691 page. A login page, a redirect
        elsewhere or an empty body proves nothing. Raises AuthError or UpstreamError with
        a one-line reason.
        """
        targets = [(self.spec.url, self.spec.url)]
        if self.spec.probe_path:
            path = self._private_origin_url + "/" + self.spec.probe_path.lstrip("/")
            targets.insert(0, (path, path))
        last = ""
        for url, within in targets:
            try:
                answer = await self._upstream.get(
                    url, headers={"Accept": _DEFAULT_ACCEPT}, within=within
                )
            except httpx.HTTPError as exc:
                raise UpstreamError(f"{self.spec.url}: {_describe(exc)}") from None
            response = answer.response
            status = response.status_code
            if status in (401, 403):
                raise AuthError(routing.auth_failed_message(self.spec.url, self.spec.auth_advice))
            if 200 <= status < 300:
                reason = rewrite.not_index_shaped(
                    response.content, response.headers.get("content-type", ""), proof=True
                )
                if reason is None:
                    await self._refuse_open_page(url, within)
                    self.proven = True
                    return
                last = f"{self.spec.url}: an authenticated request for {url} got {reason}"
            else:
                last = f"{self.spec.url}: the index answered {status} to an authenticated request"
                if 300 <= status < 400:
                    location = urljoin(url, response.headers.get("location", ""))
                    last += f" (a redirect to {shown_url(location)})"
        raise UpstreamError(last + "; crane cannot prove that the index accepts its login")

    async def _refuse_open_page(self, url: str, within: str) -> None:
        """A page that anybody gets proves nothing of crane's credentials: a wrong token
        would pass the probe, and the 404 such an index then gives for every project
        would send them all to the public index. Raises ConfigError for an index page
        that answers without credentials too."""
        try:
            answer = await self._upstream.get(
                url, headers={"Accept": _DEFAULT_ACCEPT}, within=within, anonymous=True
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.spec.url}: {_describe(exc)}") from None
        response = answer.response
        if not 200 <= response.status_code < 300:
            return
        content_type = response.headers.get("content-type", "")
        if not rewrite.lists_index_entries(response.content, content_type, answer.url):
            return
        raise ConfigError(
            f"{self.spec.url}: {shown_url(url)} answers without credentials too, so it cannot "
            "prove that the index accepts crane's, and a 404 cannot be told from a refusal; "
            "register the index with --probe-path PATH (CRANE_PROBE_PATH), a page only an "
            "authenticated request gets"
        )

    # -- requests -------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Reply:
        if request.method not in ("GET", "HEAD"):
            return Reply(405, [("allow", "GET, HEAD"), ("content-length", "0")])
        route = routing.parse_request_path(request.target, self.token)
        if route is None:
            return Reply(404, [("content-length", "0")])
        try:
            if isinstance(route, routing.ProjectPage):
                return await self._project(request, route)
            if isinstance(route, routing.PrivateFile):
                return await self._file(request, route)
            return await self._root(request)
        except CraneError as exc:
            if isinstance(exc, AuthError) and str(exc) not in self._told:
                # The tool shows only "no matching version" for the 502 that carries it.
                self._told.add(str(exc))
                log.warning("%s", exc)
            return Reply.text(502, f"crane: {exc}\n")

    async def _root(self, request: Request) -> Reply:
        try:
            answer = await self._upstream.get(
                self.spec.url, headers={"Accept": request.header("accept") or _DEFAULT_ACCEPT}
            )
        except httpx.HTTPError as exc:
            return _bad_gateway(f"{self.spec.url}: {_describe(exc)}")
        response = answer.response
        if response.status_code != 200:
            return _bad_gateway(f"{self.spec.url}: the index answered {response.status_code}")
        content_type = response.headers.get("content-type", "text/html")
        try:
            body = rewrite.rewrite_root_page(
                response.content,
                content_type,
                answer.url,
                self._private_origin,
                self._files_prefix,
                simple_prefix=f"/{self.token}/simple",
            )
        except rewrite.PageError as exc:
            return _bad_gateway(f"{answer.url}: {exc}")
        return _page_reply(content_type, body)

    async def _project(self, request: Request, route: routing.ProjectPage) -> Reply:
        accept = request.header("accept") or _DEFAULT_ACCEPT
        decision, answer = await self._ask(route.project, accept, request.header("user-agent"))
        if decision.kind is routing.Decision.SERVE_PRIVATE and answer is not None:
            log.debug("project %s: private", route.project)
            content_type = answer.response.headers.get("content-type", "")
            if self._ledger is not None:
                self._ledger.page(
                    route.project, source="private", index=self.spec.url, url=answer.url
                )
            if self._cache is not None or self._ledger is not None:
                links = rewrite.file_links(
                    answer.response.content, content_type, answer.url, self._private_origin
                )
                hashes = {key: digest for key, digest in links.items() if digest is not None}
                self._record_hashes(route.project, hashes)
                self._record_links(route.project, links)
            return self._rewritten(answer.response.content, content_type, answer.url)
        if decision.kind is routing.Decision.FALLBACK_PUBLIC:
            log.debug("project %s: public", route.project)
            return await self._public(route, accept)
        return _bad_gateway(decision.reason)

    def _record_links(self, project: str, links: dict[str, str | None]) -> None:
        """Remember which project's page linked each file, for the ledger: a file whose
        name could be two projects' (`foo-2-1.0.tar.gz`) is the linking page's. As with
        hashes, a page speaks only for files its name allows; a file two pages claim is
        nobody's."""
        for key in links:
            name = unquote(key.partition("?")[0].rsplit("/", 1)[-1])
            if project not in distribution_projects(name):
                continue
            known = self._page_of.setdefault(key, project)
            if known != project:
                self._page_of[key] = None

    def _record_hashes(self, project: str, hashes: dict[str, str]) -> None:
        """Remember the hashes `project`'s page gives its own files: a page speaks for the
        files its file names say are its project's, never for another project's (a page
        could otherwise make the cache serve one project's bytes for another's file). A
        file two pages give different hashes has none this run."""
        for key, digest in hashes.items():
            name = unquote(key.partition("?")[0].rsplit("/", 1)[-1]).removesuffix(".metadata")
            if key in self._unsure or project not in distribution_projects(name):
                continue
            known = self._hashes.setdefault(key, digest)
            if known != digest:
                del self._hashes[key]
                self._unsure.add(key)

    async def _ask(
        self, project: str, accept: str, user_agent: str | None = None
    ) -> tuple[routing.ProjectDecision, UpstreamResponse | None]:
        """The private index's answer for `project`, decided; remembered for the guard
        and, with a ledger, recorded there."""
        decision, answer = await self._decide(project, accept, user_agent)
        if self._ledger is not None:
            kinds = {
                routing.Decision.SERVE_PRIVATE: "served",
                routing.Decision.FALLBACK_PUBLIC: "absent",
            }
            verdict = kinds.get(decision.kind, "error")
            status = answer.response.status_code if answer is not None else None
            reason = decision.reason if verdict == "error" else ""
            if verdict == "absent" and status == 200:
                reason = "the index's own 'Not found' page (Crane/RDepot)"
            self._ledger.private_answer(
                project,
                index=self.spec.url,
                url=answer.url
                if answer is not None
                else routing.private_project_url(self.spec.url, project),
                status=status,
                verdict=verdict,  # type: ignore[arg-type]
                proven=self.proven,
                reason=reason,
            )
        return decision, answer

    async def _decide(
        self, project: str, accept: str, user_agent: str | None
    ) -> tuple[routing.ProjectDecision, UpstreamResponse | None]:
        url = routing.private_project_url(self.spec.url, project)
        headers = {"Accept": accept}
        if user_agent:
            # devpi adds a "refresh mirror links" form to the HTML page of a mirrored
            # project for any client that does not look like an installer.
            headers["User-Agent"] = user_agent
        try:
            answer = await self._upstream.get(url, headers=headers, within=self.spec.url)
        except httpx.HTTPError as exc:
            reason = routing.fail_for_exception(self.spec.url, _describe(exc))
            return routing.ProjectDecision.fail(reason), None
        response = answer.response
        content_type = response.headers.get("content-type", "")
        rdepot_not_found_page = rewrite.is_rdepot_not_found_page(
            response.status_code, content_type, response.content
        )
        if response.status_code in (404, 410) and answer.url != url:
            # Only the project's own page answering 404 means "not here": a redirect
            # chain that ends in a 404 (a login flow, a moved index) is an error.
            reason = (
                f"{self.spec.url} answered {response.status_code} for {project} after a "
                f"redirect to {shown_url(answer.url)}; not falling back to the public index"
            )
            return routing.ProjectDecision.fail(reason), None
        if response.status_code == 200 and not rdepot_not_found_page:
            shape = rewrite.not_index_shaped(response.content, content_type)
            if shape is not None:
                reason = (
                    f"{self.spec.url} answered 200 for {project} with {shape}; "
                    "not taking it for the project's page"
                )
                return routing.ProjectDecision.fail(reason), None
        if response.status_code in (404, 410) or rdepot_not_found_page:
            await self._prove_quietly()
        # `Upstream.get` has refreshed the token and retried after a 401 already.
        decision = routing.decide(
            response.status_code,
            credentials_proven=self.proven,
            redirect_location=response.headers.get("location"),
            private_origin=self._private_origin,
            rdepot_not_found_page=rdepot_not_found_page,
            index_url=self.spec.url,
            auth_advice=self.spec.auth_advice,
        )
        if decision.kind is not routing.Decision.FAIL:
            self._served[project] = decision.kind is routing.Decision.SERVE_PRIVATE
        return decision, answer

    @property
    def private_url(self) -> str:
        """The private index this door stands for (what the guard names in its refusals)."""
        return self.spec.url

    async def private_versions(self, project: str) -> tuple[NameStatus, frozenset[str], str]:
        """`project_status` with the versions the private index's page offers (for
        `crane audit`); the reason says why the status is UNKNOWN."""
        decision, answer = await self._ask(project, _DEFAULT_ACCEPT)
        if decision.kind is routing.Decision.FAIL:
            return NameStatus.UNKNOWN, frozenset(), decision.reason
        if decision.kind is routing.Decision.FALLBACK_PUBLIC or answer is None:
            return NameStatus.ABSENT, frozenset(), ""
        content_type = answer.response.headers.get("content-type", "")
        return _versions(answer.response.content, content_type, project, shown_url(answer.url))

    async def public_versions(self, project: str) -> tuple[NameStatus, frozenset[str], str]:
        """Whether the public index has `project`, and its versions (for `crane audit`):
        a 200 page is SERVED, a 404/410 ABSENT, anything else UNKNOWN."""
        status, body, content_type, why = await self._public_page(project)
        if status is None:
            return NameStatus.UNKNOWN, frozenset(), why
        if status in (404, 410):
            return NameStatus.ABSENT, frozenset(), ""
        if status != 200:
            return NameStatus.UNKNOWN, frozenset(), f"the public index answered {status}"
        return _versions(body, content_type, project, "the public index's page")

    async def _public_page(self, project: str) -> tuple[int | None, bytes, str, str]:
        """The public index's page of `project`, asked without credentials and read up to
        `_PAGE_LIMIT`: (status, body, content type, why not); status None: no answer."""
        url = routing.public_project_url(self.spec.public_url, project)
        try:
            answer = await self._upstream.get(
                url, headers={"Accept": _DEFAULT_ACCEPT}, anonymous=True, stream=True
            )
        except httpx.HTTPError as exc:
            return None, b"", "", _describe(exc)
        response = answer.response
        body = bytearray()
        try:
            if response.status_code == 200:
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _PAGE_LIMIT:
                        limit = _PAGE_LIMIT // 2**20
                        return None, b"", "", f"its page is larger than {limit} MiB"
        except httpx.HTTPError as exc:
            return None, b"", "", _describe(exc)
        finally:
            await answer.aclose()
        return response.status_code, bytes(body), response.headers.get("content-type", ""), ""

    async def listed_projects(self) -> list[str]:
        """The projects the private index's root page lists (for `crane audit
        --private-names`). Raises UpstreamError when the index gives no such list."""
        try:
            answer = await self._upstream.get(
                self.spec.url, headers={"Accept": _DEFAULT_ACCEPT}, within=self.spec.url
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.spec.url}: {_describe(exc)}") from None
        response = answer.response
        if response.status_code != 200:
            raise UpstreamError(
                f"{self.spec.url}: the index answered {response.status_code} for its list of "
                "projects"
            )
        content_type = response.headers.get("content-type", "")
        try:
            return listing.listed_projects(response.content, content_type)
        except rewrite.PageError as exc:
            raise UpstreamError(f"{self.spec.url}: {exc}") from None

    async def public_has(self, project: str) -> bool | None:
        """Whether the public index has `project` (a page; None: it could not tell). Asked
        for a project the private index served, for the run's provenance."""
        if not self.spec.public_url:
            return None
        status, body, content_type, _why = await self._public_page(project)
        if status in (404, 410):
            return False
        if status == 200 and rewrite.not_index_shaped(body, content_type) is None:
            return True
        return None

    async def project_status(self, project: str) -> tuple[NameStatus, str]:
        """Whether the private index serves `project` (normalised), by the door's own rules;
        a page the door has already decided on this run is not asked for again."""
        served = self._served.get(project)
        if served is None:
            decision, _answer = await self._ask(project, _DEFAULT_ACCEPT)
            if decision.kind is routing.Decision.FAIL:
                return NameStatus.UNKNOWN, decision.reason
            served = decision.kind is routing.Decision.SERVE_PRIVATE
        return (NameStatus.SERVED if served else NameStatus.ABSENT), ""

    async def _prove_quietly(self) -> None:
        """Probe once more if the credentials are not proven yet: a not-found is only
        evidence of absence once they are. A failed probe leaves `proven` False."""
        if self.proven:
            return
        try:
            await self.probe()
        except CraneError as exc:
            log.debug("probe failed: %s", exc)

    async def _public(self, route: routing.ProjectPage, accept: str) -> Reply:
        url = routing.public_project_url(self.spec.public_url, route.project)
        try:
            # Anonymous: the public index gets no credentials, even where it shares the
            # private origin or redirects there.
            answer = await self._upstream.get(url, headers={"Accept": accept}, anonymous=True)
        except httpx.HTTPError as exc:
            return _bad_gateway(f"public index {self.spec.public_url}: {_describe(exc)}")
        response = answer.response
        if response.status_code in (404, 410):
            return Reply(404, [("content-length", "0")])
        if response.status_code != 200:
            return _bad_gateway(
                f"public index {self.spec.public_url} answered {response.status_code}"
            )
        if self._ledger is not None:
            self._ledger.page(
                route.project, source="public", index=self.spec.public_url, url=answer.url
            )
        # Public pages are rewritten too: their links become absolute so that the child
        # fetches public files directly, never through the door.
        return self._rewritten(
            response.content, response.headers.get("content-type", ""), answer.url, private=False
        )

    def _rewritten(
        self, body: bytes, content_type: str, page_url: str, *, private: bool = True
    ) -> Reply:
        # A public page never points the child at private files: its links stay absolute.
        origin = self._private_origin if private else None
        try:
            out = rewrite.rewrite_page(body, content_type, page_url, origin, self._files_prefix)
        except rewrite.PageError as exc:
            return _bad_gateway(f"{page_url}: {exc}")
        return _page_reply(content_type, out)

    async def _file(self, request: Request, route: routing.PrivateFile) -> Reply:
        url = self._private_origin_url + route.path_and_query
        headers = {
            name: value
            for name in _FILE_REQUEST_HEADERS
            if (value := request.header(name)) is not None
        }
        headers["Accept-Encoding"] = request.header("accept-encoding") or "identity"
        cache = self._cache if request.method in ("GET", "HEAD") else None
        key = route.path_and_query
        digest = self._hashes.get(key) if cache is not None else None
        stored: CacheEntry | None = None

        def cut() -> None:
            self._cut.add(key)

        if cache is not None:
            hit, stored = await self._look_up(cache, request, url, digest, headers, cut=cut)
            if hit is not None:
                self._note_file(
                    request, url, key, digest, size=stored.size if stored else None, cached=True
                )
                return hit
        whole = "range" not in headers
        if cache is not None and digest is not None and request.method == "GET" and not whole:
            range_header = headers["range"].replace(" ", "").lower()
            if key in self._cut or range_header == "bytes=0-":
                # A resume after a cut download, or a range that is the whole file: the
                # whole file, verified, so that no unverified byte completes a download
                # (a 200 to a range request is allowed; the tool starts over).
                headers.pop("range")
                headers.pop("if-range", None)
                whole = True
        try:
            answer = await self._upstream.get(
                url, method=request.method, headers=headers, stream=True, follow_foreign=True
            )
        except httpx.HTTPError as exc:
            return _bad_gateway(f"{self.spec.url}: {_describe(exc)}")
        response = answer.response
        status = response.status_code
        asked_conditionally = any(request.header(name) for name in _CONDITIONAL_HEADERS)
        if cache is not None and stored is not None and status == 304 and not asked_conditionally:
            await answer.aclose()
            cache.hit(stored.size)
            self._note_file(request, url, key, digest, size=stored.size, cached=True)
            return disk_reply(request, stored, cache, cut)
        if status not in _PASSED_FILE_STATUSES:
            await answer.aclose()
            if status in (401, 403):
                message = routing.auth_failed_message(self.spec.url, self.spec.auth_advice)
                return _bad_gateway(message)
            return _bad_gateway(f"{self.spec.url}: a file request was answered {status}")
        if status == 200:  # a range (206) is no download: uv reads metadata so
            length = response.headers.get("content-length")
            size = int(length) if length and length.isascii() and length.isdigit() else None
            self._note_file(request, url, key, self._hashes.get(key), size=size, cached=False)
        if cache is not None and request.method == "GET" and status == 200 and whole:
            cache.miss()
            writer = self._writer_for(cache, response, url, digest)
            if writer is not None:
                return teed_reply(response, writer, shown_url(url), cut)
        return streamed_reply(response)

    def _note_file(
        self,
        request: Request,
        url: str,
        key: str,
        digest: str | None,
        *,
        size: int | None,
        cached: bool,
    ) -> None:
        """Record a private file the child downloads whole (a GET without a range: a
        HEAD or a range is no download), as a file of the project whose page linked it."""
        if self._ledger is None or request.method != "GET" or request.header("range"):
            return
        linked = self._page_of.get(key)
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        self._ledger.file(
            (linked,) if linked else distribution_projects(name),
            source="private",
            index=self.spec.url,
            url=url,
            sha256=digest,
            sha256_from="index page" if digest else None,
            size=size,
            from_cache=cached,
        )

    async def _look_up(
        self,
        cache: FileCache,
        request: Request,
        url: str,
        digest: str | None,
        headers: dict[str, str],
        *,
        cut: Callable[[], None],
    ) -> tuple[Reply | None, CacheEntry | None]:
        """A reply from the cache for a file whose page gave its hash; for a file without
        one, its stored entry, with the validators that ask the index whether it still
        holds (added to `headers`)."""
        # Bytes as the index holds them: what a hash or a later 304 speaks of.
        headers["Accept-Encoding"] = "identity"
        try:
            if digest is not None:
                stored = await asyncio.to_thread(cache.lookup, digest)
            else:
                stored = await asyncio.to_thread(cache.lookup_url, url)
        except OSError as exc:  # a cache that cannot be read: the run goes on without it
            log.debug("cache: lookup failed (%s)", exc.strerror or exc)
            return None, None
        if digest is not None:
            if stored is None:
                return None, None
            cache.hit(stored.size)
            return disk_reply(request, stored, cache, cut), stored
        if stored is not None and not set(headers) & _CONDITIONAL_HEADERS:
            if stored.etag:
                headers["If-None-Match"] = stored.etag
            if stored.last_modified:
                headers["If-Modified-Since"] = stored.last_modified
        return None, stored

    def _writer_for(
        self,
        cache: FileCache,
        response: httpx.Response,
        url: str,
        digest: str | None,
    ) -> CacheWriter | None:
        """Where a whole, unencoded 200 answer goes in the cache; None when it cannot."""
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            return None
        length = response.headers.get("content-length")
        if (
            length is not None
            and length.isascii()
            and length.isdigit()
            and int(length) > cache.max_size
        ):
            return None
        return cache.writer(
            sha256=digest,
            url=url,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            content_type=response.headers.get("content-type"),
        )


def _versions(
    body: bytes, content_type: str, project: str, where: str
) -> tuple[NameStatus, frozenset[str], str]:
    """SERVED with the versions a project page offers; UNKNOWN when it is no page."""
    try:
        return NameStatus.SERVED, listing.project_versions(body, content_type, project), ""
    except rewrite.PageError as exc:
        return NameStatus.UNKNOWN, frozenset(), f"{where}: {exc}"


def _page_reply(content_type: str, body: bytes) -> Reply:
    return Reply(
        200,
        [
            ("content-type", content_type or "text/html"),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
        ],
        body,
    )


def _bad_gateway(reason: str) -> Reply:
    log.warning("%s", reason)
    return Reply.text(502, reason + "\n")


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "the index did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect to the index"
    return f"request failed ({type(exc).__name__})"
