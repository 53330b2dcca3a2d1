from pathlib import Path

import pytest

from flink_jobs.config import ConfigError, JobConfig

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_documented_ones():
    cfg = JobConfig()
    assert (cfg.top_n, cfg.recent_items, cfg.pair_span_ms, cfg.neighbors_per_item) == (20, 20, 3_600_000, 200)
    assert cfg.cooccurrence_window_ms == 7 * 24 * 3_600_000
    # exactly-once as documented: no processing-time idleness, versioned Redis writes
    assert (cfg.idle_source_timeout_ms, cfg.redis_write, cfg.delivery_guarantee) == (0, "versioned", "exactly-once")


def test_layers_file_then_environment_then_flags(tmp_path):
    f = tmp_path / "job.toml"
    f.write_text('top_n = 7\nseeds = 3\nredis_url = "redis://file:1/0"\ninterest_weight = 0.5\n')
    env = {"RECO_SEEDS": "4", "RECO_REDIS_URL": "redis://env:2/0", "UNRELATED": "x"}
    cfg = JobConfig.load(f, env=env, overrides={"redis_url": "redis://flag:3/0", "top_n": None})
    assert cfg.top_n == 7                      # file (the flag was not given)
    assert cfg.seeds == 4                      # environment beats file
    assert cfg.redis_url == "redis://flag:3/0"  # flag beats environment
    assert cfg.interest_weight == 0.5 and cfg.recent_items == 20


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        JobConfig(top_n=0, interest_weight=1.5, seeds=30, redis_url="localhost:6379", redis_write="maybe",
                  delivery_guarantee="exactly-twice", state_cache_keys=0, bundle_size=-1)
    message = str(err.value)
    for fragment in ("top_n must be > 0", "interest_weight must be within [0, 1]",
                     "seeds (30) cannot exceed recent_items (20)", "redis_url must start with",
                     "redis_write must be versioned or unconditional", "delivery_guarantee must be",
                     "state_cache_keys must be > 0", "bundle_size must be > 0"):
        assert fragment in message


def test_transaction_timeout_must_cover_checkpoints():
    with pytest.raises(ConfigError, match="transaction_timeout_ms"):
        JobConfig(checkpoint_interval_ms=60_000, transaction_timeout_ms=90_000)


@pytest.mark.parametrize("interval, timeout, backoff, transaction", [
    (10_000, 600_000, 1_000, 600_000),    # a slow checkpoint outlasts the transaction: twice the interval is not enough
    (10_000, 120_000, 1_000, 131_000),    # exactly the sum: the broker may abort at the commit
    (10_000, 60_000, 600_000, 600_000),   # a restart's wait outlasts it
])
def test_a_transaction_must_outlive_an_interval_a_checkpoint_and_a_restart(interval, timeout, backoff, transaction):
    # a sink's transaction opens at one checkpoint and commits when the next one completes,
    # or, after a failure between the two, when the job has restarted
    settings = dict(checkpoint_interval_ms=interval, checkpoint_timeout_ms=timeout, restart_backoff_max_ms=backoff,
                    redis_retry_max_ms=min(timeout - 1, 60_000))
    with pytest.raises(ConfigError) as err:
        JobConfig(**settings, transaction_timeout_ms=transaction)
    assert (f"transaction_timeout_ms ({transaction}) must be above checkpoint_interval_ms ({interval}) + "
            f"checkpoint_timeout_ms ({timeout}) + restart_backoff_max_ms ({backoff})") in str(err.value)
    cfg = JobConfig(**settings, transaction_timeout_ms=interval + timeout + backoff + 1)
    assert cfg.transaction_timeout_ms == interval + timeout + backoff + 1


def test_a_short_checkpoint_timeout_is_what_counts_not_twice_the_interval():
    cfg = JobConfig(checkpoint_interval_ms=60_000, checkpoint_timeout_ms=10_000, redis_retry_max_ms=5_000,
                    restart_backoff_max_ms=1_000, transaction_timeout_ms=75_000)
    assert cfg.transaction_timeout_ms == 75_000


def test_restarts_are_bounded_by_default_and_validated():
    cfg = JobConfig()
    assert (cfg.restart_attempts, cfg.restart_backoff_max_ms) == (10, 60_000)
    with pytest.raises(ConfigError) as err:
        JobConfig(restart_attempts=0, restart_backoff_max_ms=999)
    assert "restart_attempts must be >= 1, got 0" in str(err.value)
    assert "restart_backoff_max_ms must be >= 1000" in str(err.value) and "got 999" in str(err.value)
    assert JobConfig(restart_attempts=1, restart_backoff_max_ms=1_000).restart_attempts == 1


def test_restart_settings_from_file_environment_and_flags(tmp_path):
    import argparse

    from flink_jobs.config import add_arguments, from_arguments

    f = tmp_path / "job.toml"
    f.write_text("restart_attempts = 3\nrestart_backoff_max_ms = 5000\n")
    assert JobConfig.load(f, env={}).restart_attempts == 3
    cfg = JobConfig.load(f, env={"RECO_RESTART_ATTEMPTS": "4", "RECO_RESTART_BACKOFF_MAX_MS": "8000"})
    assert (cfg.restart_attempts, cfg.restart_backoff_max_ms) == (4, 8_000)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--restart-attempts", "5", "--restart-backoff-max-ms", "2000"])
    assert (from_arguments(args).restart_attempts, from_arguments(args).restart_backoff_max_ms) == (5, 2_000)


def test_unknown_setting_in_file_is_refused(tmp_path):
    f = tmp_path / "job.toml"
    f.write_text("top_m = 5\n")
    with pytest.raises(ConfigError, match="unknown setting.*top_m"):
        JobConfig.load(f, env={})


@pytest.mark.parametrize("env,message", [({"RECO_TOP_N": "ten"}, "RECO_TOP_N='ten' is not a valid int"),
                                         ({"RECO_INTEREST_WEIGHT": "x"}, "not a valid float")])
def test_bad_environment_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        JobConfig.load(env=env)


def test_wrong_types_in_file_are_refused(tmp_path):
    f = tmp_path / "job.toml"
    f.write_text('top_n = "20"\n')
    with pytest.raises(ConfigError, match="top_n must be int"):
        JobConfig.load(f, env={})
    f.write_text("top_n = true\n")
    with pytest.raises(ConfigError, match="top_n must be int"):
        JobConfig.load(f, env={})


def test_demo_config_is_valid():
    cfg = JobConfig.load(ROOT / "deploy" / "local" / "demo.toml", env={})
    assert cfg.top_n == 10


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT) for d in ("deploy", "lab", "tests")
                                        for p in (ROOT / d).rglob("*.toml")), ids=str)
def test_every_shipped_config_file_loads(path):
    assert isinstance(JobConfig.load(ROOT / path, env={}), JobConfig)
