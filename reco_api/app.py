"""The application: routes, the mapping of the client's errors to HTTP, conditional GETs
and the live stream. :func:`create_app` builds it.

The rules a caller sees (they are in the OpenAPI descriptions too):
- ids are non-negative integers and ``n`` is 1..100, else 422 (FastAPI's validation);
- a user without a list of their own (or with an empty one) gets trending instead, flagged ``"fallback": true``,
  unless they ask ``fallback=false``: then 404;
- a missing item list or trending list is a 404;
- Redis down or slow: 503 with Retry-After (the client gives up within its timeouts);
  Redis refusing us (login, ACL, TLS): 503 too, logged as an error, since only an operator
  can fix it; a document this client cannot read (a newer job's format): 502;
- every list answer carries its version as ETag and ``Cache-Control: no-cache``; a matching
  If-None-Match gets 304 without a body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Iterable, Mapping, Optional

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from reco_api import bodies
from reco_api.metrics import CONTENT_TYPE_LATEST, Metrics, MetricsMiddleware
from reco_client import AccessDenied, AsyncRecoClient, IncompatibleDocument, NotFound, RecoError, Settings, Unavailable
from reco_client.model import MAX_ID

log = logging.getLogger("reco_api")
STATIC = Path(__file__).resolve().parent / "static"
RETRY_AFTER_S = "1"
NO_CACHE = {"Cache-Control": "no-cache"}

UserId = Annotated[int, PathParam(ge=0, le=MAX_ID, description="A user id: a non-negative integer.")]
ItemId = Annotated[int, PathParam(ge=0, le=MAX_ID, description="An item id: a non-negative integer.")]
N = Annotated[int, Query(ge=1, le=100, description="How many items, 1 to 100.")]
Fallback = Annotated[bool, Query(description="Without a list of their own, the user gets trending "
                                             "(fallback: true); false: 404 instead.")]

ERRORS = {404: {"model": bodies.Error, "description": "No such list: see the description."},
          422: {"description": "A bad id or n."},
          502: {"model": bodies.Error, "description": "The stored document is of a format this API does not read."},
          503: {"model": bodies.Error, "description": "Redis is unreachable, slow or refuses the API: retry after "
                                                      "Retry-After seconds."}}
CONDITIONAL = {304: {"description": "Not modified: If-None-Match holds the current ETag (the list's version)."}}

router = APIRouter()


def _client(request: Request) -> AsyncRecoClient:
    return request.app.state.client


def _titles(request: Request) -> Mapping[int, str]:
    return request.app.state.titles


def _conditional(request: Request, etag: str, body: Any) -> Response:
    headers = {"ETag": etag, **NO_CACHE}
    if bodies.etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(body, headers=headers)


@router.get("/v1/users/{user_id}/recommendations", response_model=bodies.UserRecommendations,
            responses={**CONDITIONAL, **ERRORS}, summary="A user's top-N recommendations",
            description="The user's list, best first. A user without a list of their own (new, no event "
                        "within the TTL, or an empty list) gets the trending list instead, flagged "
                        "`fallback: true`, with trending's version; with `fallback=false` that is a 404 "
                        "instead. 404 also when the fallback is asked for and there is no trending list yet. "
                        "The ETag is the list's version (a fallback's differs from any list of the user's own).")
async def user_recommendations(request: Request, user_id: UserId, n: N = 10, fallback: Fallback = True):
    rec = await _client(request).recommendations(user_id, n, fallback)
    return _conditional(request, bodies.user_etag(rec), bodies.user_body(rec, _titles(request)))


@router.get("/v1/users/{user_id}/stream", response_class=StreamingResponse, summary="A user's list, live",
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "Server-sent events."}, 422: ERRORS[422]},
            description="Server-sent events: `recommendations` (data: the body of "
                        "`/v1/users/{user_id}/recommendations`, id: its ETag) now and whenever the list changes; "
                        "`missing` (fallback=false and no list, or no trending list) and `unavailable` (Redis "
                        "down) once each, until the list comes back. The server checks the list a few times a "
                        "second. A reconnecting EventSource sends Last-Event-ID and gets only a newer list.")
async def user_stream(request: Request, user_id: UserId, n: N = 10, fallback: Fallback = True):
    return StreamingResponse(_user_events(request, user_id, n, fallback), media_type="text/event-stream",
                             headers={**NO_CACHE, "X-Accel-Buffering": "no"})   # nginx: do not buffer the stream


@router.get("/v1/items/{item_id}/similar", response_model=bodies.SimilarItems,
            responses={**CONDITIONAL, **ERRORS}, summary="An item's most similar items",
            description="Items most often consumed with this one in the current window, best first. 404 when "
                        "the item has no list: no co-occurrence in the window, unlisted, or unknown.")
async def similar(request: Request, item_id: ItemId, n: N = 10):
    found = await _client(request).similar(item_id, n)
    return _conditional(request, bodies.similar_etag(found), bodies.similar_body(found, _titles(request)))


@router.get("/v1/trending", response_model=bodies.TrendingList, responses={**CONDITIONAL, **ERRORS},
            summary="The most consumed items now",
            description="The trending list of the last window, most consumed first; 404 until the job has "
                        "published one.")
async def trending(request: Request, n: N = 10):
    top = await _client(request).trending(n)
    return _conditional(request, bodies.trending_etag(top), bodies.trending_body(top, _titles(request)))


@router.get("/healthz", response_model=bodies.Health, responses={502: ERRORS[502], 503: ERRORS[503]},
            summary="Liveness and Redis reachability",
            description="200 when Redis answers, with the trending list's event time and age (the newest list "
                        "the job published: a list it cannot keep up with ages); 503 when Redis is unreachable.")
async def healthz(request: Request):
    # One read of a small key: reaching Redis and the newest list's age in a round trip.
    try:
        top = await _client(request).trending(1)
    except NotFound:
        return JSONResponse({"status": "ok", "trending_version": None, "trending_event_time_ms": None,
                             "trending_age_s": None}, headers=NO_CACHE)
    age = round(time.time() - top.event_time_ms / 1000, 3)
    return JSONResponse({"status": "ok", "trending_version": top.version, "trending_event_time_ms": top.event_time_ms,
                         "trending_age_s": age}, headers=NO_CACHE)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request):
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def page():
    return FileResponse(STATIC / "index.html", headers=NO_CACHE)


# --- the live stream ------------------------------------------------------------------------

def _sse(event: str, data: Any, event_id: Optional[str] = None) -> str:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _user_events(request: Request, user_id: int, n: int, fallback: bool) -> AsyncIterator[str]:
    """Polls the user's list and sends it when its ETag changes. Polling, not Redis keyspace
    notifications: those need ``notify-keyspace-events`` in the server's configuration and
    a connection per stream, which a managed Redis may not allow; a GET of a small key every
    ``stream_poll_s`` costs Redis microseconds."""
    state = request.app.state
    sent = request.headers.get("last-event-id")   # a reconnecting EventSource: what it already has
    quiet_since = time.monotonic()
    state.metrics.streams.inc()
    try:
        yield "retry: 2000\n\n"                     # the browser reconnects 2 s after a cut
        while not state.stopping and not await request.is_disconnected():
            event = None
            try:
                rec = await state.client.recommendations(user_id, n, fallback)
                etag = bodies.user_etag(rec)
                if etag != sent:
                    event, sent = _sse("recommendations", bodies.user_body(rec, state.titles), etag), etag
            except NotFound as exc:
                if sent != "missing":
                    event, sent = _sse("missing", {"error": "not_found", "detail": str(exc)}), "missing"
            except RecoError as exc:
                _failed(request, exc)
                if sent != "unavailable":            # the list is sent again once Redis is back
                    event, sent = _sse("unavailable", _error_body(exc)), "unavailable"
            if event is None and time.monotonic() - quiet_since > state.keepalive_s:
                event = ": keep-alive\n\n"           # proxies cut connections that stay silent
            if event is not None:
                yield event
                quiet_since = time.monotonic()
            await asyncio.sleep(state.stream_poll_s)
    finally:
        state.metrics.streams.dec()


# --- errors -----------------------------------------------------------------------------------

_FAILURE_KIND = {Unavailable: "unavailable", AccessDenied: "access_denied",
                 IncompatibleDocument: "incompatible_document"}
LOG_EVERY_S = 10.0   # an outage at 1,000 requests/s must not write 1,000 log lines a second


def _failed(request: Request, exc: RecoError) -> None:
    kind = _FAILURE_KIND.get(type(exc), "unavailable")
    request.app.state.metrics.redis_failures.labels(kind).inc()
    now, last_logged = time.monotonic(), request.app.state.last_logged
    if now - last_logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
        last_logged[kind] = now
        # Waiting heals an outage; a refused login or an unreadable format needs an operator.
        log.log(logging.WARNING if kind == "unavailable" else logging.ERROR, "%s (like failures are logged "
                "at most every %.0f s; reco_api_redis_failures counts them all)", exc, LOG_EVERY_S)


def _error_body(exc: RecoError) -> dict:
    # The client's message names the Redis server; the log has it, a caller does not need it.
    if isinstance(exc, IncompatibleDocument):
        return {"error": "incompatible_document", "detail": "the stored list is of a format this API does not read"}
    return {"error": "unavailable", "detail": "the recommendation store is unavailable; retry later"}


async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
    return JSONResponse({"error": "not_found", "detail": str(exc)}, 404, headers=NO_CACHE)


async def _store_failed(request: Request, exc: RecoError) -> JSONResponse:
    _failed(request, exc)
    if isinstance(exc, IncompatibleDocument):
        return JSONResponse(_error_body(exc), 502, headers=NO_CACHE)
    return JSONResponse(_error_body(exc), 503, headers={**NO_CACHE, "Retry-After": RETRY_AFTER_S})


# --- the application ----------------------------------------------------------------------------

def create_app(settings: Settings, cors_origins: Iterable[str] = (), titles: Optional[Mapping[int, str]] = None,
               stream_poll_s: float = 0.25, keepalive_s: float = 15.0) -> FastAPI:
    """The API reading Redis as ``settings`` say. ``cors_origins``: the origins whose pages may
    call it from a browser (none: same origin only). ``titles``: item id -> title, added to
    items when known."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.client = AsyncRecoClient(settings)   # created in the server's event loop, which its pool binds to
        try:
            yield
        finally:
            await app.state.client.close()

    app = FastAPI(title="reco read API", version="1", lifespan=lifespan,
                  description="Recommendations the real-time job keeps in Redis: a user's top-N, an item's "
                              "similar items, trending; and a live stream of a user's list. Read-only.")
    app.state.titles = dict(titles or {})
    app.state.metrics = Metrics()
    app.state.stream_poll_s, app.state.keepalive_s = stream_poll_s, keepalive_s
    app.state.last_logged = {}
    app.state.stopping = False   # set on shutdown (reco_api.server.Server): ends the streams
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(RecoError, _store_failed)
    origins = list(cors_origins)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET"],
                           allow_headers=["If-None-Match", "Last-Event-ID"], expose_headers=["ETag", "Retry-After"],
                           max_age=600)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)   # added last: outermost, sees every answer
    return app
