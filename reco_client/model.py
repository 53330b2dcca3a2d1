"""The job's Redis documents as typed, immutable results, and the errors a reader can get.

A document is the JSON ``flink_jobs.documents`` writes; ``schemas/json`` describes each
kind. Reading is tolerant of fields it does not know (a newer job may add some: that keeps
the format number) and strict about the ones it needs: a document without them, or of a
newer format, raises instead of yielding a half-read list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from flink_jobs.documents import DOCUMENT_FORMAT

MAX_ID = 2**63 - 1   # Avro long: ids are non-negative longs


class RecoError(Exception):
    """Any failure of the client: catch this one to catch them all."""


class NotFound(RecoError, LookupError):
    """No document under the key: not computed yet, expired (``redis_ttl_ms``), or an
    unknown id. ``key`` names the Redis key that was read."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


class Unavailable(RecoError):
    """Redis could not be reached or did not answer within the timeout."""


class AccessDenied(RecoError):
    """Redis refused the login, the TLS handshake, or a command: waiting will not help."""


class IncompatibleDocument(RecoError):
    """The document is of a format newer than this client reads, or it is not a document
    of the expected kind (not JSON, a required field missing or of the wrong type)."""


@dataclass(frozen=True)
class RecommendedItem:
    item_id: int
    score: float
    reason: str


@dataclass(frozen=True)
class Recommendations:
    """A user's top-N, best first. ``fallback`` is True when the user has no list of their
    own (or an empty one) and ``items`` are the trending items instead: then ``version``
    and ``event_time_ms`` are trending's, ``generated_at_ms`` is None and each score is the
    item's count in the trending window."""
    user_id: int
    items: Tuple[RecommendedItem, ...]
    version: int
    event_time_ms: int
    generated_at_ms: Optional[int]
    model_version: int
    fallback: bool = False


@dataclass(frozen=True)
class Neighbor:
    item_id: int
    score: float
    co_count: float


@dataclass(frozen=True)
class SimilarItems:
    """An item's most similar items in the current window, best first."""
    item_id: int
    neighbors: Tuple[Neighbor, ...]
    item_count: float
    version: int
    event_time_ms: int


@dataclass(frozen=True)
class TrendingItem:
    item_id: int
    count: float


@dataclass(frozen=True)
class Trending:
    """The most viewed items of the last trending window, most first."""
    items: Tuple[TrendingItem, ...]
    version: int
    event_time_ms: int


def check_id(what: str, value: Any) -> int:
    """``value`` as an id (a non-negative Avro long), or ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValueError(f"{what} must be an integer between 0 and {MAX_ID}, got {value!r}")
    return value


def check_n(n: Optional[int]) -> Optional[int]:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive integer or None (all), got {n!r}")
    return n


def load(key: str, raw: bytes | str) -> Mapping[str, Any]:
    """The JSON document under ``key``, checked to be of a format this client reads."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise IncompatibleDocument(f"{key}: not a JSON document ({exc})") from None
    if not isinstance(doc, dict):
        raise IncompatibleDocument(f"{key}: expected a JSON object, got {type(doc).__name__}")
    fmt = doc.get("format", 1)   # documents written before the field existed are format 1
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise IncompatibleDocument(f"{key}: 'format' must be an integer, got {fmt!r}")
    if fmt > DOCUMENT_FORMAT:
        raise IncompatibleDocument(
            f"{key}: document format {fmt} is newer than this client reads ({DOCUMENT_FORMAT}); "
            f"upgrade reco-flink's client")
    return doc


def _fields(key: str, doc: Mapping[str, Any], **types: Any) -> list:
    out = []
    for name, kind in types.items():
        value = doc.get(name)
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if not ok:
            raise IncompatibleDocument(f"{key}: field {name!r} missing or not {_kind_name(kind)} (got {value!r})")
        out.append(value)
    return out


def _kind_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


_NUMBER = (int, float)


def recommendations(key: str, doc: Mapping[str, Any], n: Optional[int]) -> Recommendations:
    user_id, items, version, event_time, generated_at = _fields(
        key, doc, user_id=int, items=list, version=int, event_time=int, generated_at=int)
    model_version = doc.get("model_version", 0)
    parsed = []
    for i, entry in enumerate(items[:n]):
        if not isinstance(entry, dict):
            raise IncompatibleDocument(f"{key}: items[{i}] is not an object")
        item_id, score, reason = _fields(f"{key} items[{i}]", entry, item_id=int, score=_NUMBER, reason=str)
        parsed.append(RecommendedItem(item_id, float(score), reason))
    return Recommendations(user_id, tuple(parsed), version, event_time, generated_at, int(model_version))


def similar(key: str, doc: Mapping[str, Any], n: Optional[int]) -> SimilarItems:
    item_id, neighbors, item_count, version, event_time = _fields(
        key, doc, item_id=int, neighbors=list, item_count=_NUMBER, version=int, event_time=int)
    parsed = []
    for i, entry in enumerate(neighbors[:n]):
        if not isinstance(entry, dict):
            raise IncompatibleDocument(f"{key}: neighbors[{i}] is not an object")
        other, score, co_count = _fields(f"{key} neighbors[{i}]", entry, item_id=int, score=_NUMBER, co_count=_NUMBER)
        parsed.append(Neighbor(other, float(score), float(co_count)))
    return SimilarItems(item_id, tuple(parsed), float(item_count), version, event_time)


def trending(key: str, doc: Mapping[str, Any], n: Optional[int]) -> Trending:
    items, version, event_time = _fields(key, doc, items=list, version=int, event_time=int)
    parsed = []
    for i, entry in enumerate(items[:n]):
        if not isinstance(entry, dict):
            raise IncompatibleDocument(f"{key}: items[{i}] is not an object")
        item_id, count = _fields(f"{key} items[{i}]", entry, item_id=int, count=_NUMBER)
        parsed.append(TrendingItem(item_id, float(count)))
    return Trending(tuple(parsed), version, event_time)


TRENDING_REASON = "trending now"


def trending_fallback(user_id: int, top: Trending) -> Recommendations:
    items = tuple(RecommendedItem(t.item_id, t.count, TRENDING_REASON) for t in top.items)
    return Recommendations(user_id, items, top.version, top.event_time_ms, None, 0, fallback=True)
