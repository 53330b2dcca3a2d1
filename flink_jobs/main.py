"""Entry point: attach Kafka and Redis to the pipeline and run it.

    python -m flink_jobs.main [--config job.toml] [--top-n 20] ...      # local mini-cluster
    flink run -py flink_jobs/main.py -pyfs flink_jobs,udfs,schemas -j <kafka connector jar> ...

Kafka goes through the Table API connector because it can do what the DataStream one
cannot from Python: a record key (user or item id) on the outputs, and the source
partition and offset of each input record for the dead-letter topic.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import CheckpointingMode, MapFunction, ProcessFunction, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.table import StreamTableEnvironment

from flink_jobs import config as job_config
from flink_jobs import contracts, pipeline
from flink_jobs.codec import AvroCodec
from flink_jobs.config import JobConfig
from flink_jobs.operators import PICKLED

ROOT = Path(__file__).resolve().parent.parent
CONNECTOR_DIR = ROOT / ".cache" / "jars" / "flink"
KEYED_BYTES = Types.ROW_NAMED(["k", "v"], [Types.PRIMITIVE_ARRAY(Types.BYTE())] * 2)
VALUE_BYTES = Types.ROW_NAMED(["v"], [Types.PRIMITIVE_ARRAY(Types.BYTE())])
log = logging.getLogger("reco.main")


def connector_jars() -> list[str]:
    jars = sorted(CONNECTOR_DIR.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise SystemExit(f"no Kafka connector jar in {CONNECTOR_DIR}: run deploy/setup.sh")
    return [jar.as_uri() for jar in jars]


def create_environment(cfg: JobConfig) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    # On the local mini-cluster PyFlink runs every Python operator inside this process
    # ("loopback"), one core for the whole job; separate worker processes use them all.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    conf = Configuration()
    # The Python workers must run this interpreter (with this venv's packages): left to
    # PATH, a worker without them hangs the job with no error.
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("pipeline.jars", ";".join(connector_jars()))
    # Python operators process in bundles; a short bundle time bounds the latency each adds.
    # Keyed state is written back at each bundle's end, once per key touched in it, and read
    # through a cache of deserialized values: a key that fell out of it costs a round trip.
    conf.set_string("python.fn-execution.bundle.time", str(cfg.bundle_time_ms))
    conf.set_string("python.fn-execution.bundle.size", str(cfg.bundle_size))
    conf.set_string("python.state.cache-size", str(cfg.state_cache_keys))
    # A backlog of in-flight records must not hold checkpoint barriers back.
    conf.set_string("taskmanager.network.memory.buffer-debloat.enabled", "true")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.parallelism)
    env.enable_checkpointing(cfg.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    checkpoints = env.get_checkpoint_config()
    checkpoints.set_checkpoint_timeout(cfg.checkpoint_timeout_ms)
    # aligned: see README "Exactly-once" (unaligned lost bucket sums after a TaskManager kill)
    return env, StreamTableEnvironment.create(env)


def _kafka_options(cfg: JobConfig, topic: str, **extra: str) -> str:
    options = {"connector": "kafka", "topic": topic, "properties.bootstrap.servers": cfg.kafka_bootstrap, **extra}
    return ", ".join(f"'{k}' = '{v}'" for k, v in options.items())


def _day_to_second(ms: int) -> str:
    """Milliseconds as a SQL DAY TO SECOND literal: 'D HH:MM:SS.mmm'."""
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{days} {hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def kafka_sources(t_env: StreamTableEnvironment, cfg: JobConfig):
    """(raw events as pipeline.RAW_EVENT tuples, catalog records as bytes)."""
    read = {"properties.group.id": cfg.consumer_group, "scan.startup.mode": "group-offsets",
            "properties.auto.offset.reset": "earliest", "properties.isolation.level": "read_committed",
            "value.format": "raw"}
    # Event time for watermarks is the record timestamp, which producers set to the event's
    # event_time (reco_tools.kafka_io.event_message). The source then tracks it per
    # partition, so a partition read ahead after a restart does not make others late.
    # Idleness (off by default, see JobConfig.idle_source_timeout_ms) is per partition too.
    idle = {"scan.watermark.idle-timeout": f"{cfg.idle_source_timeout_ms} ms"} if cfg.idle_source_timeout_ms else {}
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE user_events (
            v BYTES,
            `partition` INT METADATA VIRTUAL,
            `offset` BIGINT METADATA VIRTUAL,
            kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
            WATERMARK FOR kafka_ts AS kafka_ts - INTERVAL '{_day_to_second(cfg.max_out_of_orderness_ms)}' DAY TO SECOND(3)
        ) WITH ({_kafka_options(cfg, contracts.USER_EVENTS_TOPIC, **read, **idle)})""")
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE items (v BYTES)
        WITH ({_kafka_options(cfg, contracts.ITEMS_TOPIC, **{**read, "scan.startup.mode": "earliest-offset"})})""")
    events = t_env.to_data_stream(t_env.from_path("user_events"))
    raw = events.map(lambda r: (r[0], r[1], r[2], -1 if r[3] is None else r[3].to_epoch_milli()),
                     output_type=pipeline.RAW_EVENT).name("Kafka record")
    catalog = t_env.to_data_stream(t_env.from_path("items")).map(
        lambda r: r[0], output_type=pipeline.RAW_ITEM).name("Catalog record")
    return raw, catalog


class EncodeForKafka(MapFunction):
    """dict -> Row(key, Avro single-object bytes) for a topic; key from ``key_field``."""

    def __init__(self, topic: str, key_field: str | None):
        self.topic, self.key_field = topic, key_field

    def open(self, runtime_context):
        self.codec = AvroCodec(contracts.TOPIC_RECORDS[self.topic])

    def map(self, record):
        value = self.codec.encode(record)
        if self.key_field is None:
            return Row(v=value)
        return Row(k=contracts.record_key(record[self.key_field]), v=value)


class WriteRedis(ProcessFunction):
    """Versioned upserts of the job's outputs; Redis keys come from contracts only."""

    def __init__(self, cfg: JobConfig, kind: str):
        self.url, self.ttl_ms, self.kind = cfg.redis_url, cfg.redis_ttl_ms, kind
        self.versioned = cfg.redis_write == "versioned"

    def open(self, runtime_context):
        from flink_jobs.redis_store import VersionedStore

        self.store = VersionedStore.from_url(self.url, self.ttl_ms, self.versioned)
        self.written = runtime_context.get_metrics_group().counter("redisWrites")

    def process_element(self, value, ctx):
        if self.kind == "user":
            key, doc = contracts.user_recommendations_key(value["user_id"]), value
        elif self.kind == "item":
            key = contracts.item_similar_key(value["item_id"])
            doc = {**value, "version": value["event_time"]}
        else:
            key, doc = contracts.TRENDING_KEY, {"version": value.t, "event_time": value.t,
                                                 "items": [{"item_id": i, "count": c} for i, c in value.top]}
        if self.store.upsert(key, doc):
            self.written.inc()
        yield from ()


def kafka_sink(t_env: StreamTableEnvironment, cfg: JobConfig, name: str, topic: str, keyed: bool) -> str:
    """A transactional Kafka sink table for rows ``(k, v)`` (record key and value) or ``(v)``;
    returns its name. Its transactional ids are the deployment's prefix plus ``name``."""
    options = {"sink.delivery-guarantee": cfg.delivery_guarantee,
               "properties.transaction.timeout.ms": str(cfg.transaction_timeout_ms),
               "value.format": "raw", "sink.transactional-id-prefix": f"{cfg.transactional_id_prefix}-{name}"}
    if keyed:
        options.update({"key.format": "raw", "key.fields": "k", "value.fields-include": "EXCEPT_KEY"})
    columns = "k BYTES, v BYTES" if keyed else "v BYTES"
    t_env.execute_sql(f"CREATE TEMPORARY TABLE {name}_out ({columns}) WITH ({_kafka_options(cfg, topic, **options)})")
    return f"{name}_out"


def attach_sinks(env, t_env: StreamTableEnvironment, outputs: pipeline.Outputs, cfg: JobConfig):
    statements = t_env.create_statement_set()
    for name, topic, stream, key_field in (
            ("recommendations", contracts.RECOMMENDATIONS_TOPIC, outputs.recommendations, "user_id"),
            ("item_neighbors", contracts.ITEM_NEIGHBORS_TOPIC, outputs.item_neighbors, "item_id"),
            ("dead_letters", contracts.DEAD_LETTER_TOPIC, outputs.dead_letters, None)):
        table = kafka_sink(t_env, cfg, name, topic, keyed=key_field is not None)
        encoded = (stream.map(EncodeForKafka(topic, key_field), output_type=KEYED_BYTES if key_field else VALUE_BYTES)
                   .uid(f"encode-{name}").name(f"Encode {topic}"))
        statements.add_insert(table, t_env.from_data_stream(encoded))
    discard = Sink("org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink")
    for kind, stream in (("user", outputs.recommendations), ("item", outputs.item_neighbors),
                         ("trending", outputs.trending)):
        (stream.process(WriteRedis(cfg, kind), output_type=PICKLED).uid(f"redis-{kind}").name(f"Redis {kind}")
         .sink_to(discard).name(f"Redis {kind} done"))
    statements.attach_as_datastream()


def build_job(cfg: JobConfig):
    env, t_env = create_environment(cfg)
    raw, catalog = kafka_sources(t_env, cfg)
    outputs = pipeline.build(raw, catalog, cfg, assign_watermarks=False)
    attach_sinks(env, t_env, outputs, cfg)
    return env


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description="Real-time recommendations (PyFlink).")
    job_config.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = job_config.from_arguments(args)
    except job_config.ConfigError as exc:
        parser.exit(2, f"{exc}\n")
    log.info("starting with %s", cfg)
    build_job(cfg).execute("reco-flink")
    return 0


if __name__ == "__main__":
    sys.exit(main())
