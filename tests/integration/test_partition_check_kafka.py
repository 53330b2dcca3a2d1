"""The submit-time partition check against the real broker: the job
refuses a parallelism above the events topic's partitions before it starts, with a message
that says why and what to do. The decision alone: tests/unit/test_partition_check.py."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flink_jobs import contracts
from flink_jobs.config import JobConfig
from reco_tools.topics import connect_admin, ensure_topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _partitions(bootstrap: str) -> int:
    admin = connect_admin(bootstrap)
    try:
        (topic,) = admin.describe_topics([contracts.USER_EVENTS_TOPIC])
        return len(topic["partitions"])
    finally:
        admin.close()


def test_the_job_refuses_a_parallelism_above_the_partitions(stack):
    ensure_topics(stack.bootstrap)
    partitions = _partitions(stack.bootstrap)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "flink_jobs.main", "--kafka-bootstrap", stack.bootstrap,
                             "--redis-url", stack.redis_url, "--parallelism", str(partitions + 1),
                             "--consumer-group", "partition-check", "--transactional-id-prefix", "partition-check"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)   # the job and its JVM
        out, err = proc.communicate()
        pytest.fail(f"the job started instead of refusing the parallelism:\n{err[-3000:]}")
    assert proc.returncode == 2, out[-2000:] + err[-3000:]
    assert (f"error: parallelism {partitions + 1} is above the {partitions} partition(s) of "
            f"{contracts.USER_EVENTS_TOPIC}") in err
    print(f"\nrefused after {time.monotonic() - started:.1f}s (JVM start included)")


def test_the_admin_call_counts_partitions_and_tells_a_missing_topic_from_no_answer(stack, monkeypatch):
    from flink_jobs.kafka_tables import event_topic_partitions
    from flink_jobs.main import create_environment

    monkeypatch.setenv("_python_worker_execution_mode", "process")   # create_environment's default, undone after
    ensure_topics(stack.bootstrap)
    cfg = JobConfig(kafka_bootstrap=stack.bootstrap, parallelism=1)
    create_environment(cfg)   # puts the connector jar (and its Kafka admin client) on the JVM's class path
    assert event_topic_partitions(cfg) == _partitions(stack.bootstrap) >= 1
    assert event_topic_partitions(cfg, topic="reco.no-such-topic.v1") == 0
    closed = JobConfig(kafka_bootstrap="127.0.0.1:9", parallelism=1)   # nothing listens on port 9
    started = time.monotonic()
    assert event_topic_partitions(closed, timeout_s=3) is None
    assert time.monotonic() - started < 20
