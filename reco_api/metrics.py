"""The API's Prometheus metrics (``GET /metrics``), and the middleware that counts requests.

One registry per application, so that tests can build several apps in one process.
Requests are labelled by route template (``/v1/users/{user_id}/recommendations``), never by
raw path: one series per user id would grow without bound.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware"]

# From a cache hit (under a millisecond) to the client's read timeouts (0.5 s, one retry).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("reco_api_requests", "HTTP requests answered, by route template and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("reco_api_request_duration_seconds",
                                 "Time from a request's arrival to its response's start (for a stream: to the "
                                 "stream's start)", ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.redis_failures = Counter("reco_api_redis_failures",
                                      "Redis reads that failed: unavailable (down, timeout), access_denied "
                                      "(login, ACL, TLS), incompatible_document", ["kind"], registry=self.registry)
        self.streams = Gauge("reco_api_streams_open", "Server-sent event streams open", registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (a BaseHTTPMiddleware would add a task per request): counts each response
    at its start, by the route the router matched."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def counting_send(message):
            if message["type"] == "http.response.start":
                self._count(scope, message["status"], start)
            await send(message)
        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            self._count(scope, 500, start)   # Starlette's outermost middleware sends the 500, past this one
            raise

    def _count(self, scope, status: int, start: float) -> None:
        route = scope.get("route")            # set by the router in the shared scope once it matched
        label = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(label, str(status)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - start)
