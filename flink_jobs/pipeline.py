"""The dataflow, from raw event bytes and catalog records to output streams.

It knows nothing of Kafka or Redis: ``main`` attaches sources and sinks, the job tests
attach in-memory collections. Every stateful operator has a stable uid (savepoint
compatibility: never change one after a release) and a readable name.

    raw events ─► watermarks ─► DecodeEvents ─┬─ keyBy(user) ──────────────────────────────► Ranker ─► recommendations
                                   │ bad       │                                               ▲  └─► item neighbors
                                   ▼           └─► keyBy(user) UserActivity                    │ broadcast
                              dead letters                    │ item deltas (at bucket end)    │
                                                              ▼                                │
                                                  keyBy(item) ItemCooccurrence ── neighbor ───►┤
                                                              │ bucket counts       counts     │
                                                              ▼                                │
                                                       Trending (p=1) ───── trending ─────────►┤
                                                              ▲ listings                       │
                                               catalog ─► DecodeCatalog ───────────────────────┘

Per event, two keyed Python operators touch state, side by side: the Ranker (the user's
list) and UserActivity (the user's pairs, for the item side). A list waits for one keyed
operator after Decode, not two. The item side works once per (user, item, bucket) and each
item once per bucket end. (The Ranker cannot be where the pairs are made: its input would
then depend on its own output, a cycle that a DataStream job cannot have.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import DataStream

from flink_jobs.internals import install_timer_fix, keyed, side_output
from flink_jobs.config import JobConfig
from flink_jobs.operators import (BROADCAST_STATES, BUCKET_COUNTS, BY_ITEM, BY_NOTHING, BY_USER, DEAD_LETTERS,
                                  EXPIRED_USERS, ITEM_NEIGHBOR_ROWS, ITEM_NEIGHBORS, KEYED_BYTES,
                                  LISTINGS, PICKLED, DecodeCatalog, DecodeEvents, ItemCooccurrence, Ranker,
                                  TrendingItems, UserActivity)


# What a source hands the pipeline for each input event. -1 marks an unknown field.
RAW_EVENT = Types.TUPLE([Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.INT(), Types.LONG(), Types.LONG()])
# A catalog record: (payload, key, partition, offset); no payload for a tombstone.
RAW_ITEM = Types.ROW([Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.INT(),
                      Types.LONG()])


@dataclass
class Outputs:
    recommendations: DataStream   # dicts shaped like reco.Recommendations (with deliver: rows)
    item_neighbors: DataStream    # dicts shaped like reco.ItemNeighbors (with deliver: rows)
    dead_letters: DataStream      # dicts shaped like reco.DeadLetter
    trending: DataStream          # udfs.records.Trending
    expired_users: DataStream     # udfs.records.Expired, when a user's state passed its TTL


class RecordTime(TimestampAssigner):
    """The record's timestamp, but never later than the clock (as the Kafka source's)."""

    def extract_timestamp(self, value, record_timestamp) -> int:
        return min(value[3], int(time.time() * 1000))


def _event_time(raw_events: DataStream, cfg: JobConfig) -> DataStream:
    """Timestamps and watermarks from the records' timestamps (RAW_EVENT's last field), as
    the Kafka source derives them (RecordTime)."""
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(cfg.max_out_of_orderness_ms))
    if cfg.idle_source_timeout_ms:
        # before the assigner: PyFlink 2.2.1's with_idleness() returns a strategy without
        # the Python timestamp assigner set on the one it was called on
        watermarks = watermarks.with_idleness(Duration.of_millis(cfg.idle_source_timeout_ms))
    watermarks = watermarks.with_timestamp_assigner(RecordTime())
    return raw_events.assign_timestamps_and_watermarks(watermarks).uid("event-time").name("Event time")


def build(raw_events: DataStream, catalog: DataStream, cfg: JobConfig, assign_watermarks: bool = True,
          deliver: tuple | None = None) -> Outputs:
    """``raw_events``: ``(payload, partition, offset, kafka timestamp)`` tuples (RAW_EVENT);
    ``catalog``: reco.ItemFeatures records (RAW_ITEM). ``assign_watermarks=False`` when
    the source already stamps records and emits watermarks (the Kafka source does, per
    partition, from record timestamps); otherwise from the same timestamps (RAW_EVENT's last
    field, which an in-memory source sets to the event time) with the same bounds.

    Each user's events must reach UserActivity and the Ranker in their source order, so
    nothing may redistribute them between the source and the key-by on user: ``raw_events``
    must run at the environment's parallelism (a Kafka source does; PyFlink's Python
    timestamp assigner adds a hidden operator at that parallelism, fed by rebalance
    otherwise).

    ``deliver``: the Ranker's delivery of the lists and neighbor lists (``operators.Ranker``);
    those outputs are then ``Row(k, v)`` (KEYED_BYTES) instead of dicts.
    """
    install_timer_fix(raw_events.get_execution_environment())
    stamped = _event_time(raw_events, cfg) if assign_watermarks else raw_events
    events = stamped.process(DecodeEvents(cfg), output_type=BY_USER).uid("decode-events").name("Decode and validate")
    by_user = keyed(events, BY_USER)
    deltas = by_user.process(UserActivity(cfg), output_type=BY_ITEM).uid("user-activity-v2").name("UserActivity")
    neighbor_counts = (keyed(deltas, BY_ITEM)
                       .process(ItemCooccurrence(cfg), output_type=PICKLED)
                       .uid("item-cooccurrence-v2").name("ItemCooccurrence"))
    items = catalog.process(DecodeCatalog(cfg.embedding_precision), output_type=PICKLED).uid("decode-catalog").name("Decode catalog")
    trending = (keyed(side_output(neighbor_counts, BUCKET_COUNTS), BY_NOTHING)
                .connect(keyed(side_output(items, LISTINGS), BY_NOTHING))
                .process(TrendingItems(cfg), output_type=PICKLED).uid("trending-v2").name("Trending")
                .set_parallelism(1))
    broadcast = items.union(neighbor_counts, trending).broadcast(*(d for d, _ in BROADCAST_STATES))
    recommendations = (by_user.connect(broadcast)
                       .process(Ranker(cfg, deliver), output_type=KEYED_BYTES if deliver else PICKLED)
                       .uid("ranker-v2").name("Ranker"))
    return Outputs(recommendations=recommendations,
                   item_neighbors=side_output(recommendations, ITEM_NEIGHBOR_ROWS if deliver else ITEM_NEIGHBORS),
                   dead_letters=side_output(events, DEAD_LETTERS),
                   trending=trending,
                   expired_users=side_output(deltas, EXPIRED_USERS))
