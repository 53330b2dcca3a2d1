"""The read API (reco_api) over HTTP, served by uvicorn, against the stack's Redis (its own
database, 13) holding documents built by flink_jobs.documents: the answers, ETags and 304s,
the fallback and 404 rules, validation, CORS, /metrics, the OpenAPI document, the event
stream, and Redis failures (a closed port, a Redis stopped mid-test, a refused login, a
document of a newer format), which must be 503/502 JSON, never a 500."""

import contextlib
import json
import logging
import queue
import socket
import threading
import time

import httpx
import pytest
import redis
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from flink_jobs import contracts, documents
from flink_jobs.redis_store import VersionedStore
from lab.wait import wait_for
from reco_api.app import create_app
from reco_client import Settings

pytestmark = pytest.mark.integration

USER = {"user_id": 42, "version": 3, "generated_at": 1_000, "event_time": 900, "model_version": 7,
        "items": [{"item_id": 7, "score": 0.8, "reason": "because you liked Casino (1995)"},
                  {"item_id": 9, "score": 0.5, "reason": "close to your taste"}]}
NEIGHBORS = {"item_id": 7, "item_count": 3.0, "event_time": 5_000,
             "neighbors": [{"item_id": 8, "score": 0.5, "co_count": 2.0}]}
TITLES = {7: "Heat (1995)", 8: "Casino (1995)"}
ALLOWED = "http://shop.example"


class _Top:
    t, top = 6_000, ((9, 12), (8, 4))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # nothing listens once the socket is closed


@contextlib.contextmanager
def serve(app):
    """``app`` under uvicorn in a thread, on a socket bound here (no race for the port)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "uvicorn to start", poll_s=0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=10) as client:
            yield client
    finally:
        app.state.stopping = True
        server.should_exit = True
        thread.join(10)
        sock.close()


def make_app(redis_url, **options):
    """The app with its streams polling every 50 ms and a keep-alive every 0.2 s: quick tests,
    and a reader thread that is never blocked long on a silent stream."""
    return create_app(Settings(redis_url=redis_url), stream_poll_s=0.05, keepalive_s=0.2, **options)


def _write(url, *docs):
    store = VersionedStore.from_url(url)
    for key, doc in docs:
        store.upsert(key, doc)


@pytest.fixture
def db(stack):
    """The stack's Redis, database 13 (the job's tests use 0, the client's 15), emptied, with one
    document of each kind."""
    url = stack.redis_url.rsplit("/", 1)[0] + "/13"
    redis.Redis.from_url(url).flushdb()
    _write(url, documents.user_document(USER), documents.similar_document(NEIGHBORS),
           documents.trending_document(_Top()))
    return url


@pytest.fixture
def api(db):
    with serve(make_app(db, cors_origins=[ALLOWED], titles=TITLES)) as client:
        yield client


# --- answers ----------------------------------------------------------------------------------

def test_a_users_list_with_titles_version_and_etag(api):
    r = api.get("/v1/users/42/recommendations")
    assert r.status_code == 200
    assert r.json() == {
        "user_id": 42, "version": 3, "event_time_ms": 900, "generated_at_ms": 1_000, "model_version": 7,
        "fallback": False,
        "items": [{"item_id": 7, "score": 0.8, "reason": "because you liked Casino (1995)", "title": "Heat (1995)"},
                  {"item_id": 9, "score": 0.5, "reason": "close to your taste", "title": None}]}
    assert r.headers["etag"] == '"user-3"' and r.headers["cache-control"] == "no-cache"
    assert [i["item_id"] for i in api.get("/v1/users/42/recommendations?n=1").json()["items"]] == [7]


def test_similar_and_trending(api):
    r = api.get("/v1/items/7/similar")
    assert r.status_code == 200 and r.headers["etag"] == '"similar-5000"'
    assert r.json() == {"item_id": 7, "title": "Heat (1995)", "item_count": 3.0, "version": 5_000,
                        "event_time_ms": 5_000,
                        "neighbors": [{"item_id": 8, "score": 0.5, "co_count": 2.0, "title": "Casino (1995)"}]}
    r = api.get("/v1/trending?n=1")
    assert r.status_code == 200 and r.headers["etag"] == '"trending-6000"'
    assert r.json() == {"items": [{"item_id": 9, "count": 12.0, "title": None}], "version": 6_000,
                        "event_time_ms": 6_000}


def test_a_matching_if_none_match_gets_a_304_and_a_new_version_a_200(api, db):
    url = "/v1/users/42/recommendations"
    for header in ('"user-3"', 'W/"user-3"', '"user-2", "user-3"', "*"):
        r = api.get(url, headers={"If-None-Match": header})
        assert (r.status_code, r.content, r.headers["etag"]) == (304, b"", '"user-3"'), header
    assert api.get(url, headers={"If-None-Match": '"user-2"'}).status_code == 200
    _write(db, documents.user_document({**USER, "version": 4}))
    r = api.get(url, headers={"If-None-Match": '"user-3"'})
    assert (r.status_code, r.json()["version"], r.headers["etag"]) == (200, 4, '"user-4"')
    for path, etag in (("/v1/items/7/similar", '"similar-5000"'), ("/v1/trending", '"trending-6000"')):
        assert api.get(path, headers={"If-None-Match": etag}).status_code == 304


def test_an_unknown_user_gets_trending_flagged_as_a_fallback_with_an_etag_of_its_own(api, db):
    r = api.get("/v1/users/43/recommendations?n=1")
    assert r.status_code == 200
    body = r.json()
    assert body["fallback"] is True and body["version"] == 6_000 and body["generated_at_ms"] is None
    assert body["items"] == [{"item_id": 9, "score": 12.0, "reason": "trending now", "title": None}]
    assert r.headers["etag"] == '"fallback-6000"'
    # The user's first list of their own, even at the very version trending has, is not a 304.
    _write(db, documents.user_document({**USER, "user_id": 43, "version": 6_000}))
    r = api.get("/v1/users/43/recommendations", headers={"If-None-Match": '"fallback-6000"'})
    assert (r.status_code, r.json()["fallback"], r.headers["etag"]) == (200, False, '"user-6000"')
    assert api.get("/v1/users/43/recommendations", headers={"If-None-Match": '"trending-6000"'}).status_code == 200


def test_404_rules(api, db):
    r = api.get("/v1/users/43/recommendations?fallback=false")
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "user 43" in r.json()["detail"]
    assert api.get("/v1/users/42/recommendations?fallback=false").status_code == 200
    assert api.get("/v1/items/8/similar").status_code == 404
    redis.Redis.from_url(db).delete(contracts.TRENDING_KEY)
    for path in ("/v1/trending", "/v1/users/43/recommendations"):   # no trending: no fallback either
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"] == "not_found", path
        assert "trending" in r.json()["detail"]
    r = api.get("/healthz")   # Redis answers: healthy, with no list to date
    assert r.status_code == 200 and r.json()["trending_event_time_ms"] is None


@pytest.mark.parametrize("path", [
    "/v1/users/abc/recommendations", "/v1/users/-1/recommendations", "/v1/users/1.5/recommendations",
    f"/v1/users/{2**63}/recommendations", "/v1/users/42/recommendations?n=0",
    "/v1/users/42/recommendations?n=101", "/v1/users/42/recommendations?n=ten",
    "/v1/users/42/recommendations?fallback=maybe", "/v1/items/-3/similar", "/v1/items/x/similar",
    "/v1/trending?n=0", "/v1/users/-1/stream", "/v1/users/42/stream?n=1000"])
def test_bad_ids_and_n_are_422_json(api, path):
    r = api.get(path)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert r.json()["detail"]


def test_healthz_gives_the_newest_lists_age(api):
    before = time.time()
    r = api.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["trending_version"], body["trending_event_time_ms"]) == ("ok", 6_000, 6_000)
    assert before - 6 - 1 <= body["trending_age_s"] <= time.time() - 6 + 1


def test_the_page_and_its_files(api):
    r = api.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="user-items"' in r.text and "/static/app.js" in r.text
    assert "EventSource" in api.get("/static/app.js").text
    assert api.get("/static/style.css").status_code == 200


# --- CORS, metrics, OpenAPI --------------------------------------------------------------------

def test_cors_allows_the_configured_origin_only(api, db):
    r = api.get("/v1/users/42/recommendations", headers={"Origin": ALLOWED})
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "etag" in r.headers["access-control-expose-headers"].lower()
    r = api.get("/v1/users/42/recommendations", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "if-none-match"}
    r = api.options("/v1/trending", headers={"Origin": ALLOWED, **preflight})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
    assert api.options("/v1/trending", headers={"Origin": "http://evil.example", **preflight}).status_code == 400
    with serve(make_app(db)) as closed:   # no origins configured: same origin only
        assert "access-control-allow-origin" not in closed.get("/v1/trending", headers={"Origin": ALLOWED}).headers


def _samples(client) -> dict:
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_by_route_and_status(api):
    route = "/v1/users/{user_id}/recommendations"
    key = lambda status: ("reco_api_requests_total", (("route", route), ("status", status)))  # noqa: E731
    before = _samples(api)
    for user in (42, 42, 43):
        api.get(f"/v1/users/{user}/recommendations")
    api.get("/v1/users/43/recommendations?fallback=false")
    api.get("/v1/users/42/recommendations", headers={"If-None-Match": '"user-3"'})
    after = _samples(api)
    assert after[key("200")] - before.get(key("200"), 0) == 3
    assert after[key("404")] - before.get(key("404"), 0) == 1
    assert after[key("304")] - before.get(key("304"), 0) == 1
    latency = ("reco_api_request_duration_seconds_count", (("route", route),))
    assert after[latency] - before.get(latency, 0) == 5
    assert not any("42" in dict(labels).get("route", "") for _, labels in after)   # templates, not raw paths


def test_openapi_lists_the_paths_with_summaries_and_models(api):
    doc = api.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths) == {"/v1/users/{user_id}/recommendations", "/v1/users/{user_id}/stream",
                          "/v1/items/{item_id}/similar", "/v1/trending", "/healthz"}
    for path, ops in paths.items():
        assert ops["get"]["summary"], path
    recs = paths["/v1/users/{user_id}/recommendations"]["get"]
    assert "fallback" in recs["description"] and "404" in recs["description"]
    assert recs["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("UserRecommendations")
    assert {"304", "404", "422", "502", "503"} <= set(recs["responses"])
    schemas = set(doc["components"]["schemas"])
    assert {"UserRecommendations", "SimilarItems", "TrendingList", "Health", "Error"} <= schemas


# --- the event stream ---------------------------------------------------------------------------

class Events:
    """A server-sent event stream read in a thread, on a connection of its own: ``next()``
    returns (event, id, data); the first item is ("status", code, content type)."""

    def __init__(self, client, path, headers=None):
        self.queue, self._stop = queue.Queue(), threading.Event()
        self._client = httpx.Client(base_url=client.base_url, timeout=None)
        self._thread = threading.Thread(target=self._read, args=(path, headers or {}), daemon=True)
        self._thread.start()

    def _read(self, path, headers):
        try:
            with self._client.stream("GET", path, headers=headers) as r:
                self.queue.put(("status", r.status_code, r.headers.get("content-type")))
                fields = {}
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.queue.put(("comment", None, line))
                    elif line:
                        name, _, value = line.partition(": ")
                        fields[name] = value
                    elif "event" in fields:
                        self.queue.put((fields["event"], fields.get("id"), json.loads(fields["data"])))
                        fields = {}
        except (httpx.HTTPError, OSError, RuntimeError):
            if not self._stop.is_set():   # closing the client from close() ends the read this way
                raise

    def next(self, timeout=10, skip=("comment",)):
        deadline = time.monotonic() + timeout
        while True:
            item = self.queue.get(timeout=max(0.01, deadline - time.monotonic()))
            if item[0] not in skip:
                return item

    def close(self):
        self._stop.set()
        self._client.close()
        self._thread.join(5)


def test_the_stream_sends_the_list_then_each_new_version_and_resumes_after_last_event_id(api, db):
    events = Events(api, "/v1/users/42/stream?n=1")
    try:
        assert events.next()[:3] == ("status", 200, "text/event-stream; charset=utf-8")
        event, event_id, data = events.next()
        assert (event, event_id, data["version"], len(data["items"])) == ("recommendations", '"user-3"', 3, 1)
        _write(db, documents.user_document({**USER, "version": 4}))
        event, event_id, data = events.next()
        assert (event, event_id, data["version"]) == ("recommendations", '"user-4"', 4)
        wait_for(lambda: _samples(api)[("reco_api_streams_open", ())] == 1, 5, "one open stream")
    finally:
        events.close()
    # A reconnecting EventSource that has version 4 gets nothing until version 5.
    resumed = Events(api, "/v1/users/42/stream", headers={"Last-Event-ID": '"user-4"'})
    try:
        assert resumed.next()[0] == "status"
        assert resumed.next(skip=())[0] == "comment"     # keep-alives, no list
        with pytest.raises(queue.Empty):
            resumed.next(timeout=0.5)
        _write(db, documents.user_document({**USER, "version": 5}))
        assert resumed.next()[2]["version"] == 5
    finally:
        resumed.close()
    wait_for(lambda: _samples(api)[("reco_api_streams_open", ())] == 0, 10, "the streams to close with their clients")


def test_a_stream_for_an_unknown_user_goes_from_trending_to_their_own_list(api, db):
    events = Events(api, "/v1/users/44/stream")
    try:
        events.next()
        event, event_id, data = events.next()
        assert (event, event_id, data["fallback"]) == ("recommendations", '"fallback-6000"', True)
        _write(db, documents.user_document({**USER, "user_id": 44, "version": 10}))
        event, event_id, data = events.next()
        assert (event, event_id, data["fallback"], data["version"]) == ("recommendations", '"user-10"', False, 10)
    finally:
        events.close()
    strict = Events(api, "/v1/users/45/stream?fallback=false")
    try:
        strict.next()
        assert strict.next()[0] == "missing"
    finally:
        strict.close()


# --- Redis failures -----------------------------------------------------------------------------

ENDPOINTS = ("/v1/users/42/recommendations", "/v1/users/42/recommendations?fallback=false", "/v1/items/7/similar",
             "/v1/trending", "/healthz")


def _assert_unavailable(client):
    for path in ENDPOINTS:
        r = client.get(path)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"] == "unavailable"
        assert "127.0.0.1" not in r.text   # where Redis is goes to the log, not to callers


def test_redis_on_a_closed_port_is_503_json_never_500(caplog):
    app = make_app(f"redis://127.0.0.1:{_closed_port()}/0")
    with caplog.at_level(logging.WARNING, logger="reco_api"), serve(app) as client:
        _assert_unavailable(client)
        events = Events(client, "/v1/users/42/stream")
        try:
            events.next()
            assert events.next()[0] == "unavailable"
        finally:
            events.close()
        failures = _samples(client)[("reco_api_redis_failures_total", (("kind", "unavailable"),))]
        assert failures >= len(ENDPOINTS)
        assert not any(labels and dict(labels).get("status") == "500" for _, labels in _samples(client))
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "did not answer" in r.getMessage()]


def test_redis_stopped_mid_test_is_503_then_the_api_recovers(stack, api, db):
    assert api.get("/v1/users/42/recommendations").status_code == 200
    events = Events(api, "/v1/users/42/stream")
    try:
        events.next()
        assert events.next()[0] == "recommendations"
        stack.run("stop", "redis")
        try:
            _assert_unavailable(api)
            assert events.next()[0] == "unavailable"
        finally:
            stack.run("start", "redis")
        # The restarted Redis has no data (no persistence, as in the stack): write it again.
        _write(db, documents.user_document(USER), documents.trending_document(_Top()))
        assert api.get("/v1/users/42/recommendations").status_code == 200
        assert api.get("/healthz").status_code == 200
        # the list again once Redis is back ("missing" first if the stream read before the write)
        event, _, data = events.next(skip=("comment", "missing"))
        assert (event, data["version"]) == ("recommendations", 3)
    finally:
        events.close()


def test_a_refused_login_is_503_and_logged_as_an_error(stack, caplog):
    url = stack.redis_url.replace("redis://", "redis://nobody:wrong-password@").rsplit("/", 1)[0] + "/13"
    with caplog.at_level(logging.WARNING, logger="reco_api"), serve(make_app(url)) as client:
        r = client.get("/v1/trending")
        assert r.status_code == 503 and r.json()["error"] == "unavailable" and r.headers["retry-after"] == "1"
        assert "wrong-password" not in r.text
        assert _samples(client)[("reco_api_redis_failures_total", (("kind", "access_denied"),))] == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "wrong-password" not in errors[0] and "login" in errors[0]


def test_a_document_of_a_newer_format_is_502(api, db, caplog):
    redis.Redis.from_url(db).set(contracts.user_recommendations_key(46), json.dumps({**USER, "format": 99}))
    with caplog.at_level(logging.ERROR, logger="reco_api"):
        r = api.get("/v1/users/46/recommendations")
    assert r.status_code == 502 and r.json()["error"] == "incompatible_document"
    assert any("newer" in rec.getMessage() for rec in caplog.records if rec.levelno == logging.ERROR)
