"""Clients that read the job's lists from Redis: :class:`RecoClient` (blocking) and
:class:`AsyncRecoClient` (asyncio), with the same methods and results.

Connection settings are the job's own (``redis_url`` with user and password, the
``redis_tls_*`` files, ``redis_tls_verify``, timeouts) and come from the same
``RECO_*`` environment variables (:meth:`Settings.from_env`). Reads do not wait out an
outage: a call fails within the timeouts with :class:`Unavailable`, so that a caller can
serve something else; one retry on a fresh connection covers a server that restarted
since the last call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.exceptions import NoPermissionError

from flink_jobs import contracts
from flink_jobs.redis_store import client_options, permanent_reason
from flink_jobs.sensitive import read_secret_file, redact_url
from reco_client import model
from reco_client.model import AccessDenied, NotFound, Recommendations, SimilarItems, Trending, Unavailable


@dataclass(frozen=True)
class Settings:
    """Where Redis is and how to reach it: the job's ``redis_*`` settings of the same names."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_connect_timeout_ms: int = 1_000
    redis_read_timeout_ms: int = 500
    redis_tls_ca_file: str = ""
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_tls_verify: str = "full"

    def __post_init__(self):
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis_url must start with redis://, rediss:// or unix://, got {redact_url(self.redis_url)!r}")
        for name in ("redis_connect_timeout_ms", "redis_read_timeout_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.redis_tls_verify not in ("full", "ca", "none"):
            raise ValueError(f"redis_tls_verify must be full, ca or none, got {self.redis_tls_verify!r}")

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, **overrides: Any) -> "Settings":
        """Defaults < ``RECO_<SETTING>`` variables (``RECO_REDIS_URL_FILE``: a file holding the
        URL, as the job takes it) < ``overrides``."""
        env = os.environ if env is None else env
        values: dict = {}
        for f in fields(cls):
            raw = env.get(f"RECO_{f.name.upper()}")
            if raw is not None:
                values[f.name] = int(raw) if f.type in ("int", int) else raw
        if "redis_url" not in values and env.get("RECO_REDIS_URL_FILE"):
            values["redis_url"] = read_secret_file(env["RECO_REDIS_URL_FILE"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def redis_options(self) -> dict:
        return {**client_options(self), "retry": Retry(NoBackoff(), 1)}


def _failure(settings: Settings, what: str, error: BaseException) -> model.RecoError:
    """The client's error for a redis-py ``error``, naming the server without its password."""
    where = redact_url(settings.redis_url)
    reason = permanent_reason(error)
    if reason or isinstance(error, NoPermissionError):
        reason = reason or "the Redis user lacks a permission (a reader needs GET and PING on reco:*)"
        return AccessDenied(f"Redis at {where} ({what}): {reason}: {error}")
    return Unavailable(f"Redis at {where} did not answer {what}: {error}")


_ERRORS = (redis.RedisError, OSError)


class _Reads:
    """What both clients do around a read: check the arguments and name the key before it,
    parse the document or explain its absence after it."""
    settings: Settings

    @staticmethod
    def _user_key(user_id: int, n: Optional[int]) -> str:
        model.check_id("user_id", user_id)
        model.check_n(n)
        return contracts.user_recommendations_key(user_id)

    @staticmethod
    def _own_list(key: str, raw: Any, n: Optional[int]) -> Optional[Recommendations]:
        """The user's own list, or None when there is none or it is empty (trending stands in)."""
        if raw is None:
            return None
        found = model.recommendations(key, model.load(key, raw), n)
        return found if found.items else None

    @staticmethod
    def _no_user(user_id: int) -> NotFound:
        key = contracts.user_recommendations_key(user_id)
        return NotFound(f"{key}: no list for user {user_id} (no events yet, or expired)", key)

    @staticmethod
    def _similar_key(item_id: int, n: Optional[int]) -> str:
        model.check_id("item_id", item_id)
        model.check_n(n)
        return contracts.item_similar_key(item_id)

    @staticmethod
    def _similar(key: str, item_id: int, raw: Any, n: Optional[int]) -> SimilarItems:
        if raw is None:
            raise NotFound(f"{key}: no similar items for item {item_id} (no co-views in the window, unlisted, "
                           f"or unknown)", key)
        return model.similar(key, model.load(key, raw), n)

    @staticmethod
    def _trending(raw: Any, n: Optional[int]) -> Trending:
        key = contracts.TRENDING_KEY
        if raw is None:
            raise NotFound(f"{key}: no trending list yet (the job ranks it each slide)", key)
        return model.trending(key, model.load(key, raw), n)


class RecoClient(_Reads):
    """Blocking reads; thread-safe (redis-py's connection pool)."""

    def __init__(self, settings: Optional[Settings] = None, **settings_overrides: Any):
        self.settings = settings or Settings(**settings_overrides)
        try:
            self._redis = redis.Redis.from_url(self.settings.redis_url, **self.settings.redis_options())
        except ValueError:
            raise ValueError(f"not a Redis URL redis-py can read: {redact_url(self.settings.redis_url)!r}") from None

    @classmethod
    def from_env(cls, **overrides: Any) -> "RecoClient":
        return cls(Settings.from_env(**overrides))

    def _get(self, key: str) -> Any:
        try:
            return self._redis.get(key)
        except _ERRORS as error:
            raise _failure(self.settings, f"GET {key}", error) from error

    def recommendations(self, user_id: int, n: Optional[int] = None, fallback: bool = True) -> Recommendations:
        """The user's top ``n`` (all when None). Without a list of their own (or with an empty
        one) the user gets trending, flagged ``fallback=True``; with ``fallback=False``,
        :class:`NotFound` instead."""
        key = self._user_key(user_id, n)
        found = self._own_list(key, self._get(key), n)
        if found is not None:
            return found
        if not fallback:
            raise self._no_user(user_id)
        return model.trending_fallback(user_id, self.trending(n))

    def similar(self, item_id: int, n: Optional[int] = None) -> SimilarItems:
        """The item's ``n`` most similar items (all when None)."""
        key = self._similar_key(item_id, n)
        return self._similar(key, item_id, self._get(key), n)

    def trending(self, n: Optional[int] = None) -> Trending:
        model.check_n(n)
        return self._trending(self._get(contracts.TRENDING_KEY), n)

    def ping(self) -> None:
        """Returns when Redis answers; raises :class:`Unavailable` or :class:`AccessDenied`."""
        try:
            self._redis.ping()
        except _ERRORS as error:
            raise _failure(self.settings, "PING", error) from error

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> "RecoClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncRecoClient(_Reads):
    """The same reads for asyncio (redis-py's ``redis.asyncio``)."""

    def __init__(self, settings: Optional[Settings] = None, **settings_overrides: Any):
        self.settings = settings or Settings(**settings_overrides)
        options = self.settings.redis_options()
        options["retry"] = redis.asyncio.retry.Retry(NoBackoff(), 1)
        try:
            self._redis = redis.asyncio.Redis.from_url(self.settings.redis_url, **options)
        except ValueError:
            raise ValueError(f"not a Redis URL redis-py can read: {redact_url(self.settings.redis_url)!r}") from None

    @classmethod
    def from_env(cls, **overrides: Any) -> "AsyncRecoClient":
        return cls(Settings.from_env(**overrides))

    async def _get(self, key: str) -> Any:
        try:
            return await self._redis.get(key)
        except _ERRORS as error:
            raise _failure(self.settings, f"GET {key}", error) from error

    async def recommendations(self, user_id: int, n: Optional[int] = None, fallback: bool = True) -> Recommendations:
        key = self._user_key(user_id, n)
        found = self._own_list(key, await self._get(key), n)
        if found is not None:
            return found
        if not fallback:
            raise self._no_user(user_id)
        return model.trending_fallback(user_id, await self.trending(n))

    async def similar(self, item_id: int, n: Optional[int] = None) -> SimilarItems:
        key = self._similar_key(item_id, n)
        return self._similar(key, item_id, await self._get(key), n)

    async def trending(self, n: Optional[int] = None) -> Trending:
        model.check_n(n)
        return self._trending(await self._get(contracts.TRENDING_KEY), n)

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except _ERRORS as error:
            raise _failure(self.settings, "PING", error) from error

    async def close(self) -> None:
        await self._redis.aclose()

    async def __aenter__(self) -> "AsyncRecoClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
