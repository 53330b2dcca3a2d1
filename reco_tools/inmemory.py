"""Run the pipeline on a local Flink environment from in-memory input and collect every output
(the job tests and the benchmark use it)."""

from __future__ import annotations

import sys
import time

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import MapFunction, StreamExecutionEnvironment

from flink_jobs import contracts, pipeline
from flink_jobs.codec import AvroCodec
from flink_jobs.config import JobConfig
from flink_jobs.operators import PICKLED


def as_records(payloads: list[bytes], partitions: int) -> list[tuple]:
    """RAW_EVENT tuples as a producer keyed by user would write them: partition user mod
    ``partitions``, record timestamp the event time, offset the position. A malformed
    payload goes to partition 0 with the timestamp of the record before it."""
    codec, ts, records = AvroCodec("reco.UserEvent"), -1, []
    for offset, payload in enumerate(payloads):
        try:
            event = codec.decode(payload)
            partition, ts = event["user_id"] % partitions, event["event_time"]
        except Exception:  # noqa: BLE001 (any failure: malformed, as the job will see it)
            partition = 0
        records.append((payload, partition, offset, ts))
    return records


class _Paced(MapFunction):
    """Holds the record at each offset of ``pauses`` back for that many seconds."""

    def __init__(self, pauses: dict[int, float]):
        self.pauses = pauses

    def map(self, record):
        time.sleep(self.pauses.get(record[2], 0))
        return record


def run_pipeline(raw_events: list[bytes], catalog: list[dict], cfg: JobConfig, bundle_size: int = 1,
                 watermark_interval_ms: int = 200, pauses: dict[int, float] | None = None) -> dict[str, list]:
    """``watermark_interval_ms``: how often event time advances, in processing time. In-memory
    input runs through in a blink, so with Flink's default (200 ms) a small test sees event
    time move only at the end: item-side lists, published at bucket ends, would reach the
    rankers after every request.

    ``pauses``: {position in ``raw_events``: seconds} to hold that record back, as a gap in a
    live stream would, so that what the records before it caused on the item side (lists
    published at bucket ends, a few operators away) reaches the rankers before it does."""
    conf = Configuration()
    conf.set_string("pipeline.auto-watermark-interval", f"{watermark_interval_ms} ms")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.fn-execution.bundle.size", str(bundle_size))
    conf.set_string("python.state.cache-size", "100000")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.parallelism)
    items = AvroCodec("reco.ItemFeatures")
    # from_collection is one split; like Kafka, spread it over partitions by record key so
    # that each partition (and so each user) keeps its order at the job's parallelism.
    events = (env.from_collection(as_records(raw_events, cfg.parallelism), type_info=pipeline.RAW_EVENT)
              .key_by(lambda r: r[1], key_type=Types.INT())
              .map(_Paced(pauses or {}), output_type=pipeline.RAW_EVENT))
    cat = env.from_collection([Row(items.encode(r), contracts.record_key(r["item_id"]), 0, i)
                               for i, r in enumerate(catalog)], type_info=pipeline.RAW_ITEM)
    out = pipeline.build(events, cat, cfg)

    def tagged(stream, name):
        return stream.map(lambda x, n=name: (n, x), output_type=PICKLED)

    merged = tagged(out.recommendations, "recommendations").union(
        tagged(out.item_neighbors, "item_neighbors"), tagged(out.dead_letters, "dead_letters"),
        tagged(out.trending, "trending"), tagged(out.expired_users, "expired_users"))
    results: dict[str, list] = {"recommendations": [], "item_neighbors": [], "dead_letters": [], "trending": [],
                                "expired_users": []}
    with merged.execute_and_collect() as it:
        for name, value in it:
            results[name].append(value)
    return results
