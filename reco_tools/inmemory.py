"""Run the pipeline on a local Flink environment from in-memory input and collect every output
(the job tests and the benchmark use it)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

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


class _Held(MapFunction):
    """Holds back every record from each position in ``positions`` on, in every subtask, until
    the client has opened that position's gate (a file named after it in ``gates``), then
    waits ``settle_s`` more. A gate still shut after ``timeout_s`` fails the job."""

    def __init__(self, gates: str, positions: list[int], settle_s: float = 0.5, timeout_s: float = 120.0):
        self.gates, self.positions, self.settle_s, self.timeout_s = gates, sorted(positions), settle_s, timeout_s

    def map(self, record):
        while self.positions and record[2] >= self.positions[0]:
            position = self.positions.pop(0)
            gate, deadline = Path(self.gates, str(position)), time.monotonic() + self.timeout_s
            while not gate.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the input from position {position} on was held {self.timeout_s:.0f} s: "
                                       "the outputs it waits for never came")
                time.sleep(0.02)
            time.sleep(self.settle_s)
        return record


def run_pipeline(raw_events: list[bytes], catalog: list[dict], cfg: JobConfig, bundle_size: int = 1,
                 watermark_interval_ms: int = 200,
                 holds: dict[int, Callable[[dict[str, list]], bool]] | None = None) -> dict[str, list]:
    """``watermark_interval_ms``: how often event time advances, in processing time. In-memory
    input runs through in a blink, so with Flink's default (200 ms) a small test sees event
    time move only at the end: item-side lists, published at bucket ends, would reach the
    rankers after every request.

    ``holds``: {position in ``raw_events``: condition}. The input from that position on waits,
    as a gap in a live stream would, until the outputs collected so far (the dict this returns,
    plus ``"catalog"``: the catalog records the source has handed on) meet the condition; so
    that what the records before it caused a few operators away (the catalog, lists published
    at bucket ends) reaches the rankers before it does, however loaded the machine is."""
    holds = dict(holds or {})
    gates = tempfile.TemporaryDirectory(prefix="reco-holds-")
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
              .map(_Held(gates.name, list(holds)), output_type=pipeline.RAW_EVENT))
    cat = env.from_collection([Row(items.encode(r), contracts.record_key(r["item_id"]), 0, i)
                               for i, r in enumerate(catalog)], type_info=pipeline.RAW_ITEM)
    out = pipeline.build(events, cat, cfg)

    def tagged(stream, name):
        return stream.map(lambda x, n=name: (n, x), output_type=PICKLED)

    merged = tagged(out.recommendations, "recommendations").union(
        tagged(out.item_neighbors, "item_neighbors"), tagged(out.dead_letters, "dead_letters"),
        tagged(out.trending, "trending"), tagged(out.expired_users, "expired_users"),
        cat.map(lambda r: ("catalog", r[3]), output_type=PICKLED))
    results: dict[str, list] = {"recommendations": [], "item_neighbors": [], "dead_letters": [], "trending": [],
                                "expired_users": [], "catalog": []}
    with gates, merged.execute_and_collect() as it:
        for name, value in it:
            results[name].append(value)
            for position in [p for p, met in holds.items() if met(results)]:
                Path(gates.name, str(position)).touch()
                del holds[position]
    if holds:
        raise AssertionError(f"the job ended with the input held at {sorted(holds)}")
    return results
