"""Delivery of the job's outputs: one Python operator per output stream does the versioned
Redis upsert and the Avro encoding for its Kafka sink, so each record crosses between the
JVM and Python once. ``OUTPUTS`` says, per output stream, where it goes; Redis keys and
record keys come from ``contracts`` only."""

from __future__ import annotations

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
# Most upserts in one round trip: a bundle can hold tens of thousands of lists.
MAX_BATCH = 1000


class Publish(ProcessFunction):
    """One output stream's delivery (``output``), in one Python operator: the versioned
    upsert into Redis, and the record as ``Row(k=key, v=Avro bytes)`` or ``Row(v=bytes)`` for
    the output's transactional Kafka sink (nothing emitted without a topic); the bytes are
    single-object encoded, or Confluent-framed when the output has a ``schema_id``.

    The Redis upserts go in pipelined round trips, each key's last document only (a key's
    documents arrive in version order): when the bundle ends (``internals.at_bundle_end``:
    before any checkpoint barrier passes, so a restore never skips one), and within a long
    bundle once the oldest waiting document is ``bundle_time_ms`` old or ``MAX_BATCH`` keys
    wait, so a list's wait for Redis does not grow with the bundle (a backlog is drained in
    bundles of up to ``bundle_size`` records). In thread mode, which has no bundles, each is
    written as it comes.

    While Redis is down a write blocks and retries (redis_retry_* settings), so the job
    backs up behind it instead of failing; past redis_retry_max_ms the task fails and the
    restart replays from the last checkpoint, which the versioned upsert makes safe.
    Metrics: ``redisWrites`` (upserts that landed), ``redisRetries`` (attempts retried after a
    connection error, a timeout or a server in a passing state such as out of memory), both
    since the operator started. PyFlink reports Python metrics when a bundle ends, so during
    an outage they move only once the blocked write is through."""

    def __init__(self, cfg: JobConfig, output: Output):
        self.cfg, self.output = cfg, output

    def open(self, runtime_context):
        topic = self.output.topic
        self.codec = AvroCodec(contracts.TOPIC_RECORDS[topic]) if topic else None
        self.store = None
        self.pending: dict[str, dict] = {}   # Redis key -> its newest document not yet written
        self.flush_by = 0.0                  # time.monotonic() by which the pending go out
        self.batched = self.cfg.python_execution_mode == "process"
        self.landed = 0
        if self.output.document:
            from flink_jobs.redis_store import VersionedStore

            self.store = VersionedStore.from_config(self.cfg)
            # Gauges, not counters: the writes happen as a bundle ends, after PyFlink has
            # taken the bundle's counter updates, but before it reads the gauges.
            metrics = runtime_context.get_metrics_group()
            metrics.gauge("redisWrites", lambda: self.landed)
            metrics.gauge("redisRetries", lambda: self.store.retries)
            if self.batched:
                internals.at_bundle_end(self.flush)

    def process_element(self, value, ctx):
        if self.store is not None:
            key, document = self.output.document(value)
            now = time.monotonic()
            if not self.pending:
                self.flush_by = now + self.cfg.bundle_time_ms / 1000
            self.pending[key] = document
            if not self.batched or now >= self.flush_by or len(self.pending) >= MAX_BATCH:
                self.flush()
        if self.codec is not None:
            if self.output.schema_id is None:
                encoded = self.codec.encode(value)
            else:   # Confluent wire format: the registry holds the schema, the record its id
                encoded = confluent_frame(self.output.schema_id, self.codec.encode_body(value))
            key_field = self.output.key_field
            yield Row(v=encoded) if key_field is None else Row(k=contracts.record_key(value[key_field]), v=encoded)

    def flush(self) -> None:
        """The pending upserts, in one round trip."""
        if self.pending:
            writes, self.pending = list(self.pending.items()), {}
            self.landed += sum(self.store.upsert_many(writes))
