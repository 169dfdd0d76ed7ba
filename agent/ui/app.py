"""The dashboard's routes: the page, its JSON, the live channel; read-only, behind an optional token.

Pages and JSON are served from the live channel's snapshots (live.py), so a page costs Redis
nothing beyond the one poller of its sweep. Sweep and run ids in URLs go through the same check as
everywhere (``InvalidId``: 400; ``NotFound``: 404), and nothing here writes to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sweepd.queue import bounds
from sweepd.queue.errors import InvalidId, NotFound, RedisUnavailable, SweepdError, UserError
from sweepd.queue.ids import check_id
from sweepd.queue.reads import Reads
from sweepd.queue.views import status_and_runs, status_json

from ..hold.backoff import REDIS_DOWN
from . import data, hosts, importance, pools
from .live import Hub, Source

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "sweepd_ui_token"


def _sweep_source(reads: Reads, sid: str) -> Source:
    def load() -> dict[str, Any]:
        status, runs = status_and_runs(reads, sid)
        return data.sweep_snapshot(status, reads.config(sid), runs)

    return Source(marker=lambda: reads.change_marker(sid), load=load)


def _list_source(reads: Reads) -> Source:
    def marker() -> str:
        ids = reads.sweep_ids()
        return repr([(sid, reads.change_marker(sid)) for sid in ids])

    def load() -> dict[str, Any]:
        rows = []
        for sid in reads.sweep_ids():
            with contextlib.suppress(NotFound):  # deleted between the two reads
                rows.append(data.sweep_list_row(status_json(reads, sid)))
        return {"sweeps": rows}

    return Source(marker=marker, load=load)


def _json_bytes(version: int, payload: bytes) -> Response:
    return Response(payload, media_type="application/json", headers={"X-Snapshot-Version": str(version)})


def _json(content: Any) -> Response:
    """Strict JSON whatever a value is (bounds.dumps: no NaN or Infinity token, which pages cannot parse)."""
    return Response(bounds.dumps(content), media_type="application/json")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def build(reads: Reads, token: str | None = None, hub: Hub | None = None) -> ASGIApp:
    """The dashboard as an ASGI app over ``reads``; with ``token``, every request must carry it."""
    hub = hub or Hub()
    importance_cache: dict[str, tuple[int, dict[str, Any]]] = {}

    def sweep_key(request: Request) -> tuple[str, Callable[[], Source]]:
        sid = check_id(request.path_params["sid"], "sweep id")
        return f"sweep:{sid}", lambda: _sweep_source(reads, sid)

    async def page(request: Request) -> Response:
        if "sid" in request.path_params:
            sid = check_id(request.path_params["sid"], "sweep id")
            await run_in_threadpool(reads.sweep, sid)
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def sweeps(request: Request) -> Response:
        return _json_bytes(*await hub.snapshot("sweeps", lambda: _list_source(reads)))

    async def sweep(request: Request) -> Response:
        return _json_bytes(*await hub.snapshot(*sweep_key(request)))

    async def weights(request: Request) -> Response:
        key, source = sweep_key(request)
        version, _ = await hub.snapshot(key, source)
        cached = importance_cache.get(key)
        if cached is None or cached[0] != version or version == 0:
            snap = hub.channels[key].snapshot if key in hub.channels else {}
            rows = snap.get("runs", [])
            result = await run_in_threadpool(
                importance.importance, snap.get("params", []), [r[9] for r in rows], [r[6] for r in rows]
            )
            cached = (version, result)
            importance_cache[key] = cached
        return _json(cached[1])

    async def history(request: Request) -> Response:
        sid = check_id(request.path_params["sid"], "sweep id")
        rid = check_id(request.path_params["rid"], "run id")

        def read() -> dict[str, Any]:
            if reads.run(rid).sweep_id != sid:
                raise NotFound(f"no run {rid!r} in sweep {sid!r}")
            return data.history_json(rid, reads.history(rid))

        return _json(await run_in_threadpool(read))

    def events(key: str, source: Callable[[], Source]) -> Response:
        return StreamingResponse(
            hub.stream(key, source),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def sweeps_live(request: Request) -> Response:
        return events("sweeps", lambda: _list_source(reads))

    async def sweep_live(request: Request) -> Response:
        key, source = sweep_key(request)
        await run_in_threadpool(reads.sweep, key.split(":", 1)[1])  # no such sweep: 404 before a stream
        return events(key, source)

    async def bad_id(request: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, str(exc))

    async def unavailable(request: Request, exc: Exception) -> Response:
        return _error(503, str(exc))

    async def refused(request: Request, exc: Exception) -> Response:  # sweepd's own errors: no traceback
        return _error(400 if isinstance(exc, UserError) else 500, str(exc))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warm = asyncio.get_running_loop().run_in_executor(None, importance.warm)  # scikit-learn loads in ~1 s
        yield
        await warm
        await hub.close()

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/sweeps/{sid:str}", page),
            Route("/api/sweeps", sweeps),
            Route("/api/live", sweeps_live),
            Route("/api/sweeps/{sid:str}", sweep),
            Route("/api/sweeps/{sid:str}/live", sweep_live),
            Route("/api/sweeps/{sid:str}/importance", weights),
            Route("/api/sweeps/{sid:str}/runs/{rid:str}/history", history),
            *pools.routes(reads),  # each pool's demand: JSON (KEDA's metrics-api), and /metrics
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={
            SweepdError: refused,
            InvalidId: bad_id,
            NotFound: not_found,
            RedisUnavailable: unavailable,
            **dict.fromkeys(REDIS_DOWN, unavailable),
        },
        lifespan=lifespan,
    )
    return TokenGate(app, token) if token else LoopbackOnly(app)


class LoopbackOnly:
    """Without a token: only requests that name this machine by a loopback name (hosts.py), so a
    page of another site whose name was rebound to 127.0.0.1 reads nothing; else 421."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host")
            if not hosts.loopback_host(None if host is None else host.decode("latin-1")):
                body = json.dumps({"error": "this dashboard answers only to 127.0.0.1, localhost or [::1]"})
                await Response(body, status_code=421, media_type="application/json")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TokenGate:
    """Every request (pages, JSON, static files, the live channel) carries the token: as
    ``Authorization: Bearer TOKEN``, in the cookie a first ``?token=TOKEN`` page load set, or as
    ``?token=``; else 401. Compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    def _given(self, scope: Scope) -> tuple[bytes | None, bool]:
        """The token the request carries, and whether it came in the query (then set as a cookie)."""
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            return auth[7:].strip(), False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("token"):
            return query["token"][-1].encode(), True
        cookie: SimpleCookie = SimpleCookie()
        with contextlib.suppress(Exception):
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        if COOKIE in cookie:
            return unquote(cookie[COOKIE].value).encode(), False
        return None, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given, from_query = self._given(scope)
        if given is None or not hmac.compare_digest(given, self.token):
            body = json.dumps({"error": "a valid token is needed (Authorization: Bearer TOKEN, or ?token=)"})
            await Response(body, status_code=401, media_type="application/json")(scope, receive, send)
            return
        await self.app(scope, receive, _set_cookie(send, self.token.decode()) if from_query else send)


def _set_cookie(send: Send, token: str) -> Callable[[Any], Awaitable[None]]:
    """Add the token's cookie (HttpOnly, SameSite=Strict) to the response's headers."""

    async def sending(message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", [])]
            headers.append(
                (b"set-cookie", f"{COOKIE}={quote(token, safe='')}; Path=/; HttpOnly; SameSite=Strict".encode())
            )
            message = {**message, "headers": headers}
        await send(message)

    return sending
