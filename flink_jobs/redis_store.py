"""Versioned, idempotent writes of JSON documents to Redis.

Redis takes no part in Flink's checkpoints, so after a restore the job replays records
it may already have written. Every write is therefore a compare-and-set on the
document's ``version`` (in one Lua script, atomic on the server): a write with an older
version than the stored one changes nothing, so a key never moves backwards, while the
same version is written again, so that the attempt whose output Kafka committed is the
one Redis keeps (a list's items may differ between attempts; its version never does). Keys come from :mod:`flink_jobs.contracts`; TTL comes from configuration.

Outages: with a :class:`RetryPolicy`, a write that fails on a connection error, a timeout or
an error reply of a passing state (out of memory, loading, a replica without its master, a
busy script: :data:`PASSING_ERRORS`, :data:`PASSING_REPLIES`) is retried (redis-py's
``Retry`` with ``ExponentialBackoff``) until it lands or until the policy's total time is
spent; only then does it raise :class:`RedisUnavailable`. Retrying is safe because every
write is a versioned upsert. A refused login or a missing permission cannot heal by
waiting: it raises :class:`RedisAccessError` at once, naming what the Redis user needs
(:data:`REQUIRED_ACL`); any other error reply (a wrong type, a script error) is raised at
once as it is.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import (AuthenticationError, AuthorizationError, NoPermissionError, NoScriptError,
                              OutOfMemoryError, ReadOnlyError, ResponseError)
from redis.retry import Retry

from flink_jobs.sensitive import redact_url

log = logging.getLogger("reco.redis")
T = TypeVar("T")

# What a Redis ACL user needs for the store (tests/integration/test_redis_outage.py checks
# it is enough): the Lua script runs by EVALSHA, is loaded with SCRIPT LOAD when the server
# does not know it (a restarted server forgets its scripts), and calls GET and SET itself;
# get() reads with GET. Keys: the contracts' reco:* only.
REQUIRED_ACL = "~reco:* resetchannels -@all +get +set +evalsha +script|load"

# Errors that waiting can heal: the server is down, restarting (BusyLoadingError is a
# ConnectionError) or slow; of the error replies, only those of a passing state (below).
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, socket.timeout, ResponseError)
# Error replies of a server in a state that passes (a task failing on them would restart every
# few seconds instead of waiting): out of memory until keys expire or get evicted (OOM), a
# replica not promoted yet (READONLY) or cut off from its master (MASTERDOWN), too few replicas
# for min-replicas-to-write, a script running too long (BUSY), a slot being moved. redis-py
# has classes for the first two; the others come as plain ResponseErrors.
PASSING_ERRORS = (OutOfMemoryError, ReadOnlyError)
PASSING_REPLIES = frozenset({"MASTERDOWN", "NOREPLICAS", "BUSY", "TRYAGAIN"})


class RedisUnavailable(RuntimeError):
    """Redis did not take a write within the retry policy's total time."""


class RedisAccessError(RuntimeError):
    """Redis refused the login or the command; retrying cannot help."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff from ``base_ms`` doubling up to ``cap_ms`` between attempts, for
    at most ``max_total_ms`` in all (0: a single attempt). The total includes the attempts
    themselves; the last one may overrun it by one socket timeout."""

    base_ms: int = 100
    cap_ms: int = 5_000
    max_total_ms: int = 60_000

    def __post_init__(self):
        if self.base_ms <= 0 or self.cap_ms < self.base_ms or self.max_total_ms < 0:
            raise ValueError(f"invalid retry policy {self}: need 0 < base_ms <= cap_ms and max_total_ms >= 0")


class _DeadlineBackoff(ExponentialBackoff):
    """redis-py's exponential backoff, never sleeping past the current call's deadline."""

    def __init__(self, cap: float, base: float, clock: Callable[[], float]):
        super().__init__(cap=cap, base=base)
        self.clock, self.deadline = clock, float("inf")

    def compute(self, failures: int) -> float:
        return max(0.0, min(super().compute(failures), self.deadline - self.clock()))


def _passing(error: ResponseError) -> bool:
    """Whether an error reply says the server is in a passing state (a pipeline puts its own
    text in front of the reply)."""
    if isinstance(error, PASSING_ERRORS):
        return True
    reply = str(error).partition(" of pipeline caused error: ")[2] or str(error)
    return reply.split(" ", 1)[0] in PASSING_REPLIES


def permanent_reason(error: BaseException) -> str | None:
    """Why ``error`` cannot heal by retrying, or None when it might."""
    if isinstance(error, AuthenticationError):
        return "Redis refused the login (user name or password wrong, or the user is off)"
    if isinstance(error, AuthorizationError):
        return "Redis refused the connection (the user may not connect or authenticate)"
    return _tls_verdict(error.__cause__ or error.__context__)


def _tls_verdict(cause: BaseException | None) -> str | None:
    """Why a TLS-level ``cause`` cannot heal by retrying, or None when it might."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        return "the Redis server's TLS certificate did not verify (redis_tls_ca_file, redis_tls_verify)"
    if isinstance(cause, ssl.SSLError) and any(w in (cause.reason or "") for w in ("CERTIFICATE", "UNKNOWN_CA")):
        # e.g. TLSV13_ALERT_CERTIFICATE_REQUIRED, SSLV3_ALERT_BAD_CERTIFICATE: the server's verdict on ours
        return "the Redis server refused the client certificate (redis_tls_cert_file, redis_tls_key_file)"
    if isinstance(cause, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"a TLS file could not be read ({cause})"
    return None


def _hides_a_tls_alert(error: BaseException) -> bool:
    """Whether ``error`` may stand for a TLS 1.3 alert that never got read. A TLS 1.3 server
    judges the client's certificate after the handshake has completed on the client's side,
    so its refusal (an alert, then close) races the client's first command: the client either
    reads the alert or finds the socket closed under its write ("EOF occurred in violation of
    protocol", a reset) and never learns why."""
    cause = error.__cause__ or error.__context__
    return isinstance(cause, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError))


def client_options(cfg) -> dict[str, Any]:
    """redis-py connection options from a :class:`flink_jobs.config.JobConfig`: timeouts and,
    for a ``rediss://`` URL, TLS. User and password come with the URL."""
    options: dict[str, Any] = {"socket_connect_timeout": cfg.redis_connect_timeout_ms / 1000,
                               "socket_timeout": cfg.redis_read_timeout_ms / 1000}
    if cfg.redis_url.startswith("rediss://"):
        for name, option in (("redis_tls_ca_file", "ssl_ca_certs"), ("redis_tls_cert_file", "ssl_certfile"),
                             ("redis_tls_key_file", "ssl_keyfile")):
            path = getattr(cfg, name)
            if path:
                if not os.access(path, os.R_OK):   # checked where the job runs, not where it was submitted
                    raise RedisAccessError(f"{name}={path!r} is not a readable file on this host")
                options[option] = path
        options["ssl_cert_reqs"] = "none" if cfg.redis_tls_verify == "none" else "required"
        options["ssl_check_hostname"] = cfg.redis_tls_verify == "full"
    return options


def _client(url: str, **options) -> redis.Redis:
    """redis-py's client for ``url``. A URL it cannot read is named without its password: the
    parser's own message may quote a piece of it (a password with a ``/`` reads as the port)."""
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError:
        raise ValueError(f"not a Redis URL redis-py can read: {redact_url(url)!r}") from None


def retry_policy(cfg) -> RetryPolicy:
    return RetryPolicy(cfg.redis_retry_base_ms, cfg.redis_retry_cap_ms, cfg.redis_retry_max_ms)

# KEYS[1] key; ARGV[1] version, ARGV[2] JSON document, ARGV[3] TTL in ms (0 = none).
# Returns 1 when written, 0 when the stored version is newer.
_SET = """
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""
_UPSERT_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' then
    local stored = tonumber(doc['version'])
    if stored and stored > tonumber(ARGV[1]) then
      return 0
    end
  end
end
""" + _SET


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


class VersionedStore:
    """Writes ``{"version": n, ...}`` documents so that only newer versions land."""

    def __init__(self, client: redis.Redis, ttl_ms: int = 0, versioned: bool = True,
                 retry: RetryPolicy | None = None, on_retry: Callable[[BaseException], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        """``versioned=False`` writes unconditionally: wrong after a restore (a replay moves
        keys back to older lists); it exists so that the chaos test can show it catches that.

        ``retry``: how long a call keeps retrying connection errors, timeouts and replies
        of a passing state (None: one attempt, errors raise at once). ``on_retry(error)`` is
        called before each retry; ``retries`` counts them (the job's ``redisRetries`` metric)."""
        if ttl_ms < 0:
            raise ValueError(f"ttl_ms must be >= 0, got {ttl_ms}")
        self.client = client
        self.ttl_ms = int(ttl_ms)
        self._upsert = client.register_script(_UPSERT_IF_NEWER if versioned else _SET)
        self.policy = retry or RetryPolicy(max_total_ms=0)
        self.on_retry = on_retry
        self.retries = 0      # retried attempts since this store was made
        self._clock = clock
        self._backoff = _DeadlineBackoff(self.policy.cap_ms / 1000, self.policy.base_ms / 1000, clock)
        # retries=-1: redis-py's Retry keeps going; the deadline (in fail) bounds it in time.
        self._retry = Retry(self._backoff, -1, supported_errors=RETRYABLE)

    @classmethod
    def from_url(cls, url: str, ttl_ms: int = 0, versioned: bool = True, **options) -> "VersionedStore":
        return cls(_client(url), ttl_ms, versioned, **options)

    @classmethod
    def from_config(cls, cfg) -> "VersionedStore":
        """The job's store: URL (with user and password), timeouts, TLS and retry from ``cfg``."""
        client = _client(cfg.redis_url, **client_options(cfg))
        return cls(client, cfg.redis_ttl_ms, cfg.redis_write == "versioned", retry_policy(cfg))

    def upsert(self, key: str, doc: Mapping[str, Any]) -> bool:
        """Write ``doc`` under ``key`` unless Redis holds a newer version (versioned store)."""
        args = self._args(doc)
        return bool(self._call(f"upsert {key}", lambda: self._upsert(keys=[key], args=args)))

    def upsert_many(self, writes: Iterable[tuple[str, Mapping[str, Any]]]) -> list[bool]:
        """Several upserts in one round trip (not one transaction; each is atomic), with the
        same ACL as ``upsert``: EVALSHA pipelined, and when the server has forgotten the
        script, SCRIPT LOAD and the whole batch again (its upserts are idempotent)."""
        batch = [(key, self._args(doc)) for key, doc in writes]
        if not batch:
            return []
        script = self._upsert

        def run():
            for attempt in (1, 2):
                pipe = self.client.pipeline(transaction=False)
                for key, args in batch:
                    pipe.evalsha(script.sha, 1, key, *args)
                try:
                    return [bool(r) for r in pipe.execute()]
                except NoScriptError:
                    if attempt == 2:
                        raise
                    script.sha = self.client.script_load(script.script)
        return self._call(f"{len(batch)} upserts", run)

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._call(f"get {key}", lambda: self.client.get(key))
        return None if raw is None else json.loads(raw)

    def _call(self, what: str, do: Callable[[], T]) -> T:
        """``do()``, retried on connection errors, timeouts and replies of a passing state
        within the policy's total time."""
        started = self._clock()
        self._backoff.deadline = started + self.policy.max_total_ms / 1000
        failures, logged = 0, None

        def fail(error: BaseException) -> None:   # before each retry; raising ends them
            nonlocal failures, logged
            if isinstance(error, ResponseError) and not _passing(error):
                raise error                       # a command error: every attempt would get it
            reason = permanent_reason(error) or (self._tls_probe() if not failures and _hides_a_tls_alert(error) else None)
            if reason:
                raise RedisAccessError(f"Redis {what}: {reason}: {error}") from error
            failures += 1
            elapsed = self._clock() - started
            if elapsed >= self.policy.max_total_ms / 1000:
                raise RedisUnavailable(
                    f"Redis {what} failed for {elapsed:.1f}s ({failures} attempts), giving up after "
                    f"redis_retry_max_ms={self.policy.max_total_ms}: {error}") from error
            if logged is None or elapsed - logged >= 10:   # the first failure, then every 10 s
                logged = elapsed
                log.warning("Redis %s failed (%s); retrying for up to %.0fs more (attempt %d, %.1fs so far)",
                            what, error, self.policy.max_total_ms / 1000 - elapsed, failures, elapsed)
            self.retries += 1
            if self.on_retry is not None:
                self.on_retry(error)

        try:
            result = self._retry.call_with_retry(do, fail)
        except NoPermissionError as error:
            raise RedisAccessError(
                f"Redis {what}: the Redis user lacks a permission ({error}); the store needs "
                f"ACL {REQUIRED_ACL!r}") from error
        except ResponseError as error:
            # A command inside the Lua script: Redis 7 says "The user executing the script can't
            # run this command..." (no NOPERM prefix, so redis-py raises a plain ResponseError).
            if "NOPERM" in str(error) or "user executing the script can't" in str(error):
                raise RedisAccessError(
                    f"Redis {what}: the Redis user lacks a permission ({error}); the store needs "
                    f"ACL {REQUIRED_ACL!r}") from error
            raise
        if failures:
            log.warning("Redis %s succeeded after %d retries (%.1fs)", what, failures, self._clock() - started)
        return result

    def _tls_probe(self) -> str | None:
        """The TLS server's verdict on this client, read on a connection of its own that
        sends nothing after its handshake, so that the server's alert, if any, is the next
        thing to read (see :func:`_hides_a_tls_alert`). None when the server says nothing
        within a second, closes without an alert, or cannot be reached."""
        pool = self.client.connection_pool
        if not issubclass(pool.connection_class, redis.SSLConnection):
            return None
        try:
            sock = pool.connection_class(**pool.connection_kwargs)._connect()   # TCP and TLS, no command
        except (OSError, redis.RedisError) as error:
            return _tls_verdict(error)
        try:
            sock.settimeout(1.0)
            sock.recv(1)
        except OSError as error:      # ssl.SSLError is one
            return _tls_verdict(error)
        finally:
            sock.close()
        return None

    def _args(self, doc: Mapping[str, Any]) -> list[Any]:
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"document needs an integer 'version', got {version!r}")
        return [version, dumps(doc), self.ttl_ms]
