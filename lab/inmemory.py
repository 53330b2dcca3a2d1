"""Run the pipeline on a local Flink environment from in-memory input and gather every output
(the job tests and the benchmarks use it).

Outputs do not come back through PyFlink's ``execute_and_collect``: its iterator fetches one
record per py4j call, and a record over 8 KiB (a neighbor list of a few hundred items) is
answered in two TCP segments, the second held by Nagle's algorithm until the client's
delayed ACK: about 40 ms a record, so a long run crawled with every operator backpressured
and no CPU used. Instead each output stream's subtasks append length-prefixed pickles to
files of their own, which this process reads as they grow.

A run that stops making progress fails: no new output for ``stall_s`` seconds (held input
waits as long at most) cancels the job and raises ``PipelineStalled``, which says where the
input is held and what was gathered.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import FlatMapFunction, MapFunction, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink

from flink_jobs import contracts, internals, pipeline
from flink_jobs.codec import AvroCodec
from flink_jobs.config import JobConfig
from flink_jobs.operators import PICKLED
from lab.jobs import FlinkRest

KINDS = ("recommendations", "item_neighbors", "dead_letters", "trending", "expired_users")   # pipeline.Outputs
_FRAME = struct.Struct(">I")


class PipelineStalled(AssertionError):
    """The job made no progress for too long (an AssertionError: a test reports a failure)."""


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
    the client has opened that position's gate (a file named after it in ``gates``). A gate
    still shut after ``timeout_s`` fails the job."""

    def __init__(self, gates: str, positions: list[int], timeout_s: float):
        self.gates, self.positions, self.timeout_s = gates, sorted(positions), timeout_s

    def map(self, record):
        while self.positions and record[2] >= self.positions[0]:
            position = self.positions.pop(0)
            gate, deadline = Path(self.gates, str(position)), time.monotonic() + self.timeout_s
            while not gate.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the input from position {position} on was held {self.timeout_s:.0f} s: "
                                       "the evidence it waits for never came")
                time.sleep(0.02)
        return record


class _Write(FlatMapFunction):
    """Appends each record, pickled and length-prefixed, to a file of this subtask's own in
    ``folder``; emits nothing."""

    def __init__(self, folder: str, kind: str):
        self.folder, self.kind = folder, kind

    def open(self, runtime_context):
        name = f"{self.kind}.{internals.subtask(runtime_context)[0]}.{os.getpid()}.{id(self)}.out"
        self.file = open(Path(self.folder, name), "ab")

    def flat_map(self, value):
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self.file.write(_FRAME.pack(len(data)) + data)
        self.file.flush()
        return ()

    def close(self):
        self.file.close()


class _Reader:
    """Reads the records the writers of ``folder`` have appended since the last call."""

    def __init__(self, folder: Path):
        self.folder, self.offsets = folder, {}

    def read(self, into: dict[str, list]) -> int:
        count = 0
        for path in sorted(self.folder.glob("*.out")):
            kind, offset = path.name.split(".", 1)[0], self.offsets.get(path, 0)
            if path.stat().st_size == offset:   # nothing new
                continue
            with open(path, "rb") as f:
                f.seek(offset)
                while True:
                    head = f.read(_FRAME.size)
                    if len(head) < _FRAME.size:
                        break
                    (size,) = _FRAME.unpack(head)
                    data = f.read(size)
                    if len(data) < size:   # still being written
                        break
                    into[kind].append(pickle.loads(data))
                    self.offsets[path] = f.tell()
                    count += 1
        return count


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """What a hold's condition sees: the outputs gathered so far (``outputs``: kind ->
    records) and the running job's metrics (``gauge``)."""

    def __init__(self, outputs: dict[str, list], rest: FlinkRest, job_id: str):
        self.outputs, self.rest, self.job_id = outputs, rest, job_id

    def gauge(self, operator: str, name: str) -> list[float] | None:
        """``name``'s value on every subtask of the operator ``operator``, or None while any
        subtask has not reported it yet."""
        return self.rest.subtask_metric(self.job_id, operator, name)


def run_pipeline(raw_events: list[bytes], catalog: list[dict], cfg: JobConfig, bundle_size: int = 1,
                 watermark_interval_ms: int = 200, holds: dict[int, Callable[[Run], bool]] | None = None,
                 stall_s: float = 300.0, writer_pids: set[int] | None = None) -> dict[str, list]:
    """The outputs of the pipeline for ``raw_events`` and ``catalog``, by kind (``KINDS``).

    ``watermark_interval_ms``: how often event time advances, in processing time. In-memory
    input runs through in a blink, so with Flink's default (200 ms) a small test sees event
    time move only at the end: item-side lists, published at bucket ends, would reach the
    rankers after every request.

    ``holds``: {position in ``raw_events``: condition on the ``Run``}. The input from that
    position on waits, as a gap in a live stream would, until the condition holds, so that
    what the records before it caused a few operators away (the catalog, lists published at
    bucket ends) reaches the rankers before it does, however loaded the machine is. Ask the
    rankers themselves (``Run.gauge``): a list seen in the outputs may not have reached every
    ranking subtask yet.

    ``writer_pids``: filled with the process ids the output writers (Python operators) ran in:
    the TaskManager's own in thread mode, worker processes of their own in process mode."""
    with tempfile.TemporaryDirectory(prefix="reco-inmemory-", ignore_cleanup_errors=True) as work:
        gates, outputs = Path(work, "gates"), Path(work, "outputs")
        gates.mkdir()
        outputs.mkdir()
        port = _free_port()
        env = _environment(cfg, bundle_size, watermark_interval_ms, port)
        items = AvroCodec("reco.ItemFeatures")
        # from_collection is one split; like Kafka, spread it over partitions by record key so
        # that each partition (and so each user) keeps its order at the job's parallelism.
        events = (env.from_collection(as_records(raw_events, cfg.parallelism), type_info=pipeline.RAW_EVENT)
                  .key_by(lambda r: r[1], key_type=Types.INT())
                  .map(_Held(str(gates), list(holds or {}), stall_s), output_type=pipeline.RAW_EVENT))
        cat = env.from_collection([Row(items.encode(r), contracts.record_key(r["item_id"]), 0, i)
                                   for i, r in enumerate(catalog)], type_info=pipeline.RAW_ITEM)
        out = pipeline.build(events, cat, cfg)
        discard = Sink("org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink")
        for kind in KINDS:
            getattr(out, kind).flat_map(_Write(str(outputs), kind), output_type=PICKLED).sink_to(discard)
        reader = _Reader(outputs)
        try:
            return _follow(env.execute_async("reco-inmemory"), FlinkRest(port), reader, gates, dict(holds or {}), stall_s)
        finally:
            if writer_pids is not None:
                writer_pids.update(int(path.name.split(".")[2]) for path in outputs.glob("*.out"))


def _environment(cfg: JobConfig, bundle_size: int, watermark_interval_ms: int, rest_port: int):
    # Python workers in processes of their own: both cores, and no operator in this process.
    # They import lab (this module's _Held and _Write) from the checkout they run in.
    internals.use_worker_processes()
    conf = Configuration()
    conf.set_string("pipeline.auto-watermark-interval", f"{watermark_interval_ms} ms")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.fn-execution.bundle.size", str(bundle_size))
    conf.set_string("python.state.cache-size", str(cfg.state_cache_keys))
    for key, value in internals.python_execution_options(cfg.python_execution_mode, local=True).items():
        conf.set_string(key, value)
    conf.set_string("rest.port", str(rest_port))
    conf.set_string("rest.bind-address", "127.0.0.1")
    conf.set_string("metrics.fetcher.update-interval", "300")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.parallelism)
    return env


def _follow(client, rest: FlinkRest, reader: _Reader, gates: Path, holds: dict, stall_s: float) -> dict[str, list]:
    """Gathers the job's outputs until it ends, opening the holds' gates as their conditions
    come true; cancels the job (and waits for it to end) however this ends early."""
    results: dict[str, list] = {kind: [] for kind in KINDS}
    run = Run(results, rest, str(client.get_job_id()))
    finished = client.get_job_execution_result()
    progress = checked = time.monotonic()
    try:
        while not finished.done():
            now = time.monotonic()
            if reader.read(results):
                progress = now
            if holds and now - checked >= 0.5:   # a condition may ask the REST API
                checked = now
                for position in [p for p, met in holds.items() if met(run)]:
                    Path(gates, str(position)).touch()
                    del holds[position]
                    progress = now
            if now - progress > stall_s:
                held = f"; input held at {sorted(holds)}" if holds else ""
                raise PipelineStalled(f"no output for {stall_s:.0f} s{held}; gathered so far: "
                                      + ", ".join(f"{k} {len(v)}" for k, v in results.items()))
            time.sleep(0.05)
        finished.result()   # raises what failed the job
        reader.read(results)
    finally:
        if not finished.done():
            try:
                client.cancel()
            except Exception:
                # The job failed on its own meanwhile: its mini-cluster closes before the
                # result is delivered, and cancelling then refuses; the wait below sees it end.
                pass
            deadline = time.monotonic() + 60
            while not finished.done() and time.monotonic() < deadline:
                time.sleep(0.1)
    if holds:
        raise AssertionError(f"the job ended with the input held at {sorted(holds)}")
    return results
