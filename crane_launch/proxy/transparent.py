"""The transparent door: an HTTP forward proxy that authenticates to private hosts.

For tools that record index URLs in lock files (poetry, uv projects) the URLs must stay
the real ones, so instead of an index door the child gets this proxy in HTTP(S)_PROXY:

- Every request and CONNECT must carry `Proxy-Authorization: Basic crane:<token>`
  (407 otherwise): another local user cannot borrow crane's credentials.
- CONNECT to a private origin: 200, then TLS with a leaf certificate minted by crane's
  short-lived CA, and HTTP/1.1 inside, forwarded to the real host with the bearer token.
  Only GET and HEAD go to a private origin. Nothing is rewritten.
- With a `Guard` (every run since design section 10): CONNECT to any other host is
  intercepted the same way and each request inside, like each absolute-form `http://`
  request, passes the guard's rule before it is forwarded without credentials, method,
  headers and body as the child sent them. A refused request gets a 403 whose body
  names the project and the reason.
- Hosts listed as pass-through, and every host when there is no guard, get a blind byte
  tunnel (through the user's own upstream proxy when crane's environment names one):
  the child verifies the real certificate, and the guard sees nothing of them.
- With a `provenance.Ledger`, every project page and distribution file the child got
  through the door is recorded with the index it came from; a whole distribution file
  is hashed (sha256) as it streams to the child.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.message
import hashlib
import hmac
import logging
import secrets
import ssl
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Callable
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from crane_launch.config import Origin, origin_of, origin_url
from crane_launch.proxy.guard import Guard, Refusal, distribution_projects, requested_page
from crane_launch.proxy.provenance import FileRecord, Ledger, Source
from crane_launch.proxy.server import Reply, Request, serve_h11
from crane_launch.proxy.upstream import (
    CONTENT_HEADERS,
    Upstream,
    cookieless,
    end_to_end,
    streamed_reply,
)

__all__ = ["TransparentDoor"]

log = logging.getLogger(__name__)

_PASSED_RESPONSE_HEADERS = (*CONTENT_HEADERS, "location", "vary", "date", "expires")
_FORWARDED_REQUEST_HEADERS = (
    "accept",
    "accept-encoding",
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "user-agent",
    "cache-control",
)
_PIPE_CHUNK = 256 * 1024


class TransparentDoor:
    """The door as a `server.Door`: an authenticating forward proxy.

    `privates` maps each private origin to its `Upstream`; `leaf_context(host)` gives the
    TLS server context for an intercepted private host. `password` (random when None) is
    what the child must send as `Proxy-Authorization: Basic crane:<password>`.
    """

    def __init__(
        self,
        privates: dict[Origin, Upstream],
        leaf_context: Callable[[str], ssl.SSLContext],
        *,
        guard: Guard | None = None,
        pass_through: frozenset[str] = frozenset(),
        password: str | None = None,
        public_client: httpx.AsyncClient | None = None,
        ledger: Ledger | None = None,
        private_indexes: dict[Origin, str] | None = None,
    ) -> None:
        self._privates = privates
        self._ledger = ledger
        self._private_indexes = private_indexes or {}
        self._leaf_context = leaf_context
        self._guard = guard
        self._pass_through = frozenset(host.lower() for host in pass_through)
        self.password = password or secrets.token_urlsafe(32)
        self._given_public = public_client
        self._made_public: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"TransparentDoor({sorted(origin.host for origin in self._privates)})"

    def proxy_url(self, port: int) -> str:
        """The child's HTTP(S)_PROXY for the door served on 127.0.0.1:`port`."""
        return f"http://crane:{self.password}@127.0.0.1:{port}"

    async def aclose(self) -> None:
        client = self._given_public or self._made_public
        if client is not None:
            await client.aclose()

    @property
    def _public(self) -> httpx.AsyncClient:
        """The client for everything but the private indexes, made on first use (its CA
        bundle costs 15 ms; many runs never leave the private index)."""
        if self._given_public is not None:
            return self._given_public
        if self._made_public is None:
            self._made_public = httpx.AsyncClient(
                trust_env=True,
                cookies=cookieless(),
                follow_redirects=False,
                timeout=httpx.Timeout(60.0, connect=10.0),
            )
        return self._made_public

    def _authorised(self, request: Request) -> bool:
        value = request.header("proxy-authorization") or ""
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            _user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(unquote(password).encode(), self.password.encode())

    async def __call__(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply.text(
                407,
                "crane: proxy authentication required",
                [("proxy-authenticate", 'Basic realm="crane"')],
            )
        if request.method == "CONNECT":
            return self._connect(request.target)
        if request.target.startswith("http://"):
            return await self._route(request, request.target)
        return Reply.text(400, "crane: this proxy takes CONNECT or absolute http:// URLs")

    # -- CONNECT ----------------------------------------------------------------------------

    def _connect(self, authority: str) -> Reply:
        host, _, port_text = authority.rpartition(":")
        host = host.strip("[]").lower()
        try:
            port = int(port_text)
        except ValueError:
            return Reply.text(400, "crane: CONNECT needs host:port")
        origin = Origin("https", host, port)
        if origin in self._privates or (self._guard is not None and host not in self._pass_through):

            async def intercept(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leftover: bytes
            ) -> None:
                await self._intercept(origin, reader, writer, leftover)

            return Reply(200, [], takeover=intercept)

        async def tunnel(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leftover: bytes
        ) -> None:
            await _blind_tunnel(host, port, reader, writer, leftover)

        return Reply(200, [], takeover=tunnel)

    async def _intercept(
        self,
        origin: Origin,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        leftover: bytes,
    ) -> None:
        if leftover:
            # The client sent its TLS hello before our 200: h11 holds those bytes, and
            # the TLS layer cannot be fed them. No index client does this.
            log.debug("CONNECT with early data; closing")
            return
        base = origin_url(origin)

        async def inner(request: Request) -> Reply:
            if not request.target.startswith("/"):
                return Reply.text(400, "crane: bad request target")
            return await self._route(request, base + request.target)

        try:
            await writer.start_tls(self._leaf_context(origin.host))
        except ssl.SSLError as exc:
            # The child refused crane's certificate: it was not given crane's CA bundle,
            # or it pins the host's own certificate (list such a host as pass-through).
            log.warning(
                "the child refused crane's certificate for %s (%s); if it pins that host's "
                "own certificate, list the host in CRANE_PASS_THROUGH",
                origin.host,
                exc.reason or type(exc).__name__,
            )
            return
        except (ConnectionError, OSError):
            log.debug("the child hung up before TLS with %s", origin.host)
            return
        with contextlib.suppress(ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            await serve_h11(inner, reader, writer)

    # -- forwarding -------------------------------------------------------------------------

    async def _route(self, request: Request, url: str) -> Reply:
        """A decrypted or plain request for `url`: to a private origin with credentials,
        anywhere else through the guard's rule."""
        upstream = self._privates.get(origin_of(url))
        if upstream is not None:
            if request.method not in ("GET", "HEAD"):
                return Reply.text(405, "crane: only GET and HEAD go to a private index")
            return await self._forward_private(request, url, upstream)
        if self._guard is not None:
            refusal = await self._guard.check(url)
            if refusal is not None:
                return Reply.text(403, f"crane: {refusal.line()}\n")
        return await self._forward_public(request, url)

    async def _forward_private(self, request: Request, url: str, upstream: Upstream) -> Reply:
        headers = {
            name: value
            for name in _FORWARDED_REQUEST_HEADERS
            if (value := request.header(name)) is not None
        }
        headers.setdefault("accept-encoding", "identity")
        try:
            answer = await upstream.get(url, method=request.method, headers=headers, stream=True)
        except httpx.HTTPError as exc:
            return Reply.text(502, f"crane: {url.split('?', maxsplit=1)[0]}: {type(exc).__name__}")
        response = answer.response
        if response.status_code in (401, 403):
            await response.aclose()
            origin = origin_url(origin_of(url))
            return Reply.text(502, f"authentication to {origin} failed: run `crane login` for it")
        reply = streamed_reply(response, _PASSED_RESPONSE_HEADERS)
        index = self._private_indexes.get(origin_of(url), origin_url(origin_of(url)))
        return self._recorded(request, url, reply, "private", index)

    async def _forward_public(self, request: Request, url: str) -> Reply:
        """`request` as the child sent it (method, headers, body), without credentials."""
        headers = [(k, v) for k, v in end_to_end(request.headers) if k != "host"]
        has_body = request.header("content-length") not in (None, "0") or (
            request.header("transfer-encoding") is not None
        )
        content = request.body if has_body and request.body is not None else None
        try:
            outgoing = self._public.build_request(
                request.method, url, headers=headers, content=content
            )
            response = await self._public.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            return Reply.text(502, f"crane: {url.split('?', maxsplit=1)[0]}: {type(exc).__name__}")
        refusal = await self._judge_response(url, response)
        if refusal is not None:
            await response.aclose()
            return Reply.text(403, f"crane: {refusal.line()}\n")
        reply = streamed_reply(response, None)
        return self._recorded(request, url, reply, "public", None)

    def _recorded(
        self, request: Request, url: str, reply: Reply, source: Source, index: str | None
    ) -> Reply:
        """`reply`, recorded in the ledger when it is a project page or a whole
        distribution file the child downloads; such a file is hashed as it streams."""
        # A range (206) or a HEAD is no download (uv reads a wheel's metadata so).
        if (
            self._ledger is None
            or request.method != "GET"
            or reply.status != 200
            or request.header("range")
        ):
            return reply
        page = requested_page(url)
        if page is not None:
            if index is not None and not urlsplit(url).path.startswith(urlsplit(index).path):
                # Another index on the private host (a mirror beside it): not the private
                # index's page, though the host's credentials went with it.
                source, index = "public", None
            page_index = index or urljoin(url.split("?", 1)[0], "..")
            self._ledger.page(page, source=source, index=page_index, url=url)
            return reply
        projects = distribution_projects(unquote(urlsplit(url).path))
        length = dict(reply.headers).get("content-length")
        record = self._ledger.file(
            projects,
            source=source,
            index=index,
            url=url,
            size=int(length) if length and length.isascii() and length.isdigit() else None,
            by_host=source == "private",
        )
        encoded = dict(reply.headers).get("content-encoding", "identity").lower()
        if record is not None and encoded == "identity" and not isinstance(reply.body, bytes):
            reply.body = _HashedBody(reply.body, record)
        return reply

    async def _judge_response(self, url: str, response: httpx.Response) -> Refusal | None:
        """The guard's second look, at what the response says it is: a download that
        names itself (Content-Disposition: a tool saves, and judges, it by that name), and
        a PEP 691 project page at any path (an index need not live under `simple/`)."""
        if self._guard is None:
            return None
        filename = _disposition_filename(response.headers.get("content-disposition", ""))
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("application/vnd.pypi.simple.v1"):
            page = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
            return await self._guard.check(url, page=page)
        if filename:
            return await self._guard.check(url, filename=filename)
        return None


class _HashedBody:
    """A reply body that hashes what it streams; the record gets the digest only when
    the whole body went out."""

    def __init__(self, body: AsyncIterable[bytes], record: FileRecord) -> None:
        self._body = body
        self._record = record

    async def __aiter__(self) -> AsyncIterator[bytes]:
        digest = hashlib.sha256()
        async for chunk in self._body:
            digest.update(chunk)
            yield chunk
        if self._record.sha256 is None:
            self._record.sha256, self._record.sha256_from = digest.hexdigest(), "served bytes"


def _disposition_filename(value: str) -> str | None:
    """The file name a Content-Disposition header gives (`filename*=` or `filename=`)."""
    if not value:
        return None
    message = email.message.Message()
    message["content-disposition"] = value
    name = message.get_filename()
    return name.rsplit("/", 1)[-1] if name else None


def _upstream_proxy(host: str) -> str | None:
    """The user's own HTTPS proxy for `host`, from crane's environment, if any."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https") or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(host, proxies):
        return None
    return proxy


async def _blind_tunnel(
    host: str,
    port: int,
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    leftover: bytes,
) -> None:
    proxy = _upstream_proxy(host)
    try:
        if proxy is None:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 15.0)
        else:
            up_reader, up_writer = await _connect_via(proxy, host, port)
    except (OSError, TimeoutError) as exc:
        log.warning("tunnel to %s:%s failed: %s", host, port, exc.__class__.__name__)
        return
    if leftover:
        up_writer.write(leftover)
    try:
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))
    finally:
        up_writer.close()
        with contextlib.suppress(Exception):
            await up_writer.wait_closed()


async def _connect_via(
    proxy: str, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, parts.port or 8080), 15.0
    )
    lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(pair.encode()).decode())
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15.0)
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        writer.close()
        raise OSError(f"upstream proxy refused CONNECT ({head.splitlines()[0]!r})")
    return reader, writer


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_PIPE_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
