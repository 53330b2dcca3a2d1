"""Versioned, idempotent writes of JSON documents to Redis.

Redis takes no part in Flink's checkpoints, so after a restore the job replays records
it may already have written. Every write is therefore a compare-and-set on the
document's ``version`` (in one Lua script, atomic on the server): a write with an older
version than the stored one changes nothing, so a key never moves backwards, while the
same version is written again, so that the attempt whose output Kafka committed is the
one Redis keeps (a list's items may differ between attempts; its version never does). Keys come from :mod:`flink_jobs.contracts`; TTL comes from configuration.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import redis

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

    def __init__(self, client: redis.Redis, ttl_ms: int = 0, versioned: bool = True):
        """``versioned=False`` writes unconditionally: wrong after a restore (a replay moves
        keys back to older lists); it exists so that the chaos test can show it catches that."""
        if ttl_ms < 0:
            raise ValueError(f"ttl_ms must be >= 0, got {ttl_ms}")
        self.client = client
        self.ttl_ms = int(ttl_ms)
        self._upsert = client.register_script(_UPSERT_IF_NEWER if versioned else _SET)

    @classmethod
    def from_url(cls, url: str, ttl_ms: int = 0, versioned: bool = True) -> "VersionedStore":
        return cls(redis.Redis.from_url(url), ttl_ms, versioned)

    def upsert(self, key: str, doc: Mapping[str, Any]) -> bool:
        """Write ``doc`` under ``key`` unless Redis holds a newer version (versioned store)."""
        return bool(self._upsert(keys=[key], args=self._args(doc)))

    def upsert_many(self, writes: Iterable[tuple[str, Mapping[str, Any]]]) -> list[bool]:
        """Several upserts in one round trip (not one transaction; each is atomic)."""
        pipe = self.client.pipeline(transaction=False)
        for key, doc in writes:
            self._upsert(keys=[key], args=self._args(doc), client=pipe)
        return [bool(r) for r in pipe.execute()]

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.client.get(key)
        return None if raw is None else json.loads(raw)

    def _args(self, doc: Mapping[str, Any]) -> list[Any]:
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"document needs an integer 'version', got {version!r}")
        return [version, dumps(doc), self.ttl_ms]
