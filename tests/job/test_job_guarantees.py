"""The job built on a plain local environment carries exactly-once's settings itself: a
cluster left at its defaults runs it with them too."""

import pytest

from flink_jobs import internals
from flink_jobs.config import JobConfig
from flink_jobs.main import build_job

pytestmark = pytest.mark.job


def test_a_built_job_runs_with_its_own_checkpoint_state_and_restart_settings(monkeypatch, tmp_path):
    monkeypatch.setenv(internals.WORKER_MODE, "process")   # create_environment's default, undone after
    env = build_job(JobConfig(checkpoint_dir=tmp_path.as_uri(), restart_attempts=3), check_partitions=False)
    want = {"execution.checkpointing.mode": "EXACTLY_ONCE", "state.backend.type": "rocksdb",
            "execution.checkpointing.incremental": "true", "execution.checkpointing.dir": tmp_path.as_uri(),
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.attempts-before-reset-backoff": "3"}
    assert {key: internals.configured(env, key) for key in want} == want
    assert env.get_checkpoint_config().get_checkpoint_interval() == JobConfig().checkpoint_interval_ms


def test_a_built_job_runs_with_its_bundle_and_cache_settings(monkeypatch, tmp_path):
    monkeypatch.setenv(internals.WORKER_MODE, "process")
    cfg = JobConfig(checkpoint_dir=tmp_path.as_uri(), bundle_size=777, bundle_time_ms=30, state_cache_keys=1234)
    env = build_job(cfg, check_partitions=False)
    want = {"python.fn-execution.bundle.size": "777", "python.fn-execution.bundle.time": "30",
            "python.state.cache-size": "1234"}
    assert {key: internals.configured(env, key) for key in want} == want
