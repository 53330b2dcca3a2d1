"""Entry point: the job's environment, its Kafka sources and sinks and Redis around the
pipeline, and the command line.

    python -m flink_jobs.main [--config job.toml] [--top-n 20] ...      # local mini-cluster
    flink run -py flink_jobs/main.py -pyfs flink_jobs,udfs,schemas -j <kafka connector jar> ...
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from py4j.protocol import Py4JError, Py4JJavaError
from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.table import StreamTableEnvironment

from flink_jobs import config as job_config
from flink_jobs import guarantees, internals, pipeline, publish, schema_registry
from flink_jobs.config import JobConfig
from flink_jobs.kafka_tables import (PartitionCheckError, broker_transaction_max_ms, kafka_sink, kafka_sources,
                                     require_event_topic, table_uids)
from flink_jobs.operators import KEYED_BYTES, PICKLED, VALUE_BYTES

CONNECTOR_DIR = internals.JARS_DIR / "flink"
# Checkpoints of a job on the local mini-cluster (a cluster's come from checkpoint_dir or its
# own configuration), under RECO_RUN_DIR as the local stack and cluster scripts use it.
LOCAL_CHECKPOINTS = (Path(os.environ.get("RECO_RUN_DIR") or Path(__file__).resolve().parents[1] / ".run").resolve()
                     / "checkpoints")
log = logging.getLogger("reco.main")


def connector_jars() -> list[str]:
    jars = sorted(CONNECTOR_DIR.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise SystemExit(f"no Kafka connector jar in {CONNECTOR_DIR}: run deploy/setup.sh")
    return [jar.as_uri() for jar in jars]


def create_environment(cfg: JobConfig) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    internals.use_worker_processes()
    conf = Configuration()
    local = not internals.submitted_by_flink_cli()
    if local:
        # On the local mini-cluster the Python workers must run this interpreter (with this
        # venv's packages): left to PATH, a worker without them hangs the job with no error.
        # Under flink run, -pyexec/-pyarch say which (deploy/flink/cluster.sh, docs/operations.md).
        conf.set_string("python.executable", sys.executable)
        conf.set_string("python.client.executable", sys.executable)
    conf.set_string("pipeline.jars", ";".join(connector_jars()))
    # Python operators process in bundles; a short bundle time bounds the latency each adds
    # at live rates, while a backlog fills bundles up to bundle_size. Keyed state is written
    # back at each bundle's end, once per key touched in it, and each bundle has a fixed
    # cost: a large bundle_size drains a backlog 2-2.5x faster than 1,000 (bench/RESULTS.md).
    # State reads go to the TaskManager only for keys not in the worker's cache
    # (state_cache_keys entries, shared by its keyed operators).
    conf.set_string("python.fn-execution.bundle.time", str(cfg.bundle_time_ms))
    conf.set_string("python.fn-execution.bundle.size", str(cfg.bundle_size))
    conf.set_string("python.state.cache-size", str(cfg.state_cache_keys))
    for key, value in internals.python_execution_options(cfg.python_execution_mode, local).items():
        conf.set_string(key, value)
    # A backlog of in-flight records must not hold checkpoint barriers back.
    conf.set_string("taskmanager.network.memory.buffer-debloat.enabled", "true")
    local_dir = LOCAL_CHECKPOINTS.as_uri() if local else None
    for key, value in guarantees.flink_options(cfg, cfg.checkpoint_dir or local_dir).items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.parallelism)
    t_env = StreamTableEnvironment.create(env)
    # The planner's operators (Kafka sources and sinks included) get uids too, not ids hashed
    # from the topology: their state (source offsets, sink transactions) must map after a
    # change of the job. The format is set per table (kafka_tables.table_uids); see
    # docs/operations.md "Upgrades and savepoints".
    t_env.get_config().set("table.exec.uid.generation", "ALWAYS")
    return env, t_env


def attach_sinks(t_env: StreamTableEnvironment, outputs: pipeline.Outputs, cfg: JobConfig,
                 schema_ids: dict[str, int] | None = None) -> None:
    """Each output's Kafka sink, after a Publish operator for the outputs the Ranker does not
    deliver (``publish.IN_RANKER``: ``outputs`` holds their rows); ``schema_ids``: topic ->
    Schema Registry id of the topics in the Confluent wire format (schema_registry.register_outputs)."""
    discard = Sink("org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink")
    for output in publish.OUTPUTS:
        name, stream = output.name, getattr(outputs, output.name)
        if output in publish.IN_RANKER:
            published = stream
        else:
            output = publish.with_schema_id(output, schema_ids)
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


class GuaranteeError(RuntimeError):
    """Exactly-once cannot hold with the settings in force."""


def require_guarantees(env, cfg: JobConfig, ask_kafka: bool = True) -> None:
    """Log the guarantees in force; GuaranteeError naming the settings where they cannot hold."""
    checkpoint_dir = internals.configured(env, "execution.checkpointing.dir")
    broker_max = broker_transaction_max_ms(cfg) if ask_kafka else None
    log.info("%s", guarantees.summary(cfg, checkpoint_dir, broker_max))
    found = guarantees.problems(cfg, checkpoint_dir, internals.submitted_by_flink_cli(), broker_max)
    if found:
        raise GuaranteeError("exactly-once cannot hold: " + "; ".join(found))
    if cfg.delivery_guarantee != "exactly-once" or cfg.redis_write != "versioned":
        log.warning("delivery_guarantee=%s, redis_write=%s: replays after a failure can duplicate output or move "
                    "Redis keys back (meant to show what the guarantee prevents)", cfg.delivery_guarantee,
                    cfg.redis_write)


def build_job(cfg: JobConfig, check_partitions: bool = True):
    """The job on a new environment; ``check_partitions``: ask Kafka about the events topic and the
    brokers' transaction limit first (require_event_topic, require_guarantees), as every
    submission does. Topics in the Confluent wire format get their schemas registered first
    (schema_registry.RegistryError when that fails)."""
    env, t_env = create_environment(cfg)
    require_guarantees(env, cfg, ask_kafka=check_partitions)
    if check_partitions:
        require_event_topic(cfg)
    # Here, in the driver, once per submission: the operators only frame with the ids.
    schema_ids = schema_registry.register_outputs(cfg)
    raw, catalog = kafka_sources(t_env, cfg)
    outputs = pipeline.build(raw, catalog, cfg, assign_watermarks=False, deliver=publish.in_ranker(cfg, schema_ids))
    attach_sinks(t_env, outputs, cfg, schema_ids)
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
    except (PartitionCheckError, GuaranteeError, schema_registry.RegistryError) as exc:
        log.error("%s", exc)
        parser.exit(2, f"error: {exc}\n")
    try:
        job.execute("reco-flink")
    except Py4JError as exc:
        if isinstance(exc, Py4JJavaError):
            raise   # the job failed: Flink's own exception says why
        # The JVM went away under the client: killed, or crashed (a crash report hs_err_pid*.log
        # lands in the JVM's working directory). py4j would go on retrying the dead gateway from
        # its finalizers at exit, a traceback per try, burying this line: leave without them.
        where = ("the Flink client's JVM (flink run)" if internals.submitted_by_flink_cli()
                 else "this process's JVM, which runs the local mini-cluster")
        log.error("%s ended while the job ran (%s%s); look for a crash report hs_err_pid*.log in %s",
                  where, exc, "".join(f"; {how}" for how in _ended_children()), os.getcwd())
        logging.shutdown()
        sys.stderr.flush()
        os._exit(1)
    return 0


def _ended_children() -> list[str]:
    """How this process's children that have ended did end, and the last of what they wrote to
    stderr. The JVM is one: PyFlink starts it with its stderr on a pipe that nobody reads after
    start-up and drops the handle, which subprocess keeps while the child runs."""
    ended = []
    for child in [o for o in gc.get_objects() if isinstance(o, subprocess.Popen)]:
        code = child.poll()
        if code is None:
            continue
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        said = b""
        if child.stderr is not None:
            os.set_blocking(child.stderr.fileno(), False)
            said = child.stderr.read() or b""
        last = said.decode(errors="replace").strip().splitlines()[-5:]
        ended.append(f"process {child.pid} {how}" + (f", its stderr ending: {' | '.join(last)}" if last else ""))
    return ended


if __name__ == "__main__":
    sys.exit(main())
