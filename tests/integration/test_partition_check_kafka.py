"""The submit-time checks against the real broker: the job refuses a parallelism above the
events topic's partitions, and a transaction timeout above the brokers' limit, before it
starts, with a message that says why and what to do. The decisions alone:
tests/unit/test_partition_check.py, tests/unit/test_guarantees.py."""

import time

import pytest

from flink_jobs import internals
from flink_jobs import contracts
from flink_jobs.config import JobConfig
from lab.jobs import start_job
from lab.wait import wait_for
from reco_tools.topics import connect_admin, ensure_topics

pytestmark = pytest.mark.integration


def _partitions(bootstrap: str) -> int:
    admin = connect_admin(bootstrap)
    try:
        (topic,) = admin.describe_topics([contracts.USER_EVENTS_TOPIC])
        return len(topic["partitions"])
    finally:
        admin.close()


def test_the_job_refuses_a_parallelism_above_the_partitions(stack, tmp_path):
    ensure_topics(stack.bootstrap)
    partitions = _partitions(stack.bootstrap)
    started = time.monotonic()
    job = start_job(stack.bootstrap, stack.redis_url, "partition-check", tmp_path, "--parallelism", str(partitions + 1))
    try:
        wait_for(lambda: job.poll() is not None, 180, "the job to refuse the parallelism and exit", poll_s=0.5)
    finally:
        job.stop()
    assert job.poll() == 2, job.tail()
    assert (f"error: parallelism {partitions + 1} is above the {partitions} partition(s) of "
            f"{contracts.USER_EVENTS_TOPIC}") in job.tail()
    print(f"\nrefused after {time.monotonic() - started:.1f}s (JVM start included)")


def test_the_admin_call_counts_partitions_and_tells_a_missing_topic_from_no_answer(stack, monkeypatch):
    from flink_jobs.kafka_tables import event_topic
    from flink_jobs.main import create_environment

    monkeypatch.setenv(internals.WORKER_MODE, "process")   # create_environment's default, undone after
    ensure_topics(stack.bootstrap)
    cfg = JobConfig(kafka_bootstrap=stack.bootstrap, parallelism=1)
    create_environment(cfg)   # puts the connector jar (and its Kafka admin client) on the JVM's class path
    partitions, config = event_topic(cfg)
    assert partitions == _partitions(stack.bootstrap) >= 1
    assert config["message.timestamp.type"] == "CreateTime"
    assert config["message.timestamp.after.max.ms"] == str(contracts.EVENT_TIMESTAMP_AHEAD_MS)
    assert event_topic(cfg, topic="reco.no-such-topic.v1") == (0, {})
    closed = JobConfig(kafka_bootstrap="127.0.0.1:9", parallelism=1)   # nothing listens on port 9
    started = time.monotonic()
    assert event_topic(closed, timeout_s=3) is None
    assert time.monotonic() - started < 20


def test_the_job_refuses_a_transaction_timeout_the_brokers_would_cut_short(stack, tmp_path):
    ensure_topics(stack.bootstrap)
    job = start_job(stack.bootstrap, stack.redis_url, "transaction-check", tmp_path,
                    "--transaction-timeout-ms", "3600000")   # the stack's brokers allow 900000
    try:
        wait_for(lambda: job.poll() is not None, 180, "the job to refuse the transaction timeout and exit", poll_s=0.5)
    finally:
        job.stop()
    assert job.poll() == 2, job.tail()
    assert ("transaction_timeout_ms (3600000) is above the brokers' transaction.max.timeout.ms (900000)"
            in job.tail()), job.tail()
