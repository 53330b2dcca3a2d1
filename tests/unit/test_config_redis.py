"""The Redis client settings of JobConfig: defaults and validation."""

import pytest

from flink_jobs.config import ConfigError, JobConfig


def test_redis_defaults_retry_within_the_checkpoint_timeout():
    cfg = JobConfig()
    assert (cfg.redis_connect_timeout_ms, cfg.redis_read_timeout_ms) == (2_000, 5_000)
    assert (cfg.redis_retry_base_ms, cfg.redis_retry_cap_ms, cfg.redis_retry_max_ms) == (100, 5_000, 60_000)
    assert cfg.redis_retry_max_ms < cfg.checkpoint_timeout_ms
    assert (cfg.redis_tls_ca_file, cfg.redis_tls_cert_file, cfg.redis_tls_key_file, cfg.redis_tls_verify) == \
        ("", "", "", "full")


def test_every_bad_redis_setting_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        JobConfig(redis_connect_timeout_ms=0, redis_read_timeout_ms=-1, redis_retry_base_ms=500,
                  redis_retry_cap_ms=100, redis_retry_max_ms=-5, redis_tls_verify="yes",
                  redis_tls_ca_file="/etc/ca.pem", redis_tls_cert_file="/etc/client.pem")
    message = str(err.value)
    for fragment in ("redis_connect_timeout_ms must be > 0", "redis_read_timeout_ms must be > 0",
                     "redis_retry_cap_ms (100) cannot be below redis_retry_base_ms (500)",
                     "redis_retry_max_ms must be >= 0", "redis_tls_verify must be full, ca or none",
                     "redis_tls_ca_file, redis_tls_cert_file need a rediss:// redis_url",
                     "redis_tls_cert_file and redis_tls_key_file go together"):
        assert fragment in message


def test_retrying_longer_than_a_checkpoint_may_take_is_refused():
    with pytest.raises(ConfigError, match=r"redis_retry_max_ms \(120000\) must be below checkpoint_timeout_ms"):
        JobConfig(redis_retry_max_ms=120_000)
    cfg = JobConfig(redis_retry_max_ms=300_000, checkpoint_timeout_ms=360_000)   # raised together: fine
    assert cfg.redis_retry_max_ms == 300_000


def test_tls_settings_with_rediss_and_no_retry_are_valid():
    cfg = JobConfig(redis_url="rediss://reco@redis.example:6380/0", redis_tls_ca_file="/etc/ca.pem",
                    redis_tls_cert_file="/etc/c.pem", redis_tls_key_file="/etc/c.key", redis_tls_verify="ca",
                    redis_retry_max_ms=0)
    assert cfg.redis_retry_max_ms == 0


def test_redis_settings_from_environment_and_flags():
    cfg = JobConfig.load(env={"RECO_REDIS_RETRY_MAX_MS": "30000", "RECO_REDIS_TLS_VERIFY": "ca"},
                         overrides={"redis_read_timeout_ms": 1_000})
    assert (cfg.redis_retry_max_ms, cfg.redis_tls_verify, cfg.redis_read_timeout_ms) == (30_000, "ca", 1_000)
