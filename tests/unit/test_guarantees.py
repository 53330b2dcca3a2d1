"""The job sets what exactly-once needs from Flink itself, and refuses settings where it
cannot hold (flink_jobs/guarantees.py)."""

from flink_jobs import guarantees
from flink_jobs.config import JobConfig


def test_the_job_sets_checkpoints_state_and_restarts_a_plain_cluster_lacks():
    options = guarantees.flink_options(JobConfig(checkpoint_interval_ms=7_000, restart_attempts=4),
                                       "s3://bucket/reco")
    assert options["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert options["execution.checkpointing.interval"] == "7000 ms"
    assert options["execution.checkpointing.unaligned.enabled"] == "false"
    assert options["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    assert (options["state.backend.type"], options["execution.checkpointing.incremental"]) == ("rocksdb", "true")
    assert options["execution.checkpointing.dir"] == "s3://bucket/reco"
    assert options["restart-strategy.exponential-delay.attempts-before-reset-backoff"] == "4"
    heap = guarantees.flink_options(JobConfig(state_backend="hashmap"), None)
    assert heap["execution.checkpointing.incremental"] == "false" and "execution.checkpointing.dir" not in heap


def test_a_cluster_without_a_checkpoint_directory_is_refused_and_the_local_run_is_not():
    cfg = JobConfig()
    (problem,) = guarantees.problems(cfg, None, on_cluster=True, broker_transaction_max_ms=None)
    assert "checkpoint_dir" in problem and "execution.checkpointing.dir" in problem
    assert guarantees.problems(cfg, None, on_cluster=False, broker_transaction_max_ms=None) == []
    assert guarantees.problems(cfg, "file:///shared/cp", on_cluster=True, broker_transaction_max_ms=None) == []


def test_a_transaction_timeout_above_the_brokers_limit_is_refused():
    cfg = JobConfig(transaction_timeout_ms=600_000)
    (problem,) = guarantees.problems(cfg, "file:///cp", True, broker_transaction_max_ms=300_000)
    assert "transaction_timeout_ms (600000)" in problem and "transaction.max.timeout.ms (300000)" in problem
    assert guarantees.problems(cfg, "file:///cp", True, broker_transaction_max_ms=600_000) == []


def test_the_summary_names_what_is_in_force():
    line = guarantees.summary(JobConfig(), "file:///cp", 900_000)
    assert "rocksdb (incremental)" in line and "file:///cp" in line and "brokers allow 900000" in line
