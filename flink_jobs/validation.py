"""What the job accepts as a user event, and why it refuses the rest.

Runs at decode (``operators.DecodeEvents``) on records the codec has already checked
against their schema (field types, enum and union indexes, the documented RATING range).
A refused event goes to the dead-letter topic with the reason returned here. Accepted:

- ``user_id`` and ``item_id`` within [0, 2^53): exact as JSON numbers and Lua numbers
  (Redis values and keys), where larger integers silently round;
- ``event_id`` of at most ``MAX_EVENT_ID_CHARS`` characters (an id to trace by, in logs and
  tools; a megabyte of it is abuse);
- ``event_time`` within [``cfg.earliest_event_time_ms``, processing time +
  ``cfg.max_future_skew_ms``], and below ``EVENT_TIME_LIMIT_MS`` (2^42 ms, 2109-05-15)
  whatever the clock says, which keeps list versions below 2^53 (``udfs/versioning.py``).
  A far-future event would pin its user's TTL and, where watermarks follow the payload
  (in-memory input), move event time to the end of time (the Kafka source takes them from
  record timestamps, before decode). The upper bound is the one processing-time decision
  at decode, so an event just past it may be accepted when replayed later;
- RATING with a value within [0.5, 5] (the schema's range); any other type with no value
  or a finite one within [0, ``VALUE_LIMIT``] (a quantity or a price, as the schema says).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from flink_jobs.config import JobConfig
from udfs.versioning import EVENT_TIME_LIMIT_MS

EVENT_TYPES = frozenset({"VIEW", "CLICK", "ADD_TO_CART", "PURCHASE", "RATING"})
ID_LIMIT = 2**53                 # exclusive: integers above it are not exact in a double
MAX_EVENT_ID_CHARS = 256
RATING_MIN, RATING_MAX = 0.5, 5.0
VALUE_LIMIT = 1e12               # a quantity or price, in any currency's smallest unit


def validate_event(ev: Mapping[str, Any], cfg: JobConfig, now_ms: int) -> str | None:
    """Why a decoded event cannot be used (the dead letter's reason), or None.

    ``now_ms``: the operator's processing time, epoch milliseconds.
    """
    for name in ("user_id", "item_id"):
        if not 0 <= ev[name] < ID_LIMIT:
            return f"{name} {ev[name]} outside [0, 2^53)"
    if len(ev["event_id"]) > MAX_EVENT_ID_CHARS:
        return f"event_id of {len(ev['event_id'])} characters, more than {MAX_EVENT_ID_CHARS}"
    t = ev["event_time"]
    if t < cfg.earliest_event_time_ms:
        return f"event_time {t} is before earliest_event_time_ms {cfg.earliest_event_time_ms}"
    if t > now_ms + cfg.max_future_skew_ms:
        return (f"event_time {t} is {t - now_ms} ms ahead of processing time {now_ms}, "
                f"more than max_future_skew_ms {cfg.max_future_skew_ms}")
    if t >= EVENT_TIME_LIMIT_MS:  # only with a clock far ahead
        return f"event_time {t} is at or after {EVENT_TIME_LIMIT_MS} (2109-05-15), where versions stop being exact"
    kind, value = ev["event_type"], ev.get("value")
    if kind not in EVENT_TYPES:
        return f"unknown event_type {kind!r}"
    if kind == "RATING":
        if value is None or not RATING_MIN <= value <= RATING_MAX:  # NaN fails the comparison
            return f"RATING needs a value within [{RATING_MIN}, {RATING_MAX}], got {value}"
    elif value is not None and not (math.isfinite(value) and 0 <= value <= VALUE_LIMIT):
        return f"{kind} value {value} outside [0, {VALUE_LIMIT:.0e}] (a quantity or price, or none)"
    return None


# --- the catalog ------------------------------------------------------------------------
MAX_TITLE_CHARS = 1_000
MAX_TAGS = 100               # a tag spans a dimension of the interest vector
MAX_TAG_CHARS = 100
MAX_EMBEDDING_DIMS = 4_096


# The form contracts.record_key writes, and no other: int() would also take " 7", "+7", "0_7"
# and "07", so a tombstone keyed "+7" would delete item 7. At most 16 digits (ids < 2^53).
CANONICAL_ID = re.compile(rb"0|[1-9][0-9]{0,15}")


def item_of_key(key: bytes | None) -> int | None:
    """The item id a catalog record's key names (decimal text, contracts.record_key), or None."""
    if not key or not CANONICAL_ID.fullmatch(key):
        return None
    item = int(key)
    return item if item < ID_LIMIT else None


def validate_item(r: Mapping[str, Any], key: bytes | None) -> str | None:
    """Why a decoded catalog record (reco.ItemFeatures) cannot be used, or None. Its key,
    when there is one, must name the same item (a tombstone deletes the key's item)."""
    item = r["item_id"]
    if not 0 <= item < ID_LIMIT:
        return f"item_id {item} outside [0, 2^53)"
    if key and item_of_key(key) != item:
        return f"record key {key[:40]!r} does not name item {item}"
    if len(r["title"]) > MAX_TITLE_CHARS:
        return f"title of {len(r['title'])} characters, more than {MAX_TITLE_CHARS}"
    tags = r["tags"]
    if len(tags) > MAX_TAGS:
        return f"{len(tags)} tags, more than {MAX_TAGS}"
    if any(len(t) > MAX_TAG_CHARS for t in tags):
        return f"a tag of more than {MAX_TAG_CHARS} characters"
    embedding = r.get("embedding")
    if embedding is not None:
        if len(embedding) > MAX_EMBEDDING_DIMS:
            return f"embedding of {len(embedding)} dimensions, more than {MAX_EMBEDDING_DIMS}"
        if not all(math.isfinite(x) for x in embedding):
            return "embedding with a NaN or infinite value"
    for field in ("model_version", "model_size"):
        if r.get(field, 0) < 0:
            return f"{field} {r[field]} below 0"
    return None
