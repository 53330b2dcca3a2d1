"""Delivery of the job's outputs: the versioned Redis upsert and the Avro encoding for the
Kafka sink, in Python, where the records are made (the Ranker's lists and neighbor lists)
or in a Publish operator of their own (dead letters, trending), so each record crosses from
Python to the JVM once, as its sink's row. ``OUTPUTS`` says, per output stream, where it
goes; Redis keys and record keys come from ``contracts`` only."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

from pyflink.common import Row
from pyflink.datastream import ProcessFunction

from flink_jobs import contracts, internals
from flink_jobs.codec import AvroCodec, confluent_frame
from flink_jobs.config import JobConfig
from flink_jobs.documents import similar_document, trending_document, user_document


@dataclass(frozen=True)
class Output:
    """One output stream's destinations. ``name``: its operators' uids and sink table;
    ``topic``: the Kafka topic (None: none); ``key_field``: the record field its Kafka key
    is made from (None: no key); ``document``: record -> (Redis key, document) (None: not in
    Redis); ``schema_id``: the topic's values go in the Confluent wire format with this
    Schema Registry id (None: single-object encoding). The id is set by the driver at start
    (``flink_jobs.schema_registry.register_outputs``) and reaches the operator pickled with it."""
    name: str
    topic: str | None
    key_field: str | None
    document: Callable | None
    schema_id: int | None = None


RECOMMENDATIONS = Output("recommendations", contracts.RECOMMENDATIONS_TOPIC, "user_id", user_document)
ITEM_NEIGHBORS = Output("item_neighbors", contracts.ITEM_NEIGHBORS_TOPIC, "item_id", similar_document)
DEAD_LETTERS = Output("dead_letters", contracts.DEAD_LETTER_TOPIC, None, None)
TRENDING = Output("trending", None, None, trending_document)
OUTPUTS = (RECOMMENDATIONS, ITEM_NEIGHBORS, DEAD_LETTERS, TRENDING)   # names: pipeline.Outputs fields
IN_RANKER = (RECOMMENDATIONS, ITEM_NEIGHBORS)   # delivered by the Ranker, which makes them
# Most upserts in one round trip: a bundle can hold tens of thousands of lists.
MAX_BATCH = 1000


class Delivery:
    """One output stream's delivery (``output``): the versioned upsert into Redis, and the
    record as ``Row(k=key, v=Avro bytes)`` or ``Row(v=bytes)`` for the output's
    transactional Kafka sink (None without a topic); the bytes are single-object encoded, or
    Confluent-framed when the output has a ``schema_id``. It runs inside a Python operator:
    its own (``Publish``), or the one that makes the records (the Ranker's lists and
    neighbor lists), so that a record crosses from Python to the JVM once, as its sink's row.

    The Redis upserts go in pipelined round trips, each key's last document only (a key's
    documents arrive in version order): when the bundle ends (``internals.at_bundle_end``:
    before any checkpoint barrier passes, so a restore never skips one), and within a long
    bundle once the oldest waiting document is ``bundle_time_ms`` old or ``MAX_BATCH`` keys
    wait, so a list's wait for Redis does not grow with the bundle (a backlog is drained in
    bundles of up to ``bundle_size`` records). In thread mode, which has no bundles, each is
    written as it comes.

    While Redis is down a write blocks and retries (redis_retry_* settings), so the job
    backs up behind it instead of failing; past redis_retry_max_ms the task fails and the
    restart replays from the last checkpoint, which the versioned upsert makes safe."""

    def __init__(self, cfg: JobConfig, output: Output):
        self.cfg, self.output = cfg, output

    def open(self) -> None:
        topic = self.output.topic
        self.codec = AvroCodec(contracts.TOPIC_RECORDS[topic]) if topic else None
        self.store = None
        self.pending: dict[str, dict] = {}   # Redis key -> its newest document not yet written
        self.flush_by = 0.0                  # time.monotonic() by which the pending go out
        self.batched = self.cfg.python_execution_mode == "process"
        self.landed = 0
        self.tallies = []   # open_deliveries' metrics
        if self.output.document:
            from flink_jobs.redis_store import VersionedStore

            self.store = VersionedStore.from_config(self.cfg)
            if self.batched:
                internals.at_bundle_end(self.flush)

    @property
    def retries(self) -> int:
        return self.store.retries if self.store is not None else 0

    def __call__(self, value) -> Row | None:
        if self.store is not None:
            key, document = self.output.document(value)
            now = time.monotonic()
            if not self.pending:
                self.flush_by = now + self.cfg.bundle_time_ms / 1000
            self.pending[key] = document
            if not self.batched or now >= self.flush_by or len(self.pending) >= MAX_BATCH:
                self.flush()
        if self.codec is None:
            return None
        if self.output.schema_id is None:
            encoded = self.codec.encode(value)
        else:   # Confluent wire format: the registry holds the schema, the record its id
            encoded = confluent_frame(self.output.schema_id, self.codec.encode_body(value))
        key_field = self.output.key_field
        return Row(v=encoded) if key_field is None else Row(k=contracts.record_key(value[key_field]), v=encoded)

    def flush(self) -> None:
        """The pending upserts, in one round trip."""
        if self.pending:
            writes, self.pending = list(self.pending.items()), {}
            self.landed += sum(self.store.upsert_many(writes))
            for tally in self.tallies:
                tally.report()


def open_deliveries(runtime_context, deliveries) -> None:
    """Open ``deliveries`` in the operator of ``runtime_context``, with its metrics (summed
    over them): ``redisWrites``, upserts that landed, and ``redisRetries``, attempts retried
    after a connection error, a timeout or a server in a passing state such as out of
    memory, both since the operator started. In process mode gauges, not counters: the writes
    happen as a bundle ends, after PyFlink has taken the bundle's counter updates, but before
    it reads the gauges (``internals.Tally``; in thread mode, without bundles, counters).
    PyFlink reports Python metrics when a bundle ends, so during an outage they move only
    once the blocked write is through."""
    for delivery in deliveries:
        delivery.open()
    if any(d.store is not None for d in deliveries):
        metrics = runtime_context.get_metrics_group()
        tallies = [internals.Tally(metrics, "redisWrites", lambda: sum(d.landed for d in deliveries)),
                   internals.Tally(metrics, "redisRetries", lambda: sum(d.retries for d in deliveries))]
        for delivery in deliveries:
            delivery.tallies = tallies


class Publish(ProcessFunction):
    """An operator of one output's ``Delivery``, for the outputs not delivered where they are made."""

    def __init__(self, cfg: JobConfig, output: Output):
        self.delivery = Delivery(cfg, output)

    @property
    def output(self) -> Output:
        return self.delivery.output

    def open(self, runtime_context):
        open_deliveries(runtime_context, [self.delivery])

    def process_element(self, value, ctx):
        row = self.delivery(value)
        if row is not None:
            yield row


def in_ranker(cfg: JobConfig, schema_ids: dict[str, int] | None = None) -> tuple[Delivery, Delivery]:
    """The deliveries of the lists and the neighbor lists, which the Ranker runs
    (``pipeline.build``'s ``deliver``); ``schema_ids``: as ``main.attach_sinks``'."""
    return tuple(Delivery(cfg, with_schema_id(output, schema_ids)) for output in IN_RANKER)


def with_schema_id(output: Output, schema_ids: dict[str, int] | None) -> Output:
    if output.topic in (schema_ids or {}):
        return dataclasses.replace(output, schema_id=schema_ids[output.topic])
    return output
