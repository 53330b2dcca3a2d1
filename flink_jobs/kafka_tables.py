"""The job's Kafka side: the source and sink tables (Flink SQL DDL through the Table API
connector), the quoting of their options, and the check that the events topic can feed the
job's parallelism.

Kafka goes through the Table API connector because it can do what the DataStream one
cannot from Python: a record key (user or item id) on the outputs, and the source
partition and offset of each input record for the dead-letter topic.
"""

from __future__ import annotations

import contextlib
import logging
import re

from pyflink.common import Row
from pyflink.table import StreamTableEnvironment

from flink_jobs import contracts, internals, pipeline
from flink_jobs.config import JobConfig
from flink_jobs.internals import KafkaAdminError, broker_config, describe_topic

log = logging.getLogger("reco.kafka")


@contextlib.contextmanager
def table_uids(t_env: StreamTableEnvironment, table: str):
    """Within: the planner names the uids of the operators it translates ``<table>-<transformation>``
    (e.g. ``user_events-source``, ``recommendations_out-sink``) instead of its default
    ``<id>_<transformation>``, whose id counts every operator translated before. One table per
    translation, so the names are unique and stay put when another table is added or removed."""
    config = t_env.get_config()
    before = config.get("table.exec.uid.format", "<id>_<transformation>")
    config.set("table.exec.uid.format", f"{table}-<transformation>")
    try:
        yield
    finally:
        config.set("table.exec.uid.format", before)


# The SQL connector jar relocates the Kafka client (org.apache.kafka -> this prefix + org.apache.kafka),
# so JAAS login modules and callback handlers must be named by their shaded classes; the job
# renames them, and one properties file serves the job and the tools alike.
SHADED_KAFKA = "org.apache.flink.kafka.shaded."
_UNSHADED_CLASS = re.compile(r"(?<![\w.$])org\.apache\.kafka\.")


def _sql_string(value: str) -> str:
    """A Flink SQL string literal: a quote inside is doubled, so no value can end the literal
    early and add options of its own."""
    return "'" + str(value).replace("'", "''") + "'"


def _client_properties(cfg: JobConfig) -> dict[str, str]:
    """``kafka_properties`` as connector options (``properties.<key>``)."""
    options = {}
    for key, value in cfg.kafka_properties.items():
        if key == "sasl.jaas.config" or key.endswith((".class", ".classes")):
            value = _UNSHADED_CLASS.sub(SHADED_KAFKA + "org.apache.kafka.", value)
        options[f"properties.{key}"] = value
    return options


def _kafka_options(cfg: JobConfig, topic: str, **extra: str) -> str:
    options = {"connector": "kafka", "topic": topic, "properties.bootstrap.servers": cfg.kafka_bootstrap,
               **_client_properties(cfg), **extra}
    return ", ".join(f"{_sql_string(k)} = {_sql_string(v)}" for k, v in options.items())


def _day_to_second(ms: int) -> str:
    """Milliseconds as a SQL DAY TO SECOND literal: 'D HH:MM:SS.mmm'."""
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{days} {hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def kafka_sources(t_env: StreamTableEnvironment, cfg: JobConfig):
    """(raw events as pipeline.RAW_EVENT tuples, catalog records as pipeline.RAW_ITEM rows)."""
    read = {"properties.group.id": cfg.consumer_group, "scan.startup.mode": "group-offsets",
            "properties.auto.offset.reset": "earliest", "properties.isolation.level": "read_committed",
            "value.format": "raw"}
    # Event time for watermarks is the record timestamp, which producers set to the event's
    # event_time (reco_tools.kafka_io.event_message), but never later than the job's clock:
    # a record stamped ahead (a producer's fast clock, or abuse up to the broker's limit)
    # would otherwise move event time ahead with it, and honest events would then be late.
    # The source tracks it per partition (the expression is pushed into the scan), so a
    # partition read ahead after a restart does not make others late. Idleness (off by
    # default, see JobConfig.idle_source_timeout_ms) is per partition too.
    idle = {"scan.watermark.idle-timeout": f"{cfg.idle_source_timeout_ms} ms"} if cfg.idle_source_timeout_ms else {}
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE user_events (
            v BYTES,
            `partition` INT METADATA VIRTUAL,
            `offset` BIGINT METADATA VIRTUAL,
            kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
            event_ts AS LEAST(kafka_ts, NOW()),
            WATERMARK FOR event_ts AS event_ts - INTERVAL '{_day_to_second(cfg.max_out_of_orderness_ms)}' DAY TO SECOND(3)
        ) WITH ({_kafka_options(cfg, contracts.USER_EVENTS_TOPIC, **read, **idle)})""")
    # The catalog with its record keys: a tombstone (no value) deletes the item its key names.
    # It is not event-time data, but it feeds operators with timers (Trending, Ranker), whose
    # event time is the minimum over their inputs: a source without watermarks would hold it
    # at its start for good. So it stamps watermark 0 and goes idle a second after its last
    # record (a subtask without a partition at once); a record after that does not hold
    # event time back again (an input that becomes active behind the others is not waited for).
    catalog_options = {**read, "scan.startup.mode": "earliest-offset", "key.format": "raw", "key.fields": "k",
                       "value.fields-include": "EXCEPT_KEY", "scan.watermark.idle-timeout": "1 s"}
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE items (
            k BYTES,
            v BYTES,
            `partition` INT METADATA VIRTUAL,
            `offset` BIGINT METADATA VIRTUAL,
            catalog_time AS TO_TIMESTAMP_LTZ(0, 3),
            WATERMARK FOR catalog_time AS catalog_time
        ) WITH ({_kafka_options(cfg, contracts.ITEMS_TOPIC, **catalog_options)})""")
    with table_uids(t_env, "user_events"):
        events = t_env.to_data_stream(t_env.from_path("user_events"))
    raw = events.map(lambda r: (r[0], r[1], r[2], -1 if r[3] is None else internals.epoch_millis(r[3])),
                     output_type=pipeline.RAW_EVENT).uid("kafka-record").name("Kafka record")
    with table_uids(t_env, "items"):
        items = t_env.to_data_stream(t_env.from_path("items"))
    catalog = items.map(lambda r: Row(r[1], r[0], r[2], r[3]), output_type=pipeline.RAW_ITEM
                        ).uid("catalog-record").name("Catalog record")
    return raw, catalog


class PartitionCheckError(RuntimeError):
    """The events topic cannot feed the job's parallelism (or does not exist)."""


def parallelism_problem(parallelism: int, partitions: int | None, topic: str = contracts.USER_EVENTS_TOPIC) -> str | None:
    """Why the job must not start with ``parallelism`` source subtasks on ``topic`` of
    ``partitions`` partitions (0: the topic does not exist), or None; None too when the
    count is unknown (``partitions`` None: Kafka did not answer, which the job's own
    source then waits out).

    Each source subtask reads whole partitions. One without any emits no watermark, and
    event time downstream is the minimum over all subtasks: it would stand still for good,
    so no bucket would close (no co-occurrence list, no trending list) and no user state
    would expire, with no error anywhere. The job runs every operator at one parallelism
    (the key-by on user needs the source's), so the only fixes are fewer subtasks or more
    partitions; an idle timeout would change which records are late (docs/algorithm.md
    "Event time and lateness").
    """
    if partitions is None:
        return None
    if partitions == 0:
        return (f"Kafka topic {topic} does not exist (topics are never created automatically): "
                f"create it first, e.g. python -m reco_tools.topics --bootstrap HOST:PORT")
    if parallelism > partitions:
        return (f"parallelism {parallelism} is above the {partitions} partition(s) of {topic}: "
                f"{parallelism - partitions} source subtask(s) would read nothing and hold event time back "
                f"for good (no co-occurrence or trending list, no user expiry, no error). Run with "
                f"--parallelism {partitions} or less, or add partitions first "
                f"(kafka-topics.sh --alter --topic {topic} --partitions {parallelism}).")
    return None


def _admin_properties(cfg: JobConfig, timeout_s: float, client_id: str) -> dict[str, str]:
    wait_ms = str(int(timeout_s * 1000))
    return {"bootstrap.servers": cfg.kafka_bootstrap,
            **{k.removeprefix("properties."): v for k, v in _client_properties(cfg).items()},
            "client.id": client_id, "request.timeout.ms": wait_ms, "default.api.timeout.ms": wait_ms}


def broker_transaction_max_ms(cfg: JobConfig, timeout_s: float = 15.0) -> int | None:
    """The brokers' transaction.max.timeout.ms (the longest transaction a producer may ask
    for), None when Kafka did not answer or may not be asked."""
    try:
        config = broker_config(SHADED_KAFKA, _admin_properties(cfg, timeout_s, "reco-broker-check"), timeout_s)
    except KafkaAdminError as exc:
        log.warning("could not ask Kafka at %s for its transaction limit (%s): not checked", cfg.kafka_bootstrap, exc)
        return None
    value = (config or {}).get("transaction.max.timeout.ms")
    return int(value) if value is not None else None


def event_topic(cfg: JobConfig, timeout_s: float = 15.0,
                topic: str = contracts.USER_EVENTS_TOPIC) -> tuple[int, dict[str, str] | None] | None:
    """The events topic's partitions and configuration (``(0, {})`` when it does not
    exist; configuration None when the job may not read it), None when Kafka did not answer
    within ``timeout_s``.

    Asked with the Kafka admin client inside the connector jar (shaded, through the JVM
    PyFlink already runs), with the job's own client properties: the same client, security
    settings and bootstrap servers as the source, and no Python Kafka client in the job."""
    try:
        return describe_topic(SHADED_KAFKA, _admin_properties(cfg, timeout_s, "reco-topic-check"), topic, timeout_s)
    except KafkaAdminError as exc:
        log.warning("could not ask Kafka at %s about %s (%s): parallelism and timestamps not checked",
                    cfg.kafka_bootstrap, topic, exc)
        return None


def timestamp_problem(config: dict[str, str], topic: str = contracts.USER_EVENTS_TOPIC) -> str | None:
    """What is wrong with the events topic's timestamp settings for the job, or None.

    Event time follows record timestamps (never later than the job's clock, see
    kafka_sources), so they must be the producers' (CreateTime), and the broker should
    refuse records stamped far ahead (``contracts.topic_specs``): the job ignores how far
    ahead they are, but the co-occurrence buckets of their events are still theirs."""
    kind = config.get("message.timestamp.type", "CreateTime")
    if kind != "CreateTime":
        return (f"{topic} has message.timestamp.type={kind}: record timestamps are the broker's append times, "
                f"so event time follows arrival and events produced late are dead-lettered as late. Set "
                f"message.timestamp.type=CreateTime (kafka-configs.sh --alter --entity-type topics "
                f"--entity-name {topic} --add-config message.timestamp.type=CreateTime)")
    limit = config.get("message.timestamp.after.max.ms")
    wanted = contracts.EVENT_TIMESTAMP_AHEAD_MS
    if limit is not None and int(limit) > wanted:
        return (f"{topic} accepts record timestamps up to {int(limit)} ms ahead of the broker's clock "
                f"(message.timestamp.after.max.ms); the job's topics allow {wanted}: "
                f"kafka-configs.sh --alter --entity-type topics --entity-name {topic} "
                f"--add-config message.timestamp.after.max.ms={wanted}")
    return None


def require_event_topic(cfg: JobConfig) -> None:
    """Raise PartitionCheckError when the job's parallelism cannot run on the events topic;
    log a warning when its timestamp settings are not the job's."""
    described = event_topic(cfg)
    partitions, config = described if described is not None else (None, {})
    problem = parallelism_problem(cfg.parallelism, partitions)
    if problem:
        raise PartitionCheckError(problem)
    if described is not None:
        log.info("%s has %d partition(s) for parallelism %d", contracts.USER_EVENTS_TOPIC, partitions, cfg.parallelism)
        warning = (timestamp_problem(config) if config is not None else
                   f"the job may not read the configuration of {contracts.USER_EVENTS_TOPIC} (DescribeConfigs): "
                   f"its timestamp settings are not checked")
        if warning:
            log.warning("%s", warning)


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
