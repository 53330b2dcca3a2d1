"""Keyed by user: the decayed interest vector, consumed items, and the top-N list.

The item side is read from an ``ItemIndex``: the catalog, trending, and every item's
neighbor counts as of its last bucket end, delivered to each ranking subtask (broadcast).
Ranking then needs no round trip: a request is answered from the index as it stands.

State is one plain tuple ``(interest weights, interest as_of, consumed, last_seen,
ttl_timer)``; ``consumed`` is {item: last event time}.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from udfs import cooccurrence as co
from udfs import ttl
from udfs.ranking import Neighbors, merge, rank
from udfs.records import ItemInfo, NeighborCounts, Request, Trending
from udfs.signals import InterestVector, add_interest


class ItemIndex:
    """What the ranker knows of items. Scored neighbor lists are cached per item until its
    counts change (a neighbor's N(j) is read when the list is scored)."""

    def __init__(self, fragment_size: int, shrinkage: float = 0.0):
        self.k = fragment_size
        self.shrinkage = shrinkage
        self.info: dict[int, ItemInfo] = {}
        self.deleted: set[int] = set()
        self._listed: np.ndarray | None = None   # None: to rebuild, with the tag table below
        self._vocab: dict[str, int] = {}          # tag -> column of the interest vector
        self._tag_start = self._tag_end = np.zeros(0, dtype=np.int64)   # per listed item: its span of _tags
        self._tags = np.zeros(0, dtype=np.int64)  # tag columns of every listed item, one after another
        self.counts: dict[int, NeighborCounts] = {}
        self.trending: tuple = ()
        self._scored: dict[int, Neighbors] = {}

    def put(self, msg) -> None:
        if isinstance(msg, NeighborCounts):
            self.counts[msg.item] = msg
            self._scored.pop(msg.item, None)
        elif isinstance(msg, ItemInfo):
            msg = msg._replace(tags=tuple(dict.fromkeys(msg.tags)))  # a tag counts once
            old = self.info.get(msg.item)
            if old is None or msg.deleted != old.deleted or msg.tags != old.tags:
                self._listed = None
            self.info[msg.item] = msg
            (self.deleted.add if msg.deleted else self.deleted.discard)(msg.item)
        elif isinstance(msg, Trending):
            self.trending = msg.top
        else:
            raise TypeError(f"not an item-side record: {msg!r}")

    def listed(self) -> np.ndarray:
        """The items that may be recommended, sorted: those the catalog has and has not
        deleted. (Events of an item the catalog does not know yet still count, and the item
        still becomes others' neighbor; it is recommended once its catalog record arrives.)"""
        if self._listed is None:
            listed = sorted(self.info.keys() - self.deleted)
            vocab: dict[str, int] = {}
            columns = [[vocab.setdefault(tag, len(vocab)) for tag in self.info[item].tags] for item in listed]
            ends = np.cumsum([len(c) for c in columns], dtype=np.int64)
            self._tag_end, self._tag_start = ends, ends - np.array([len(c) for c in columns], dtype=np.int64)
            self._tags = np.array([t for c in columns for t in c], dtype=np.int64)
            self._vocab, self._listed = vocab, np.array(listed, dtype=np.int64)
        return self._listed

    def interest(self, vec: InterestVector) -> Callable[[np.ndarray], np.ndarray]:
        """``score(ids)``: the cosine between ``vec`` and each item's unit tag vector (0 when
        either is empty or the item is not listed), for many items at once."""
        listed = self.listed()
        if not vec.weights or not len(listed):
            return lambda ids: np.zeros(len(ids))
        norm = math.sqrt(sum(w * w for w in vec.weights.values()))
        v = np.zeros(len(self._vocab))
        for tag, w in vec.weights.items():
            column = self._vocab.get(tag)
            if column is not None:
                v[column] = w

        def score(ids: np.ndarray) -> np.ndarray:
            rows = np.minimum(np.searchsorted(listed, ids), len(listed) - 1)
            known = listed[rows] == ids
            start, n = self._tag_start[rows], np.where(known, self._tag_end[rows] - self._tag_start[rows], 0)
            dot = np.zeros(len(ids))
            for k in range(int(n.max(initial=0))):   # tag by tag, in the item's order
                has = n > k
                dot[has] += v[self._tags[start[has] + k]]
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(n > 0, dot / (norm * np.sqrt(n)), 0.0)
        return score

    def tags(self, item: int) -> tuple:
        info = self.info.get(item)
        return info.tags if info else ()

    def title(self, item: int) -> str:
        info = self.info.get(item)
        return info.title if info else f"item {item}"

    def neighbors(self, item: int) -> Neighbors:
        """Top-K of ``item`` by similarity, best first (ties by id)."""
        scored = self._scored.get(item)
        if scored is None:
            nc = self.counts.get(item)
            if nc is None:
                return Neighbors.of([])
            counts = self.counts
            n_other = {j: counts[j].n for j, _ in nc.counts if j in counts}
            scored = self._scored[item] = Neighbors(*co.top_neighbors(dict(nc.counts), nc.n, n_other, self.k,
                                                                      self.shrinkage))
        return scored

    def neighbor_record(self, item: int) -> dict:
        """The published list of ``item`` (shaped like reco.ItemNeighbors)."""
        nc = self.counts[item]
        nb = self.neighbors(item)
        return {"item_id": item, "item_count": nc.n, "event_time": nc.t,
                "neighbors": [{"item_id": j, "score": s, "co_count": c}
                              for j, s, c in zip(nb.ids.tolist(), nb.sims.tolist(), nb.counts.tolist())]}


def on_request(state: tuple | None, req: Request, index: ItemIndex, cfg,
               now_ms: int) -> tuple[tuple, list, list[int]]:
    """``(state, [recommendations record], timers)``: apply the request's events, then rank."""
    weights, as_of, consumed, last_seen, ttl_timer = state or ({}, 0, {}, 0, 0)
    vec = InterestVector(weights, as_of)
    for item, weight, t in req.events:
        vec = add_interest(vec, index.tags(item), weight, t, cfg.interest_half_life_ms)
        consumed[item] = max(consumed.get(item, 0), t)
    if len(consumed) > cfg.max_consumed:
        consumed = dict(sorted(consumed.items(), key=lambda kv: (kv[1], kv[0]))[-cfg.max_consumed:])
    last_seen, ttl_timer, timers = ttl.touch(last_seen, ttl_timer, req.t, _ttl_ms(cfg))
    candidates = merge((seed, w, index.neighbors(seed)) for seed, w in req.seeds)
    exclude = np.fromiter(consumed, dtype=np.int64, count=len(consumed))
    top = rank(candidates, index.interest(vec), exclude, cfg.top_n, cfg.interest_weight, index.trending,
               index.title, allowed=index.listed())
    record = {"user_id": req.user, "version": req.version, "event_time": req.t, "generated_at": now_ms,
              "items": [{"item_id": i, "score": float(s), "reason": r} for i, s, r in top]}
    return (vec.weights, vec.as_of, consumed, last_seen, ttl_timer), [record], timers


def _ttl_ms(cfg) -> int:
    """UserActivity keeps a user for ``user_ttl_ms`` after its last event; the request for
    that user's next event can come up to ``debounce_ms`` of event time after the event (a
    burst leaves when event time passes its end), so the ranker waits that much longer:
    otherwise it could drop the interest and consumed items of a user UserActivity kept."""
    return cfg.user_ttl_ms + cfg.debounce_ms


def on_timer(state: tuple | None, ts: int, cfg) -> tuple[tuple | None, list, list[int]]:
    """The TTL: ``(state or None when expired, [], timers)``."""
    if state is None:
        return None, [], []
    weights, as_of, consumed, last_seen, ttl_timer = state
    expired, ttl_timer, timers = ttl.on_timer(last_seen, ttl_timer, ts, _ttl_ms(cfg))
    if expired:
        return None, [], []
    return (weights, as_of, consumed, last_seen, ttl_timer), [], timers
