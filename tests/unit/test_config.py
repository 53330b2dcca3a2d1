import pytest

from flink_jobs.config import ConfigError, JobConfig


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
    from pathlib import Path

    cfg = JobConfig.load(Path(__file__).resolve().parents[2] / "deploy" / "local" / "demo.toml", env={})
    assert cfg.top_n == 10
