"""The whole dataflow in one Python process: the same step functions as the job's
operators, driven in event order with an event-time watermark and timers as Flink fires
them. The benchmark's core, the quality evaluator and the tests run it; it is no engine
(no checkpoints, no parallelism).

The watermark follows the newest event time minus ``max_out_of_orderness_ms`` after every
event; timers fire in timestamp order, stage by stage (users, then items, then trending),
and each stage's outputs reach the next before the watermark does, as in Flink.
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterable

from udfs import item_side, ranker, user_activity
from udfs.records import BucketCount, Event, Expired, ItemDelta, ItemInfo, NeighborCounts, Trending
from udfs.settings import ItemSettings, RankerSettings, TrendingSettings, UserSettings


KINDS = ("recommendations", "item_neighbors", "trending", "expired_users")


def run(events: Iterable[Event | ItemInfo], catalog: Iterable[ItemInfo], cfg,
        keep: Iterable[str] = KINDS) -> dict[str, list]:
    """The outputs of the kinds in ``keep`` for ``events`` (in order) and a bounded input's
    end, by kind, as the pipeline's in-memory runner returns them (``keep=()``: none, for
    timing the work alone). ``catalog`` is known from the start; catalog records among the
    events (a new model, say) reach the rankers in their place."""
    out: dict[str, list] = {kind: [] for kind in keep}
    flow = Dataflow(cfg, catalog, lambda kind, record: out[kind].append(record) if kind in out else None)
    for ev in events:
        if isinstance(ev, ItemInfo):
            flow.index.put(ev)
        else:
            flow.push(ev)
    flow.finish()
    return out


class _Timers:
    """Event-time timers of one keyed stage: unique per (key, time), fired in time order."""

    def __init__(self):
        self._heap: list = []
        self._set: set = set()

    def add(self, key, times: Iterable[int]) -> None:
        for t in times:
            if (t, key) not in self._set:
                self._set.add((t, key))
                heapq.heappush(self._heap, (t, key))

    def due(self, watermark: int):
        while self._heap and self._heap[0][0] <= watermark:
            t, key = heapq.heappop(self._heap)
            self._set.discard((t, key))
            yield t, key


class Dataflow:
    """``push(event)`` per event; outputs go to ``on_output(kind, record)`` with kind one of
    recommendations, item_neighbors, trending, expired_users."""

    def __init__(self, cfg, catalog: Iterable[ItemInfo] = (), on_output: Callable[[str, object], None] = None,
                 now_ms: Callable[[], int] = lambda: 0):
        self.cfg = cfg
        self.users_cfg, self.items_cfg = UserSettings.of(cfg), ItemSettings.of(cfg)
        self.trending_cfg, self.ranker_cfg = TrendingSettings.of(cfg), RankerSettings.of(cfg)
        self.index = ranker.ItemIndex(cfg.fragment_size, cfg.similarity_shrinkage)
        for info in catalog:
            self.index.put(info)
        self.users: dict = {}
        self.rankers: dict = {}
        self.items: dict = {}
        self.trending = None
        self.user_timers, self.ranker_timers, self.item_timers, self.trending_timers = (
            _Timers(), _Timers(), _Timers(), _Timers())
        self.watermark = -2**63
        self.emit = on_output or (lambda kind, record: None)
        self.now_ms = now_ms

    def push(self, ev: Event) -> None:
        self._keyed(self.users, self.user_timers, ev.user,
                    user_activity.on_event(self.users.get(ev.user), ev, self.users_cfg))
        self._keyed(self.rankers, self.ranker_timers, ev.user,
                    ranker.on_event(self.rankers.get(ev.user), ev, self.index, self.ranker_cfg, self.now_ms()))
        self.advance(ev.t - self.cfg.max_out_of_orderness_ms - 1)

    def advance(self, watermark: int) -> None:
        if watermark <= self.watermark:
            return
        self.watermark = watermark
        for ts, user in self.user_timers.due(watermark):
            self._keyed(self.users, self.user_timers, user,
                        user_activity.on_timer(self.users.get(user), user, ts, self.users_cfg))
        for ts, user in self.ranker_timers.due(watermark):
            self._keyed(self.rankers, self.ranker_timers, user,
                        ranker.on_timer(self.rankers.get(user), user, ts, self.index, self.ranker_cfg, self.now_ms()))
        for ts, item in self.item_timers.due(watermark):
            self._keyed(self.items, self.item_timers, item,
                        item_side.on_item_timer(self.items.get(item), item, ts, self.items_cfg))
        for ts, _ in self.trending_timers.due(watermark):
            self.trending, out, _ = item_side.on_trending_timer(self.trending, ts, self.trending_cfg, self.index.listed)
            self._route(out)

    def finish(self) -> None:
        """End of input: the watermark goes to the end of time, as for a bounded source."""
        self.advance(2**62)

    def _keyed(self, states: dict, timers: _Timers, key, result) -> None:
        state, out, new_timers = result
        if state is None:
            states.pop(key, None)
        else:
            states[key] = state
        timers.add(key, new_timers)
        self._route(out)

    def _route(self, out: list) -> None:
        for msg in out:
            if isinstance(msg, dict):
                self.emit("recommendations", msg)
            elif isinstance(msg, ItemDelta):
                state, _, timers = item_side.on_delta(self.items.get(msg.item), msg, self.items_cfg)
                self.items[msg.item] = state
                self.item_timers.add(msg.item, timers)
            elif isinstance(msg, BucketCount):
                self.trending, _, timers = item_side.on_bucket_count(self.trending, msg, self.trending_cfg)
                self.trending_timers.add(0, timers)
            elif isinstance(msg, NeighborCounts):
                self.index.put(msg)
                record = self.index.neighbor_record(msg.item)
                if record is not None:
                    self.emit("item_neighbors", record)
            elif isinstance(msg, Trending):
                self.index.put(msg)
                self.emit("trending", msg)
            elif isinstance(msg, Expired):
                self.emit("expired_users", msg)
            else:
                raise TypeError(f"unroutable message {msg!r}")
