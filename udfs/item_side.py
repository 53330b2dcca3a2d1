"""Keyed by item: the windowed co-occurrence counts C(i, j) and own count N(i), fed by
users' per-bucket ``ItemDelta``s; and trending, fed by the items' closed buckets.

At each bucket end (event time) an item publishes its counts as ``NeighborCounts``: by
then every delta of earlier buckets has arrived (users send a bucket's deltas when the
watermark passes its end, before forwarding that watermark), so the published counts are
exactly those of the window (end - L, end). Then, if it has more than M neighbors there,
it forgets all but the M it published, in those buckets only: pruning depends on event
time alone, not on how far the watermark ran ahead (after a restore, deltas of later
buckets may already be in), so a replay prunes the same.

Item state is ``ItemWindow.plain()``; trending state is ``TrendingState.plain()``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from udfs import cooccurrence as co
from udfs.records import BucketCount, ItemDelta, NeighborCounts, Trending
from udfs.settings import ItemSettings, TrendingSettings

TRENDING_LAYOUT = "trending/2"   # the tag of the plain state: a new layout gets a new tag and a migration


class TrendingState(NamedTuple):
    buckets: dict   # {bucket start: {item: count}} of the trending window

    def plain(self) -> tuple:
        return TRENDING_LAYOUT, self.buckets

    @classmethod
    def of(cls, plain) -> "TrendingState":
        if plain is None:
            return cls({})
        if isinstance(plain, dict):   # layout 1: the buckets, untagged
            return cls(plain)
        if plain[0] != TRENDING_LAYOUT:
            raise ValueError(f"trending state of layout {plain[0]!r}: written by a newer version of the job?")
        return cls(plain[1])


def on_delta(state: tuple | None, d: ItemDelta, cfg: ItemSettings) -> tuple[tuple, list, list[int]]:
    """``(state, [], timers)``: one user's bucket of counts added to the item's window."""
    win = co.ItemWindow.of(state)
    timers = []
    if d.bucket not in win.own and d.bucket not in win.pairs:
        end = d.bucket + cfg.bucket_ms
        timers = [end, end + cfg.cooccurrence_window_ms]  # publish; expire
    if d.own:
        co.add_own(win, d.bucket, d.own, cfg.bucket_ms)
    for j, w in d.pairs.items():
        co.add_pair(win, j, d.bucket, w, cfg.bucket_ms)
    return win.plain(), [], timers


def on_item_timer(state: tuple | None, item: int, ts: int, cfg: ItemSettings) -> tuple[tuple | None, list, list[int]]:
    """At a bucket end: expire old buckets, count the closed one for trending, and publish
    the window as of ``ts``. ``(state or None when empty, [BucketCount, NeighborCounts], [])``."""
    if state is None:
        return None, [], []
    win = co.ItemWindow.of(state)
    out: list = []
    closed = win.own.get(ts - cfg.bucket_ms)
    if closed:
        out.append(BucketCount(item, ts - cfg.bucket_ms, closed))
    co.expire(win, ts, cfg.cooccurrence_window_ms, cfg.bucket_ms)
    counts = co.pair_counts(win, before=ts)
    if counts:
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.neighbors_per_item]
        out.append(NeighborCounts(item, ts, co.own_count(win, before=ts), tuple(top)))
        if len(counts) > cfg.neighbors_per_item:   # keep the M published ones, in the buckets before ts
            co.prune(win, {j for j, _ in top}, before=ts)
    if not win.own and not win.pairs:
        return None, out, []
    return win.plain(), out, []


def on_bucket_count(state: tuple | None, c: BucketCount, cfg: TrendingSettings) -> tuple[tuple, list, list[int]]:
    """Trending (one key): ``(state, [], timers)``; one timer per bucket."""
    buckets = TrendingState.of(state).buckets
    bucket = buckets.get(c.bucket)
    timers = []
    if bucket is None:
        bucket = buckets[c.bucket] = {}
        timers = [c.bucket + cfg.bucket_ms]
    bucket[c.item] = bucket.get(c.item, 0.0) + c.count
    return TrendingState(buckets).plain(), [], timers


def on_trending_timer(state: tuple | None, ts: int, cfg: TrendingSettings,
                      listed: Callable[[int], bool]) -> tuple[tuple | None, list, list[int]]:
    """The top items of the trending window that ends at ``ts``, among those the catalog
    lists now (``listed``): counted before the cut, so that events on deleted or made-up
    ids cannot push listed items out of the list."""
    buckets = TrendingState.of(state).buckets
    if not buckets:
        return None, [], []
    live = {b: items for b, items in buckets.items() if b + cfg.bucket_ms > ts - cfg.trending_window_ms}
    totals: dict[int, float] = {}
    for b, items in live.items():
        if b < ts:
            for item, n in items.items():
                if listed(item):
                    totals[item] = totals.get(item, 0.0) + n
    top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.trending_size]
    return (TrendingState(live).plain() if live else None), [Trending(ts, tuple(top))] if top else [], []
