"""Typed messages between the job's operators.

They travel pickled between Python operators, so they are NamedTuples of plain values.
Long-lived state is never one of these: operators keep plain tuples, lists and dicts, so
that a savepoint does not depend on a class's module path.
"""

from __future__ import annotations

from typing import NamedTuple

from udfs import embedding
from udfs.signals import event_weight


class Event(NamedTuple):
    """A valid user event, as the job sees it: ``weight`` 0 means consumed, no interest."""
    user: int
    item: int
    t: int
    weight: float

    @classmethod
    def of(cls, ev: dict) -> "Event":
        """From a decoded reco.UserEvent."""
        return cls(ev["user_id"], ev["item_id"], ev["event_time"], event_weight(ev["event_type"], ev.get("value")))


class Request(NamedTuple):
    """A list is due for ``user`` at ``version`` (within the Ranker: ``udfs.ranker.on_request``);
    ``events`` are every (item, weight, t) since the previous list (one, or a debounced
    burst), ``seeds`` the (item, weight) whose neighbors become candidates."""
    user: int
    version: int
    t: int
    events: tuple
    seeds: tuple


class ItemDelta(NamedTuple):
    """One user's contribution to an item in one bucket: its own count and ``pairs`` {j: w}."""
    item: int
    bucket: int
    own: float
    pairs: dict


class NeighborCounts(NamedTuple):
    """An item's window as of bucket end ``t``: own count ``n`` and its neighbors' counts
    ``counts`` ((j, C(i,j)), ...), best first, at most M."""
    item: int
    t: int
    n: float
    counts: tuple


class BucketCount(NamedTuple):
    """An item's own count in one closed bucket (for trending)."""
    item: int
    bucket: int
    count: float


class Listing(NamedTuple):
    """Whether the catalog lists ``item`` now (it has the item's record, not a tombstone)."""
    item: int
    listed: bool


class Trending(NamedTuple):
    """The most consumed items in the trending window that ended at ``t``."""
    t: int
    top: tuple  # ((item, count), ...)


class ItemInfo(NamedTuple):
    """A catalog record. ``embedding`` is packed (``udfs.embedding.pack``), at unit length,
    or None; ``model_version`` names the model it comes from (0: none), ``model_size`` how
    many items that model has (0: unknown)."""
    item: int
    title: str
    tags: tuple
    deleted: bool
    embedding: tuple | None = None
    model_version: int = 0
    model_size: int = 0

    @classmethod
    def of(cls, r: dict, precision: str = "int8") -> "ItemInfo":
        """From a decoded reco.ItemFeatures; the embedding is packed in ``precision``."""
        vec = r.get("embedding")
        packed = embedding.pack(embedding.unit(vec), precision) if vec is not None and len(vec) else None
        return cls(r["item_id"], r["title"], tuple(r["tags"]), r["deleted"], packed, r.get("model_version", 0),
                   r.get("model_size", 0))


class Expired(NamedTuple):
    """A user's state passed its TTL at event time ``t`` and was dropped."""
    user: int
    t: int
