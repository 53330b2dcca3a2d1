"""Thin Flink operators over the pure steps in ``udfs``: build state handles in open(),
then read state, step, write state, set timers, yield. Messages between operators are the
typed records of ``udfs.records``; each keyed operator keeps one plain-data value per key
(one state commit per key and bundle).

State names are part of savepoint compatibility: never rename one after a release.
"""

from __future__ import annotations

import hashlib
import logging
import time

from pyflink.common import Row, Types
from pyflink.datastream import KeyedCoProcessFunction, KeyedProcessFunction, OutputTag, ProcessFunction
from pyflink.datastream.functions import KeyedBroadcastProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flink_jobs import internals
from flink_jobs.codec import AvroCodec, AvroError
from flink_jobs.config import JobConfig
from flink_jobs.contracts import ITEMS_TOPIC, TOPIC_RECORDS, USER_EVENTS_TOPIC
from flink_jobs.validation import MAX_EMBEDDING_DIMS, item_of_key, validate_event, validate_item
from udfs import cooccurrence as co
from udfs import item_side, ranker, user_activity
from udfs.settings import ItemSettings, RankerSettings, TrendingSettings, UserSettings
from udfs.records import BucketCount, Event, Expired, ItemDelta, ItemInfo, Listing, NeighborCounts, Trending

log = logging.getLogger("reco.operators")
PICKLED = Types.PICKLED_BYTE_ARRAY()
# A record with the key its next operator is keyed by, Row(key, record): the stream goes to
# that operator without a Python key selector (internals.keyed), so without a crossing of its own.
BY_USER = Types.ROW([Types.LONG(), PICKLED])
BY_ITEM = Types.ROW([Types.LONG(), PICKLED])
BY_NOTHING = Types.ROW([Types.INT(), PICKLED])   # one key, 0, for the whole stream (Trending)
# A delivered record (flink_jobs.publish): its sink's row, Avro bytes with or without a key.
KEYED_BYTES = Types.ROW_NAMED(["k", "v"], [Types.PRIMITIVE_ARRAY(Types.BYTE())] * 2)
VALUE_BYTES = Types.ROW_NAMED(["v"], [Types.PRIMITIVE_ARRAY(Types.BYTE())])
DEAD_LETTERS = OutputTag("dead-letters", PICKLED)
BUCKET_COUNTS = OutputTag("bucket-counts", BY_NOTHING)
ITEM_NEIGHBORS = OutputTag("item-neighbors", PICKLED)
ITEM_NEIGHBOR_ROWS = OutputTag("item-neighbor-rows", KEYED_BYTES)   # the same, delivered in the Ranker
EXPIRED_USERS = OutputTag("expired-users", PICKLED)
LISTINGS = OutputTag("listings", BY_NOTHING)
# What the rankers know of items, the same on every ranking subtask (values: plain tuples)
CATALOG_STATE = MapStateDescriptor("catalog", Types.LONG(), PICKLED)      # item -> ItemInfo
NEIGHBOR_STATE = MapStateDescriptor("neighbors", Types.LONG(), PICKLED)   # item -> NeighborCounts
TRENDING_STATE = MapStateDescriptor("trending", Types.INT(), PICKLED)     # 0 -> Trending
BROADCAST_STATES = ((CATALOG_STATE, ItemInfo), (NEIGHBOR_STATE, NeighborCounts), (TRENDING_STATE, Trending))


class DecodeEvents(ProcessFunction):
    """Avro bytes -> ``Event``; anything unusable (``validation.validate_event``, with the
    configured event-time bounds and the processing time) or late -> the dead-letter side
    output.

    Late: the event's co-occurrence bucket has closed, i.e. the watermark has passed its
    end. Its pairs could no longer reach the list published for that bucket, so the event is
    refused as a whole (reason ``late: ...``, metric ``eventsLate``). Checked here, against
    the watermark this operator has received, so that no operator downstream can see a
    closed bucket: their watermarks trail this one.

    Input: ``(payload, partition, offset, record timestamp)``; partition and offset are
    -1 when the source does not expose them.
    """

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        self.codec = AvroCodec(TOPIC_RECORDS[USER_EVENTS_TOPIC])
        group = runtime_context.get_metrics_group()
        # PyFlink reports a Python counter once a bundle has updated it (an update in open()
        # is not reported): these appear with their first event (README "Monitoring").
        self.valid = group.counter("eventsValid")
        self.invalid = group.counter("eventsDeadLettered")
        self.late = group.counter("eventsLate")

    def process_element(self, value, ctx):
        payload, partition, offset, ts = value
        ts = None if ts is None or ts < 0 else ts
        try:
            event = self.codec.decode(payload)
            reason = validate_event(event, self.cfg, ctx.timer_service().current_processing_time())
        except AvroError as exc:
            reason = str(exc)
        if reason is None:
            reason = self._lateness(event["event_time"], ctx.timer_service().current_watermark())
        if reason is None:
            self.valid.inc()
            yield _with_key(Event.of(event))
        else:
            self.invalid.inc()
            yield DEAD_LETTERS, dead_letter(bytes(payload or b""), reason, partition, offset, ts)

    def _lateness(self, t: int, watermark: int) -> str | None:
        end = co.bucket_of(t, self.cfg.bucket_ms) + self.cfg.bucket_ms
        if end > watermark:
            return None
        self.late.inc()
        return (f"late: event_time {t} is in the bucket that ended at {end}, and event time is at {watermark} "
                f"(more than max_out_of_orderness_ms behind the newest records)")


# A dead letter must always fit the job's producer (max.request.size, 1 MiB by default) and
# the topic, or the sink fails and every restart replays the same record. Valid events are a
# few hundred bytes, so this keeps any payload worth reading whole.
DEAD_LETTER_PAYLOAD_BYTES = 64 * 1024
DEAD_LETTER_REASON_CHARS = 1_000


def dead_letter(payload: bytes, reason: str, partition: int, offset: int, ts: int | None) -> dict:
    """A reco.DeadLetter record; a payload above DEAD_LETTER_PAYLOAD_BYTES is cut to that
    length, and the reason then gives its whole length and SHA-256."""
    reason = reason[:DEAD_LETTER_REASON_CHARS]
    if len(payload) > DEAD_LETTER_PAYLOAD_BYTES:
        reason += (f" (payload of {len(payload)} bytes, sha256 {hashlib.sha256(payload).hexdigest()}, "
                   f"cut to its first {DEAD_LETTER_PAYLOAD_BYTES})")
        payload = payload[:DEAD_LETTER_PAYLOAD_BYTES]
    return {"payload": payload, "reason": reason, "source_topic": USER_EVENTS_TOPIC, "source_partition": partition,
            "source_offset": offset, "source_timestamp": ts}


class DecodeCatalog(ProcessFunction):
    """Catalog records -> ``ItemInfo`` (main output) and its ``Listing`` (side output
    LISTINGS, for trending). Input: ``(payload, key, partition, offset)`` (pipeline.RAW_ITEM).
    A tombstone (no payload; the key names the item) deletes the item.

    A record that does not decode or fails ``validation.validate_item`` is skipped, counted
    (``catalogRecordsInvalid``) and logged with its partition, offset and reason: the catalog
    is a compacted topic that a team maintains, so a bad record there is for its owners to
    see and fix, not a dead letter among the users' events.
    """

    def __init__(self, precision: str):
        self.precision = precision   # of the packed embeddings (JobConfig.embedding_precision)

    def open(self, runtime_context):
        # an embedding is the longest array a catalog record may have
        self.codec = AvroCodec(TOPIC_RECORDS[ITEMS_TOPIC], max_items=MAX_EMBEDDING_DIMS)
        self.invalid = runtime_context.get_metrics_group().counter("catalogRecordsInvalid")

    def process_element(self, record, ctx):
        payload, key, partition, offset = record
        if payload is None:
            item = item_of_key(key)
            if item is not None:
                yield ItemInfo(item, "", (), True)
                yield LISTINGS, _with_key(Listing(item, False))
                return
            reason = f"a tombstone whose key {bytes(key or b'')[:40]!r} names no item"
        else:
            try:
                r = self.codec.decode(payload)
                reason = validate_item(r, key)
            except AvroError as exc:
                reason = str(exc)
            if reason is None:
                info = ItemInfo.of(r, self.precision)
                yield info
                yield LISTINGS, _with_key(Listing(info.item, not info.deleted))
                return
        self.invalid.inc()
        log.warning("catalog record skipped (%s partition %s offset %s): %s", ITEMS_TOPIC, partition, offset,
                    reason[:300])


# The key of each record type that goes to a keyed operator (BY_USER, BY_ITEM, BY_NOTHING).
_KEY_OF = {Event: lambda e: e.user, ItemDelta: lambda d: d.item,
           BucketCount: lambda c: 0, Listing: lambda c: 0}


def _with_key(record):
    """``Row(key, record)`` for a record that goes to a keyed operator, else ``record``."""
    key = _KEY_OF.get(type(record))
    return record if key is None else Row(key(record), record)


def _apply(handle, result, ctx, side: dict | None = None):
    """Write a step's ``(state, outputs, timers)``: the state (cleared when None), its
    timers, then its outputs, each with its key when it goes to a keyed operator; those of a
    type in ``side`` go to that side output."""
    state, outputs, timers = result
    if state is None:
        handle.clear()
    else:
        handle.update(state)
    for t in timers:
        ctx.timer_service().register_event_time_timer(t)
    for out in outputs:
        tag = side.get(type(out)) if side else None
        yield _with_key(out) if tag is None else (tag, _with_key(out))


class _Breaches:
    """A counter of something that must not happen (the co-occurrence lists would no longer
    equal a batch recount), with a warning for the first few."""

    LOGGED = 10

    def __init__(self, runtime_context, name: str):
        self.name, self.seen = name, 0
        self.counter = runtime_context.get_metrics_group().counter(name)   # appears with its first breach

    def add(self, n: int, detail: str) -> None:
        self.counter.inc(n)
        self.seen += n
        if self.seen - n < self.LOGGED:
            log.warning("%s: %s", self.name, detail)


class _Keyed(KeyedProcessFunction):
    """One plain-data ValueState per key (``STATE``), driven by a pure step."""

    STATE: str
    SIDE: dict = {}
    SETTINGS: type   # the part of the JobConfig its step reads (udfs.settings)

    def __init__(self, cfg: JobConfig):
        self.cfg = self.SETTINGS.of(cfg)

    def open(self, runtime_context):
        internals.commit_touched_keys_only()
        self.state = runtime_context.get_state(ValueStateDescriptor(self.STATE, PICKLED))

    def _apply(self, result, ctx):
        return _apply(self.state, result, ctx, self.SIDE)


class UserActivity(_Keyed):
    """Keyed by user (``udfs.user_activity``), for the item side: ``ItemDelta``s when a
    bucket closes (main output), ``Expired`` when the TTL passes."""

    STATE = "user-activity"
    SIDE = {Expired: EXPIRED_USERS}
    SETTINGS = UserSettings

    def open(self, runtime_context):
        super().open(runtime_context)
        self.late_flushes = _Breaches(runtime_context, "bucketsFlushedLate")

    def process_element(self, ev, ctx):
        yield from self._apply(user_activity.on_event(self.state.value(), ev, self.cfg), ctx)

    def on_timer(self, timestamp, ctx):
        state = self.state.value()
        overdue = user_activity.overdue_buckets(state, timestamp, self.cfg)
        if overdue:   # their own timers should have fired before this one
            self.late_flushes.add(len(overdue), f"user {ctx.get_current_key()}: buckets {overdue} flushed at {timestamp}")
        yield from self._apply(user_activity.on_timer(state, ctx.get_current_key(), timestamp, self.cfg), ctx)


class ItemCooccurrence(_Keyed):
    """Keyed by item (``udfs.item_side``): ``NeighborCounts`` at each bucket end (main
    output), the closed bucket's ``BucketCount`` for trending."""

    STATE = "item-window"
    SIDE = {BucketCount: BUCKET_COUNTS}
    SETTINGS = ItemSettings

    def open(self, runtime_context):
        super().open(runtime_context)
        self.late_deltas = _Breaches(runtime_context, "deltasLate")

    def process_element(self, delta, ctx):
        if delta.bucket + self.cfg.bucket_ms <= ctx.timer_service().current_watermark():  # its list is out
            self.late_deltas.add(1, f"item {delta.item}: a delta of bucket {delta.bucket} after that bucket's list")
        yield from self._apply(item_side.on_delta(self.state.value(), delta, self.cfg), ctx)

    def on_timer(self, timestamp, ctx):
        yield from self._apply(item_side.on_item_timer(self.state.value(), ctx.get_current_key(), timestamp,
                                                       self.cfg), ctx)


class TrendingItems(KeyedCoProcessFunction):
    """One key: windowed popularity from the items' closed buckets (input 1); ``Trending``
    per bucket end, among the items the catalog lists at that moment (``Listing``s, input 2).

    Keyed on both inputs (one key), not broadcast: the listings are keyed state, restored and
    rescaled with the rest."""

    def __init__(self, cfg: JobConfig):
        self.cfg = TrendingSettings.of(cfg)

    def open(self, runtime_context):
        internals.commit_touched_keys_only()
        self.state = runtime_context.get_state(ValueStateDescriptor("trending-window", PICKLED))
        self.listings = runtime_context.get_map_state(MapStateDescriptor("listed", Types.LONG(), Types.BOOLEAN()))
        self.listed = None   # the listings in memory, read from state on first use after a (re)start

    def _listed(self) -> dict:
        if self.listed is None:
            self.listed = dict(self.listings.items())
        return self.listed

    def process_element1(self, count, ctx):
        yield from _apply(self.state, item_side.on_bucket_count(self.state.value(), count, self.cfg), ctx)

    def process_element2(self, listing: Listing, ctx):
        self._listed()[listing.item] = listing.listed
        self.listings.put(listing.item, listing.listed)
        yield from ()

    def on_timer(self, timestamp, ctx):
        listed = self._listed()
        yield from _apply(self.state, item_side.on_trending_timer(self.state.value(), timestamp, self.cfg,
                                                                  lambda item: listed.get(item, False)), ctx)


class Ranker(KeyedBroadcastProcessFunction):
    """Keyed by user (``udfs.ranker``): a list per event (or per debounced burst), ranked
    from the item-side records broadcast to every subtask (catalog, neighbor counts,
    trending). Its timers emit lists only: in thread mode PyFlink 2.2.1 routes no side
    output from a keyed broadcast function's timers.

    Those are kept in broadcast state and mirrored in an in-memory ``ItemIndex``, loaded
    from the state on first use after a (re)start. Each item's published neighbor list
    (side output ITEM_NEIGHBORS) comes from the one subtask with index item mod parallelism.

    ``deliver``: None, or a pair of callables, record -> ``Row(k, v)``, run on each list and
    each neighbor list (``flink_jobs.publish.in_ranker``: to Redis, and Avro bytes for the
    Kafka sinks); the main output and side output ITEM_NEIGHBOR_ROWS then carry their rows.
    PyFlink does not fuse a Python operator after a broadcast one, so delivering here saves
    each list a crossing to another Python operator and that operator's bundle wait.
    """

    def __init__(self, cfg: JobConfig, deliver: tuple | None = None):
        self.cfg = RankerSettings.of(cfg)
        self.fragment_size, self.shrinkage = cfg.fragment_size, cfg.similarity_shrinkage
        self.deliver = deliver

    def open(self, runtime_context):
        internals.commit_touched_keys_only()
        if self.deliver:
            from flink_jobs.publish import open_deliveries

            open_deliveries(runtime_context, self.deliver)
        self.state = runtime_context.get_state(ValueStateDescriptor("ranker", PICKLED))
        group = runtime_context.get_metrics_group()
        self.lists = group.counter("recommendationsEmitted")
        # what this subtask ranks with: the model, catalog records taken in, and the event time
        # of its trending list (behind the watermark by more than a bucket: the item side lags)
        self.tallies = [internals.Tally(group, name, read) for name, read in (
            ("embeddingModelVersion", lambda: self.index.model_version if self.index else 0),
            ("embeddingsRejected", lambda: self.index.embeddings_rejected if self.index else 0),
            ("catalogItems", lambda: len(self.index.info) if self.index else 0),
            ("trendingTime", lambda: self.index.trending_time if self.index else 0))]
        self.subtask, self.subtasks = internals.subtask(runtime_context)
        self.index = None

    def _index(self, ctx) -> ranker.ItemIndex:
        if self.index is None:
            self.index = ranker.ItemIndex(self.fragment_size, self.shrinkage)
            for descriptor, record in BROADCAST_STATES:
                for _, value in ctx.get_broadcast_state(descriptor).items():
                    self.index.put(record(*value))
            self._report()
        return self.index

    def _report(self) -> None:
        for tally in self.tallies:
            tally.report()

    def process_broadcast_element(self, msg, ctx):
        index = self._index(ctx)
        index.put(msg)
        self._report()
        if isinstance(msg, ItemInfo):
            ctx.get_broadcast_state(CATALOG_STATE).put(msg.item, tuple(msg))
        elif isinstance(msg, NeighborCounts):
            ctx.get_broadcast_state(NEIGHBOR_STATE).put(msg.item, tuple(msg))
            if msg.item % self.subtasks == self.subtask:
                record = index.neighbor_record(msg.item)
                if record is not None:
                    yield (ITEM_NEIGHBOR_ROWS, self.deliver[1](record)) if self.deliver else (ITEM_NEIGHBORS, record)
        else:
            ctx.get_broadcast_state(TRENDING_STATE).put(0, tuple(msg))

    def process_element(self, ev: Event, ctx):
        yield from self._lists(ranker.on_event(self.state.value(), ev, self._index(ctx), self.cfg,
                                               int(time.time() * 1000)), ctx)

    def on_timer(self, timestamp, ctx):
        yield from self._lists(ranker.on_timer(self.state.value(), ctx.get_current_key(), timestamp,
                                               self._index(ctx), self.cfg, int(time.time() * 1000)), ctx)

    def _lists(self, result, ctx):
        for record in _apply(self.state, result, ctx):
            self.lists.inc()
            yield self.deliver[0](record) if self.deliver else record
