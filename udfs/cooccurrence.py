"""Windowed item co-occurrence counts, kept as event-time buckets, and similarity."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def pair_weight(n_partners: int) -> float:
    """Down-weight pairs from users with many recent items (a binge says less per pair)."""
    return 1.0 / math.log2(2 + n_partners)


def bucket_of(t: int, bucket_ms: int) -> int:
    return t - t % bucket_ms


_EPSILON = 1e-9  # below any real count (the smallest pair weight is ~0.2)
WINDOW_LAYOUT = "item/2"   # the tag of a plain ItemWindow: a new layout gets a new tag and a migration


@dataclass
class ItemWindow:
    """One item's counts in a sliding event-time window, by bucket start.

    ``pairs[b][j]`` is the weighted co-occurrence count with item j in bucket b and
    ``own[b]`` the item's own count; ``totals`` and ``own_total`` are their running sums
    over the live buckets, kept so that reading the window costs nothing per bucket.
    """

    pairs: dict[int, dict[int, float]] = field(default_factory=dict)
    own: dict[int, float] = field(default_factory=dict)
    totals: dict[int, float] = field(default_factory=dict)
    own_total: float = 0.0

    def plain(self) -> tuple:
        """As plain data, for state (no class in a savepoint), tagged with its layout."""
        return WINDOW_LAYOUT, self.pairs, self.own, self.totals, self.own_total

    @classmethod
    def of(cls, plain: tuple | None) -> "ItemWindow":
        if plain is None:
            return cls()
        if plain[0] != WINDOW_LAYOUT:
            plain = _migrate_window(plain)
        return cls(*plain[1:])


def _migrate_window(plain: tuple) -> tuple:
    """A window of an earlier layout, in this one. Layout 1: the same four fields, untagged."""
    if isinstance(plain[0], str):
        raise ValueError(f"item state of layout {plain[0]!r}: written by a newer version of the job?")
    return (WINDOW_LAYOUT, *plain)


def add_pair(win: ItemWindow, other: int, t: int, w: float, bucket_ms: int) -> None:
    bucket = win.pairs.setdefault(bucket_of(t, bucket_ms), {})
    bucket[other] = bucket.get(other, 0.0) + w
    win.totals[other] = win.totals.get(other, 0.0) + w


def add_own(win: ItemWindow, t: int, w: float, bucket_ms: int) -> None:
    b = bucket_of(t, bucket_ms)
    win.own[b] = win.own.get(b, 0.0) + w
    win.own_total += w


def expire(win: ItemWindow, now: int, window_ms: int, bucket_ms: int) -> None:
    """Drop buckets that ended before ``now - window_ms``."""
    horizon = now - window_ms
    for b in [b for b in win.pairs if b + bucket_ms <= horizon]:
        for j, c in win.pairs.pop(b).items():
            left = win.totals[j] - c
            if left < _EPSILON:
                del win.totals[j]
            else:
                win.totals[j] = left
    for b in [b for b in win.own if b + bucket_ms <= horizon]:
        win.own_total -= win.own.pop(b)
    if not win.own:
        win.own_total = 0.0


def pair_counts(win: ItemWindow, before: int | None = None) -> dict[int, float]:
    """Total count per neighbor (read-only), over the buckets that start before ``before`` if given."""
    later = [b for b in win.pairs if before is not None and b >= before]
    if not later:
        return win.totals
    totals = dict(win.totals)
    for b in later:
        for j, c in win.pairs[b].items():
            left = totals[j] - c
            if left < _EPSILON:
                del totals[j]
            else:
                totals[j] = left
    return totals


def own_count(win: ItemWindow, before: int | None = None) -> float:
    """The item's own count, over the buckets that start before ``before`` if given."""
    if before is None:
        return win.own_total
    return sum(c for b, c in win.own.items() if b < before)


def similarity(c_ij: float, n_i: float, n_j: float, shrinkage: float = 0.0) -> float:
    """Cosine on implicit counts, shrunk toward 0 when the evidence is thin:
    C(i,j) / sqrt(N(i) N(j)) x C(i,j) / (C(i,j) + shrinkage). Without the shrinkage, two
    items that met once, one of them rare, look as similar as two that met a hundred times."""
    if n_i <= 0 or n_j <= 0 or c_ij <= 0:
        return 0.0
    return c_ij / math.sqrt(n_i * n_j) * (c_ij / (c_ij + shrinkage))


def top_neighbors(counts: dict[int, float], n_i: float, n_other: dict[int, float],
                  k: int, shrinkage: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k most similar items, best first, ties by item id: arrays of their ids (int64),
    scores and counts (float64). ``similarity`` for every count at once.

    ``n_other[j]`` is item j's own count as last known here; unknown counts fall back to
    C(i,j), an upper bound on N(j) that keeps the score at most sqrt(C/N(i)).
    """
    ids = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    c = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    kept = c > 0
    ids, c = ids[kept], c[kept]
    n_j = np.maximum(np.fromiter((n_other.get(j, 0.0) for j in ids.tolist()), dtype=np.float64, count=len(ids)), c)
    if n_i > 0:
        scores = c / np.sqrt(n_i * n_j) * (c / (c + shrinkage))
    else:
        scores = np.zeros(len(c))
    best = np.lexsort((ids, -scores))[:k]
    return ids[best], scores[best], c[best]


def prune(win: ItemWindow, keep: set[int], before: int) -> None:
    """Forget every neighbor not in ``keep`` in the buckets that start before ``before``
    (the bounded neighbor set, at most M); later buckets are not touched."""
    for b in [b for b in win.pairs if b < before]:
        for j in [j for j in win.pairs[b] if j not in keep]:
            c = win.pairs[b].pop(j)
            left = win.totals[j] - c
            if left < _EPSILON:
                del win.totals[j]
            else:
                win.totals[j] = left
        if not win.pairs[b]:
            del win.pairs[b]
