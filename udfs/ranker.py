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
from udfs.ranking import Neighbors, find_sorted, merge, rank
from udfs.records import ItemInfo, NeighborCounts, Request, Trending
from udfs.signals import InterestVector, add_interest


class _Growing:
    """An int64 array that grows by doubling: appends cost O(1) amortised."""

    def __init__(self):
        self.a, self.n = np.zeros(64, dtype=np.int64), 0

    def extend(self, values: list[int]) -> int:
        """Append ``values``; return where they start."""
        start, self.n = self.n, self.n + len(values)
        if self.n > len(self.a):
            self.a = np.concatenate([self.a, np.zeros(max(self.n, 2 * len(self.a)) - len(self.a), dtype=np.int64)])
        self.a[start:self.n] = values
        return start


class ItemIndex:
    """What the ranker knows of items. Scored neighbor lists are cached per item until its
    counts change (a neighbor's N(j) is read when the list is scored).

    The catalog is also kept as arrays, for ranking many candidates at once: each item's
    tag columns (a row of a table that only grows), and the recommendable items as a
    sorted base plus the changes since it was built. A catalog record costs O(its tags)
    and the base is rebuilt once the changes outnumber sqrt(items): a job that starts with
    a backlog reads catalog records and requests in turn, and rebuilding per record would
    cost O(items) per request.
    """

    def __init__(self, fragment_size: int, shrinkage: float = 0.0):
        self.k = fragment_size
        self.shrinkage = shrinkage
        self.info: dict[int, ItemInfo] = {}
        self.deleted: set[int] = set()
        self.counts: dict[int, NeighborCounts] = {}
        self.trending: tuple = ()
        self._scored: dict[int, Neighbors] = {}
        self._vocab: dict[str, int] = {}                  # tag -> column of the interest vector
        self._row: dict[int, int] = {}                    # item -> its row
        self._start, self._count, self._tags = _Growing(), _Growing(), _Growing()  # row -> its span of _tags
        self._base_ids = self._base_rows = np.zeros(0, dtype=np.int64)   # listed items, sorted, and their rows
        self._added: dict[int, int] = {}                  # listed since the base was built: item -> row
        self._removed: set[int] = set()                   # in the base, no longer listed
        self._changes: tuple | None = None                # the two above as sorted arrays; None: to redo
        self.rebuilds = self.compactions = 0

    def put(self, msg) -> None:
        if isinstance(msg, NeighborCounts):
            self.counts[msg.item] = msg
            self._scored.pop(msg.item, None)
        elif isinstance(msg, ItemInfo):
            self._put_item(msg._replace(tags=tuple(dict.fromkeys(msg.tags))))  # a tag counts once
        elif isinstance(msg, Trending):
            self.trending = msg.top
        else:
            raise TypeError(f"not an item-side record: {msg!r}")

    def _put_item(self, msg: ItemInfo) -> None:
        item, old = msg.item, self.info.get(msg.item)
        self.info[item] = msg
        (self.deleted.add if msg.deleted else self.deleted.discard)(item)
        if old is None or old.tags != msg.tags:
            columns = [self._vocab.setdefault(tag, len(self._vocab)) for tag in msg.tags]
            start = self._tags.extend(columns)
            row = self._row.get(item)
            if row is None:
                self._row[item] = self._start.extend([start])
                self._count.extend([len(columns)])
            else:
                self._start.a[row], self._count.a[row] = start, len(columns)
        if (old is None or old.deleted) == msg.deleted:
            return   # listed before as now
        self._changes = None
        if msg.deleted:
            if self._added.pop(item, None) is None:
                self._removed.add(item)
        elif item in self._removed:
            self._removed.discard(item)
        else:
            self._added[item] = self._row[item]
        if (len(self._added) + len(self._removed)) ** 2 > len(self._base_ids) + 1024:
            self._rebuild()

    def _rebuild(self) -> None:
        live = [(item, self._row[item]) for item in self.info.keys() - self.deleted]
        pairs = np.array(live, dtype=np.int64).reshape(-1, 2)
        order = np.argsort(pairs[:, 0], kind="stable")
        self._base_ids, self._base_rows = pairs[order, 0], pairs[order, 1]
        self._added, self._removed, self._changes = {}, set(), None
        self.rebuilds += 1
        if self._tags.n > 2 * int(self._count.a[:self._start.n].sum()) + 4096:
            # mostly columns of replaced tags: copy the live ones (each row keeps its number)
            old, self._tags = self._tags.a, _Growing()
            for row in range(self._start.n):
                at, n = int(self._start.a[row]), int(self._count.a[row])
                self._start.a[row] = self._tags.extend(old[at:at + n].tolist())
            self.compactions += 1

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Each item's row, or -1 for an item that may not be recommended: one the catalog
        does not have or has deleted. (Events of an item the catalog does not know yet still
        count, and the item still becomes others' neighbor; it is recommended once its
        catalog record arrives.)"""
        ids = np.asarray(ids, dtype=np.int64)
        rows = _lookup(self._base_ids, self._base_rows, ids)
        if self._added or self._removed:
            if self._changes is None:
                added = sorted(self._added.items())
                self._changes = (np.array([i for i, _ in added], dtype=np.int64),
                                 np.array([r for _, r in added], dtype=np.int64),
                                 np.array(sorted(self._removed), dtype=np.int64))
            added_ids, added_rows, removed = self._changes
            if len(removed):
                rows[find_sorted(removed, ids)[1]] = -1
            if len(added_ids):
                rows = np.where(rows < 0, _lookup(added_ids, added_rows, ids), rows)
        return rows

    def is_listed(self, ids: np.ndarray) -> np.ndarray:
        return self.rows(ids) >= 0

    def interest(self, vec: InterestVector) -> Callable[[np.ndarray], np.ndarray]:
        """``score(ids)``: the cosine between ``vec`` and each item's unit tag vector (0 when
        either is empty or the item is not listed), for many items at once."""
        if not vec.weights:
            return lambda ids: np.zeros(len(ids))
        norm = math.sqrt(sum(w * w for w in vec.weights.values()))
        v = np.zeros(len(self._vocab))
        for tag, w in vec.weights.items():
            column = self._vocab.get(tag)
            if column is not None:
                v[column] = w

        def score(ids: np.ndarray) -> np.ndarray:
            rows = self.rows(ids)
            listed = rows >= 0
            start = np.where(listed, self._start.a[rows], 0)
            n = np.where(listed, self._count.a[rows], 0)
            dot = np.zeros(len(ids))
            for k in range(int(n.max(initial=0))):   # tag by tag, in the item's order
                has = n > k
                dot[has] += v[self._tags.a[start[has] + k]]
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


def _lookup(keys: np.ndarray, values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``values`` at each id's place in the sorted ``keys``, -1 where an id is not there."""
    at, found = find_sorted(keys, ids)
    return np.where(found, values[at], -1) if len(keys) else np.full(len(ids), -1, dtype=np.int64)


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
               index.title, allowed=index.is_listed)
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
