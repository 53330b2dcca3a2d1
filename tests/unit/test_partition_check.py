"""The submit-time checks of the events topic: its partitions against the parallelism (a
source subtask without a partition holds event time back for good, so the job refuses to
start) and its timestamp settings (a warning).
The Kafka call itself: tests/integration/test_partition_check_kafka.py."""

import pytest

from flink_jobs import contracts
from flink_jobs import kafka_tables
from flink_jobs import main as job_main
from flink_jobs.config import JobConfig


@pytest.mark.parametrize("parallelism,partitions", [(1, 4), (4, 4), (2, 1000)])
def test_parallelism_up_to_the_partitions_starts(parallelism, partitions):
    assert kafka_tables.parallelism_problem(parallelism, partitions) is None


@pytest.mark.parametrize("parallelism,partitions", [(5, 4), (2, 1), (64, 8)])
def test_parallelism_above_the_partitions_is_refused_with_the_remedy(parallelism, partitions):
    problem = kafka_tables.parallelism_problem(parallelism, partitions)
    assert problem is not None
    assert f"parallelism {parallelism} is above the {partitions} partition(s) of {contracts.USER_EVENTS_TOPIC}" in problem
    assert "event time" in problem
    assert f"--parallelism {partitions}" in problem and f"--partitions {parallelism}" in problem


def test_a_missing_topic_is_refused_and_an_unknown_count_is_not():
    assert "does not exist" in kafka_tables.parallelism_problem(2, 0)
    # Kafka did not answer: the job starts (its source waits for the brokers itself)
    assert kafka_tables.parallelism_problem(99, None) is None


def test_main_exits_with_the_problem_before_anything_runs(monkeypatch, capsys):
    monkeypatch.setattr(job_main, "create_environment", lambda cfg: (None, None))
    monkeypatch.setattr(job_main, "require_guarantees", lambda env, cfg, ask_kafka: None)
    monkeypatch.setattr(kafka_tables, "event_topic", lambda cfg: (2, {}))
    monkeypatch.setattr(job_main, "kafka_sources", lambda *a: pytest.fail("the job was built"))
    with pytest.raises(SystemExit) as exit_:
        job_main.main(["--parallelism", "3"])
    assert exit_.value.code == 2
    assert "parallelism 3 is above the 2 partition(s)" in capsys.readouterr().err


def test_the_check_passes_its_settings_to_the_decision(monkeypatch):
    asked = []
    monkeypatch.setattr(kafka_tables, "event_topic", lambda cfg: asked.append(cfg) or (4, {}))
    kafka_tables.require_event_topic(JobConfig(parallelism=4))
    with pytest.raises(kafka_tables.PartitionCheckError):
        kafka_tables.require_event_topic(JobConfig(parallelism=5))
    assert [c.parallelism for c in asked] == [4, 5]


def test_timestamp_settings_other_than_the_jobs_are_named_with_the_remedy():
    assert kafka_tables.timestamp_problem({"message.timestamp.type": "CreateTime",
                                           "message.timestamp.after.max.ms": "3600000"}) is None
    assert kafka_tables.timestamp_problem({}) is None   # a broker that predates the setting
    append = kafka_tables.timestamp_problem({"message.timestamp.type": "LogAppendTime"})
    assert "message.timestamp.type=LogAppendTime" in append and "--add-config message.timestamp.type=CreateTime" in append
    far = kafka_tables.timestamp_problem({"message.timestamp.after.max.ms": str(2**63 - 1)})
    assert f"up to {2**63 - 1} ms ahead" in far and "message.timestamp.after.max.ms=3600000" in far


def test_the_warning_is_logged_at_start(monkeypatch, caplog):
    monkeypatch.setattr(kafka_tables, "event_topic", lambda cfg: (4, {"message.timestamp.type": "LogAppendTime"}))
    with caplog.at_level("WARNING", logger="reco.kafka"):
        kafka_tables.require_event_topic(JobConfig(parallelism=4))
    assert "LogAppendTime" in caplog.text


def test_a_configuration_the_job_may_not_read_is_said_and_the_partitions_still_count(monkeypatch, caplog):
    monkeypatch.setattr(kafka_tables, "event_topic", lambda cfg: (2, None))
    with caplog.at_level("WARNING", logger="reco.kafka"):
        kafka_tables.require_event_topic(JobConfig(parallelism=2))
        with pytest.raises(kafka_tables.PartitionCheckError):
            kafka_tables.require_event_topic(JobConfig(parallelism=3))
    assert "DescribeConfigs" in caplog.text
