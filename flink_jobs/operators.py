"""Thin Flink operators: build state handles in open(), then read state, call udfs, write
state, set timers, yield. Messages between operators are plain tuples whose first field
says what they are and whose second field is the key of the operator they go to.

State names are part of savepoint compatibility: never rename one after a release.
"""

from __future__ import annotations

import math
import time

from pyflink.common import Types
from pyflink.datastream import FlatMapFunction, KeyedProcessFunction, OutputTag, ProcessFunction
from pyflink.datastream.functions import KeyedBroadcastProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flink_jobs.codec import AvroCodec, AvroError
from flink_jobs.config import JobConfig
from flink_jobs.contracts import ITEMS_TOPIC, TOPIC_RECORDS, USER_EVENTS_TOPIC
from udfs import cooccurrence as co
from udfs.ranking import merge_fragments, rank
from udfs.recent import add_recent
from udfs.signals import InterestVector, add_interest, event_weight, interest_similarity
from udfs.debounce import add_event
from udfs.versioning import next_version

PICKLED = Types.PICKLED_BYTE_ARRAY()
DEAD_LETTERS = OutputTag("dead-letters", PICKLED)
RANKING_REQUESTS = OutputTag("ranking-requests", PICKLED)
ITEM_NEIGHBORS = OutputTag("item-neighbors", PICKLED)
EXPIRED_USERS = OutputTag("expired-users", PICKLED)  # (user, event time) when its state is dropped
CATALOG_STATE = MapStateDescriptor("catalog", Types.LONG(), PICKLED)  # item -> (title, tags, deleted)
TRENDING_STATE = MapStateDescriptor("trending", Types.INT(), PICKLED)  # 0 -> [(item, count)]

_VALID_TYPES = {"VIEW", "CLICK", "ADD_TO_CART", "PURCHASE", "RATING"}


def validate_event(ev: dict) -> str | None:
    """Why a decoded event cannot be used, or None."""
    if ev["user_id"] < 0 or ev["item_id"] < 0:
        return f"negative id (user {ev['user_id']}, item {ev['item_id']})"
    if ev["event_time"] <= 0:
        return f"event_time {ev['event_time']} is not a positive epoch-milliseconds value"
    if ev["event_type"] not in _VALID_TYPES:
        return f"unknown event_type {ev['event_type']!r}"
    value = ev.get("value")
    if value is not None and not math.isfinite(value):
        return f"value {value} is not finite"
    if ev["event_type"] == "RATING" and (value is None or not 0.0 <= value <= 5.0):
        return f"RATING needs a value within [0, 5], got {value}"
    return None


class DecodeEvents(ProcessFunction):
    """Avro bytes -> event dict; anything unusable -> the dead-letter side output.

    Input: ``(payload, partition, offset, kafka_timestamp)``; partition and offset are
    -1 when the source does not expose them.
    """

    def open(self, runtime_context):
        self.codec = AvroCodec(TOPIC_RECORDS[USER_EVENTS_TOPIC])
        group = runtime_context.get_metrics_group()
        self.valid = group.counter("eventsValid")
        self.invalid = group.counter("eventsDeadLettered")

    def process_element(self, value, ctx):
        payload, partition, offset, ts = value
        ts = None if ts is None or ts < 0 else ts
        try:
            event = self.codec.decode(payload)
            reason = validate_event(event)
        except AvroError as exc:
            reason = str(exc)
        if reason is None:
            self.valid.inc()
            yield event
        else:
            self.invalid.inc()
            yield DEAD_LETTERS, {"payload": bytes(payload or b""), "reason": reason,
                                 "source_topic": USER_EVENTS_TOPIC, "source_partition": partition,
                                 "source_offset": offset, "source_timestamp": ts}


class DecodeCatalog(FlatMapFunction):
    """ItemFeatures bytes -> ``("item", id, title, tags, deleted)``; undecodable ones are
    counted and skipped (the dead-letter topic is for user events)."""

    def open(self, runtime_context):
        self.codec = AvroCodec(TOPIC_RECORDS[ITEMS_TOPIC])
        self.invalid = runtime_context.get_metrics_group().counter("catalogRecordsInvalid")

    def flat_map(self, payload):
        try:
            r = self.codec.decode(payload)
        except AvroError:
            self.invalid.inc()
            return
        yield "item", r["item_id"], r["title"], tuple(r["tags"]), r["deleted"]


def touch(last_seen, ttl_timer, t: int, ttl_ms: int, ctx) -> None:
    """Record activity at event time ``t``; keep one TTL timer per key, not one per event."""
    last = max(last_seen.value() or 0, t)
    last_seen.update(last)
    if ttl_timer.value() is None:
        ctx.timer_service().register_event_time_timer(last + ttl_ms)
        ttl_timer.update(last + ttl_ms)


def expired(last_seen, ttl_timer, timestamp: int, ttl_ms: int, ctx) -> bool:
    """On the TTL timer: True when the key was inactive for ``ttl_ms``; else re-arm it."""
    if ttl_timer.value() != timestamp:
        return False  # another timer of this key (e.g. a window bucket)
    due = (last_seen.value() or 0) + ttl_ms
    if due <= timestamp:
        return True
    ctx.timer_service().register_event_time_timer(due)
    ttl_timer.update(due)
    return False


class UserActivity(KeyedProcessFunction):
    """Keyed by user: recent items, per-user version, event-time TTL.

    Main output, for the item side: ``("occ", item, t, weight, partners)`` per event and
    ``("flush", item, user, version, seeds)`` when a list is due (keyed by the burst's last
    item, so it follows that event's pair updates). Side output RANKING_REQUESTS:
    ``("req", user, version, t, events, n_seeds)``, ``events`` being every (item, weight, t)
    since the previous request. With ``debounce_ms`` > 0 a burst of events gets one list.
    """

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        self.recent = runtime_context.get_state(ValueStateDescriptor("recent-items", PICKLED))
        self.version = runtime_context.get_state(ValueStateDescriptor("version", Types.LONG()))
        self.last_seen = runtime_context.get_state(ValueStateDescriptor("last-seen", Types.LONG()))
        self.ttl_timer = runtime_context.get_state(ValueStateDescriptor("ttl-timer", Types.LONG()))
        self.burst = runtime_context.get_state(ValueStateDescriptor("burst", PICKLED))

    def process_element(self, ev, ctx):
        cfg = self.cfg
        user, item, t = ev["user_id"], ev["item_id"], ev["event_time"]
        weight = event_weight(ev["event_type"], ev.get("value"))
        version = next_version(self.version.value(), t)
        self.version.update(version)
        touch(self.last_seen, self.ttl_timer, t, cfg.user_ttl_ms, ctx)

        recent = self.recent.value() or []
        partners: list[int] = []
        if weight > 0:  # a low rating is consumed (and excluded) but is no interest signal
            recent, partners = add_recent(recent, item, t, weight, cfg.recent_items, cfg.pair_span_ms)
            self.recent.update(recent)
        yield "occ", item, t, weight, partners
        seeds = [(i, w) for i, _, w in recent[-cfg.seeds:]]
        burst, flushed, new = add_event(self.burst.value(), version, t, item, weight, seeds, cfg.debounce_ms)
        if flushed is not None:
            yield from self._flush(user, flushed)
        if cfg.debounce_ms == 0:
            yield from self._flush(user, burst)
            self.burst.clear()
        else:
            if new:
                ctx.timer_service().register_event_time_timer(burst.due)
            self.burst.update(burst)

    @staticmethod
    def _flush(user: int, burst):
        last_item = burst.events[-1][0]
        yield "flush", last_item, user, burst.version, burst.seeds
        yield RANKING_REQUESTS, ("req", user, burst.version, burst.t, burst.events, len(burst.seeds))

    def on_timer(self, timestamp, ctx):
        burst = self.burst.value()
        if burst is not None and burst.due == timestamp:
            self.burst.clear()
            yield from self._flush(ctx.get_current_key(), burst)
        if expired(self.last_seen, self.ttl_timer, timestamp, self.cfg.user_ttl_ms, ctx):
            for handle in (self.recent, self.version, self.last_seen, self.ttl_timer, self.burst):
                handle.clear()
            yield EXPIRED_USERS, (ctx.get_current_key(), timestamp)


class ItemCount(KeyedProcessFunction):
    """Keyed by item: the item's own windowed count N(i), attached to the pair updates.

    Emits, keyed by their second field: ``("self", i, t, N(i))``; ``("pairs", i,
    partners, t, w)`` for item i's side of its pairs; per partner j ``("pair", j, i, t, w,
    N(i))``; per seed s ``("seed", s, user, version, seed_weight)``. One subtask sends all of them in this
    order, so a seed request reaches item s after the pair updates of the same event.
    """

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        self.window = runtime_context.get_state(ValueStateDescriptor("own-window", PICKLED))

    def process_element(self, msg, ctx):
        if msg[0] == "flush":
            _, _, user, version, seeds = msg
            for seed, seed_weight in seeds:
                yield "seed", seed, user, version, seed_weight
            return
        _, item, t, weight, partners = msg
        cfg = self.cfg
        if weight > 0:
            win = self.window.value() or co.ItemWindow()
            bucket = co.bucket_of(t, cfg.bucket_ms)
            if bucket not in win.own:
                ctx.timer_service().register_event_time_timer(bucket + cfg.bucket_ms + cfg.cooccurrence_window_ms)
            co.add_own(win, t, 1.0, cfg.bucket_ms)
            self.window.update(win)
            n_self = co.own_count(win)
            yield "self", item, t, n_self
            if partners:
                w = co.pair_weight(len(partners))
                yield "pairs", item, partners, t, w
                for j in partners:
                    yield "pair", j, item, t, w, n_self

    def on_timer(self, timestamp, ctx):
        win = self.window.value()
        if win is not None:
            co.expire(win, timestamp, self.cfg.cooccurrence_window_ms, self.cfg.bucket_ms)
            if win.own:
                self.window.update(win)
            else:
                self.window.clear()
        yield from ()


class ItemCooccurrence(KeyedProcessFunction):
    """Keyed by item: windowed co-occurrence counts, bounded neighbor set, fragments.

    Main output: ``("frag", user, version, seed, seed_weight, neighbors)`` keyed by user.
    Side output ITEM_NEIGHBORS: ItemNeighbors records, once per bucket in which the item
    gained pairs (debounced by event time, so a replay publishes the same lists).
    """

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        self.window = runtime_context.get_state(ValueStateDescriptor("pair-window", PICKLED))
        self.counts = runtime_context.get_state(ValueStateDescriptor("neighbor-item-counts", PICKLED))

    def process_element(self, msg, ctx):
        cfg = self.cfg
        kind, item = msg[0], msg[1]
        counts = self.counts.value() or {}
        if kind == "self":
            counts[item] = msg[3]
            self.counts.update(counts)
            return
        win = self.window.value() or co.ItemWindow()
        if kind in ("pair", "pairs"):
            t = msg[3]
            bucket = co.bucket_of(t, cfg.bucket_ms)
            if bucket not in win.pairs:  # one pair of timers per bucket, not per message
                ctx.timer_service().register_event_time_timer(bucket + cfg.bucket_ms)  # publish
                ctx.timer_service().register_event_time_timer(
                    bucket + cfg.bucket_ms + cfg.cooccurrence_window_ms)  # expire
            if kind == "pair":
                _, _, other, t, w, n_other = msg
                co.add_pair(win, other, t, w, cfg.bucket_ms)
                counts[other] = n_other
            else:
                _, _, partners, t, w = msg
                for other in partners:
                    co.add_pair(win, other, t, w, cfg.bucket_ms)
            totals = co.pair_counts(win)
            if len(totals) > cfg.neighbors_per_item:
                # prune to 3/4 of M so that the sort is paid once per M/4 new neighbors
                keep = {j for j, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
                        [: max(1, cfg.neighbors_per_item * 3 // 4)]}
                co.prune(win, keep)
                counts = {j: n for j, n in counts.items() if j in keep or j == item}
            self.window.update(win)
            self.counts.update(counts)
        else:  # seed request
            _, _, user, version, seed_weight = msg
            neighbors = co.top_neighbors(co.pair_counts(win), counts.get(item, 0.0), counts,
                                         cfg.fragment_size)
            yield "frag", user, version, item, seed_weight, neighbors

    def on_timer(self, timestamp, ctx):
        """At each bucket end: expire old buckets, publish the list as of ``timestamp``.

        Once the watermark passes a bucket's end every pair before it has arrived, so the
        published counts are exactly those of the window (timestamp - L, timestamp).
        """
        cfg = self.cfg
        win = self.window.value()
        if win is None:
            return
        co.expire(win, timestamp, cfg.cooccurrence_window_ms, cfg.bucket_ms)
        if not win.pairs:
            self.window.clear()
            return
        self.window.update(win)
        counts = self.counts.value() or {}
        item = ctx.get_current_key()
        n_self = counts.get(item, 0.0)
        neighbors = co.top_neighbors(co.pair_counts(win, before=timestamp), n_self, counts,
                                     cfg.fragment_size)
        if not neighbors:  # every pair is in a later bucket: that bucket's end publishes them
            return
        yield ITEM_NEIGHBORS, {
            "item_id": item, "item_count": n_self, "event_time": timestamp,
            "neighbors": [{"item_id": j, "score": s, "co_count": c} for j, s, c in neighbors]}


class Trending(KeyedProcessFunction):
    """One key: windowed popularity of items; emits the top list when a bucket closes."""

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        self.window = runtime_context.get_state(ValueStateDescriptor("trending-window", PICKLED))

    def process_element(self, msg, ctx):
        if msg[0] == "occ" and msg[3] > 0:
            _, item, t = msg[:3]
            self._count(item, t, ctx)
        yield from ()

    def _count(self, item, t, ctx):
        bucket_ms = self.cfg.bucket_ms
        win = self.window.value() or co.ItemWindow()
        if co.bucket_of(t, bucket_ms) not in win.pairs:
            ctx.timer_service().register_event_time_timer(co.bucket_of(t, bucket_ms) + bucket_ms)
        co.add_pair(win, item, t, 1.0, bucket_ms)
        self.window.update(win)

    def on_timer(self, timestamp, ctx):
        win = self.window.value()
        if win is None:
            return
        co.expire(win, timestamp, self.cfg.trending_window_ms, self.cfg.bucket_ms)
        self.window.update(win)
        counts = co.pair_counts(win)
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.cfg.trending_size]
        yield "trending", 0, timestamp, top


class Ranker(KeyedBroadcastProcessFunction):
    """Keyed by user: gathers each request's fragments, emits every version in order.

    Keyed input: requests ``("req", ...)`` and fragments ``("frag", ...)``, which arrive in
    any order. A request's own event (interest, consumed items) is applied when its list is
    emitted, so list v reflects exactly the user's events up to v, and every version is
    emitted once, in order: the set of versions is the same on every run and replay.
    Broadcast input: ``("item", id, title, tags, deleted)`` and ``("trending", 0, t, top)``.
    """

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        self.pending = runtime_context.get_state(ValueStateDescriptor("pending-requests", PICKLED))
        self.interest = runtime_context.get_state(ValueStateDescriptor("interest-vector", PICKLED))
        self.consumed = runtime_context.get_state(ValueStateDescriptor("consumed-items", PICKLED))
        self.last_seen = runtime_context.get_state(ValueStateDescriptor("last-seen", Types.LONG()))
        self.ttl_timer = runtime_context.get_state(ValueStateDescriptor("ttl-timer", Types.LONG()))
        self.lists = runtime_context.get_metrics_group().counter("recommendationsEmitted")

    def process_broadcast_element(self, msg, ctx):
        if msg[0] == "item":
            _, item, title, tags, deleted = msg
            ctx.get_broadcast_state(CATALOG_STATE).put(item, (title, tags, deleted))
        else:
            ctx.get_broadcast_state(TRENDING_STATE).put(0, msg[3])

    def process_element(self, msg, ctx):
        pending = self.pending.value() or {}
        if msg[0] == "req":
            _, user, version, t, events, n_seeds = msg
            pending.setdefault(version, {"frags": []}).update(user=user, t=t, events=events, expected=n_seeds)
            touch(self.last_seen, self.ttl_timer, t, self.cfg.user_ttl_ms, ctx)
        else:
            _, user, version, seed, seed_weight, neighbors = msg
            pending.setdefault(version, {"frags": []})["frags"].append((seed, seed_weight, neighbors))
        while pending:
            version = min(pending)
            req = pending[version]
            if "expected" not in req or len(req["frags"]) < req["expected"]:
                break
            del pending[version]
            self._apply_events(ctx, req)
            self.lists.inc()
            yield self._recommend(ctx, version, req)
        self.pending.update(pending)

    def _apply_events(self, ctx, req: dict) -> None:
        cfg = self.cfg
        catalog = ctx.get_broadcast_state(CATALOG_STATE)
        vec = self.interest.value() or InterestVector()
        consumed = self.consumed.value() or {}
        for item, weight, t in req["events"]:
            entry = catalog.get(item)
            vec = add_interest(vec, entry[1] if entry else (), weight, t, cfg.interest_half_life_ms)
            consumed[item] = max(consumed.get(item, 0), t)
        self.interest.update(vec)
        if len(consumed) > cfg.max_consumed:
            consumed = dict(sorted(consumed.items(), key=lambda kv: (kv[1], kv[0]))[-cfg.max_consumed:])
        self.consumed.update(consumed)

    def _recommend(self, ctx, version: int, req: dict) -> dict:
        cfg = self.cfg
        catalog = ctx.get_broadcast_state(CATALOG_STATE)
        vec = self.interest.value() or InterestVector()
        consumed = self.consumed.value() or {}

        def tags(item):
            entry = catalog.get(item)
            return entry[1] if entry else ()

        def title(item):
            entry = catalog.get(item)
            return entry[0] if entry else f"item {item}"

        candidates = merge_fragments(req["frags"])
        exclude = set(consumed) | {i for i in candidates if (catalog.get(i) or (0, 0, False))[2]}
        trending = ctx.get_broadcast_state(TRENDING_STATE).get(0) or []
        top = rank(candidates, lambda i: interest_similarity(vec, tags(i)), exclude, cfg.top_n,
                   cfg.interest_weight, trending, title)
        return {"user_id": req["user"], "version": version, "event_time": req["t"],
                "generated_at": int(time.time() * 1000),
                "items": [{"item_id": i, "score": float(s), "reason": r} for i, s, r in top]}

    def on_timer(self, timestamp, ctx):
        if expired(self.last_seen, self.ttl_timer, timestamp, self.cfg.user_ttl_ms, ctx):
            for handle in (self.pending, self.interest, self.consumed, self.last_seen, self.ttl_timer):
                handle.clear()
        yield from ()
