"""Entry point: the job's environment, its Kafka sources and sinks and Redis around the
pipeline, and the command line.

    python -m flink_jobs.main [--config job.toml] [--top-n 20] ...      # local mini-cluster
    flink run -py flink_jobs/main.py -pyfs flink_jobs,udfs,schemas -j <kafka connector jar> ...
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyflink.common import Configuration
from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.table import StreamTableEnvironment

from flink_jobs import config as job_config
from flink_jobs import internals, pipeline, publish
from flink_jobs.config import JobConfig
from flink_jobs.kafka_tables import (KEYED_BYTES, VALUE_BYTES, PartitionCheckError, kafka_sink, kafka_sources,
                                     require_event_topic, table_uids)
from flink_jobs.operators import PICKLED

CONNECTOR_DIR = internals.JARS_DIR / "flink"
log = logging.getLogger("reco.main")


def connector_jars() -> list[str]:
    jars = sorted(CONNECTOR_DIR.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise SystemExit(f"no Kafka connector jar in {CONNECTOR_DIR}: run deploy/setup.sh")
    return [jar.as_uri() for jar in jars]


def create_environment(cfg: JobConfig) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    internals.use_worker_processes()
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
    # Bounded restarts: a failure that every restart replays (a record no retry gets
    # through) ends in a failed job with the cause, not a loop. The backoff starts over
    # after an hour without failure, so rare failures over a long life are all retried.
    conf.set_string("restart-strategy.type", "exponential-delay")
    conf.set_string("restart-strategy.exponential-delay.initial-backoff", "1 s")
    conf.set_string("restart-strategy.exponential-delay.max-backoff", f"{cfg.restart_backoff_max_ms} ms")
    conf.set_string("restart-strategy.exponential-delay.attempts-before-reset-backoff", str(cfg.restart_attempts))
    conf.set_string("restart-strategy.exponential-delay.reset-backoff-threshold", "1 h")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.parallelism)
    env.enable_checkpointing(cfg.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    checkpoints = env.get_checkpoint_config()
    checkpoints.set_checkpoint_timeout(cfg.checkpoint_timeout_ms)
    # aligned: unaligned checkpoints lost bucket sums after a TaskManager kill (bench/RESULTS.md
    # "Exactly-once: chaos runs")
    t_env = StreamTableEnvironment.create(env)
    # The planner's operators (Kafka sources and sinks included) get uids too, not ids hashed
    # from the topology: their state (source offsets, sink transactions) must map after a
    # change of the job. The format is set per table (kafka_tables.table_uids); see
    # docs/operations.md "Upgrades and savepoints".
    t_env.get_config().set("table.exec.uid.generation", "ALWAYS")
    return env, t_env


def attach_sinks(t_env: StreamTableEnvironment, outputs: pipeline.Outputs, cfg: JobConfig) -> None:
    discard = Sink("org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink")
    for output in publish.OUTPUTS:
        name, stream = output.name, getattr(outputs, output.name)
        output_type = KEYED_BYTES if output.key_field else VALUE_BYTES if output.topic else PICKLED
        published = (stream.process(publish.Publish(cfg, output), output_type=output_type)
                     .uid(f"publish-{name}").name(f"Publish {name}"))
        if output.topic is None:
            published.sink_to(discard).uid(f"publish-{name}-done").name(f"Publish {name} done")
            continue
        table = kafka_sink(t_env, cfg, name, output.topic, keyed=output.key_field is not None)
        # one translation per sink table, so that its operators' uids carry the table's name
        statements = t_env.create_statement_set()
        statements.add_insert(table, t_env.from_data_stream(published))
        with table_uids(t_env, table):
            statements.attach_as_datastream()


def build_job(cfg: JobConfig, check_partitions: bool = True):
    """The job on a new environment; ``check_partitions``: ask Kafka for the events topic's
    partitions first (require_event_topic), as every submission does."""
    env, t_env = create_environment(cfg)
    if check_partitions:
        require_event_topic(cfg)
    raw, catalog = kafka_sources(t_env, cfg)
    outputs = pipeline.build(raw, catalog, cfg, assign_watermarks=False)
    attach_sinks(t_env, outputs, cfg)
    # Every operator has a uid of ours now; one added without would get an id hashed from the
    # topology, and its state would not map after the next change: refuse to build instead.
    env.get_config().disable_auto_generated_uids()
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
    try:
        job = build_job(cfg)
    except PartitionCheckError as exc:
        log.error("%s", exc)
        parser.exit(2, f"error: {exc}\n")
    job.execute("reco-flink")
    return 0


if __name__ == "__main__":
    sys.exit(main())
