"""The job's one configuration object: defaults, then a TOML file, then RECO_* environment
variables, then command-line flags; validated once at start with a message per bad value.
Operators receive it; none of them reads the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


class ConfigError(ValueError):
    """One or more settings are invalid; the message lists each."""


@dataclass(frozen=True)
class JobConfig:
    # recommendations
    top_n: int = 20                      # N: items per user list
    recent_items: int = 20               # W: items in the user's pairing window
    pair_span_ms: int = HOUR             # T: two items pair when consumed within this span
    seeds: int = 20                      # recent items whose neighbors become candidates (bench/quality.py: 5 -> 20 +23% HR)
    neighbors_per_item: int = 200        # M: bounded neighbor set per item
    fragment_size: int = 200             # K: neighbors per item, scored, used for ranking and published (50 -> 200 +16% HR)
    cooccurrence_window_ms: int = 7 * DAY  # L: sliding event-time window of the counts
    bucket_ms: int = HOUR                # granularity of that window
    interest_half_life_ms: int = 7 * DAY
    interest_weight: float = 0.2         # alpha: share of interest similarity in the score
    debounce_ms: int = 0                 # event time a burst of a user's events waits for one list (0 = a list per event)
    max_consumed: int = 5_000            # consumed items remembered for exclusion, per user
    user_ttl_ms: int = 30 * DAY          # event-time inactivity after which a user's state is dropped
    trending_window_ms: int = DAY
    trending_size: int = 100
    # time
    max_out_of_orderness_ms: int = 5_000
    # A partition without records this long stops holding event time back (0 = never). Off by
    # default: it is a processing-time decision that changes which records are late, so a
    # replay after a restore could publish different co-occurrence lists.
    idle_source_timeout_ms: int = 0
    # engine
    parallelism: int = 2
    bundle_size: int = 1000              # records a Python operator takes per round trip (python.fn-execution.bundle.size)
    bundle_time_ms: int = 100            # longest a record waits for its bundle to fill (python.fn-execution.bundle.time)
    state_cache_keys: int = 1000         # keys whose state each Python operator keeps deserialized (python.state.cache-size)
    checkpoint_interval_ms: int = 10_000
    checkpoint_timeout_ms: int = 120_000
    # connections
    kafka_bootstrap: str = "127.0.0.1:9092"
    consumer_group: str = "reco-job"
    transactional_id_prefix: str = "reco-job"
    transaction_timeout_ms: int = 600_000   # must stay below the broker's transaction.max.timeout.ms
    delivery_guarantee: str = "exactly-once"  # of the Kafka outputs; at-least-once only to show what breaks
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_ttl_ms: int = 7 * DAY
    redis_write: str = "versioned"       # unconditional only to show what breaks (readers see lists go back)

    def __post_init__(self):
        errors = []
        positive = ("top_n", "recent_items", "pair_span_ms", "seeds", "neighbors_per_item",
                    "fragment_size", "cooccurrence_window_ms", "bucket_ms", "interest_half_life_ms",
                    "max_consumed", "user_ttl_ms", "trending_window_ms", "trending_size",
                    "parallelism", "bundle_size", "bundle_time_ms", "state_cache_keys",
                    "checkpoint_interval_ms", "checkpoint_timeout_ms",
                    "transaction_timeout_ms")
        for name in positive:
            if getattr(self, name) <= 0:
                errors.append(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("max_out_of_orderness_ms", "idle_source_timeout_ms", "redis_ttl_ms", "debounce_ms"):
            if getattr(self, name) < 0:
                errors.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.interest_weight <= 1.0:
            errors.append(f"interest_weight must be within [0, 1], got {self.interest_weight}")
        if self.seeds > self.recent_items:
            errors.append(f"seeds ({self.seeds}) cannot exceed recent_items ({self.recent_items})")
        if self.fragment_size > self.neighbors_per_item:
            errors.append(f"fragment_size ({self.fragment_size}) cannot exceed neighbors_per_item "
                          f"({self.neighbors_per_item})")
        if self.bucket_ms > self.cooccurrence_window_ms:
            errors.append(f"bucket_ms ({self.bucket_ms}) cannot exceed cooccurrence_window_ms "
                          f"({self.cooccurrence_window_ms})")
        if self.transaction_timeout_ms <= 2 * self.checkpoint_interval_ms:
            errors.append(f"transaction_timeout_ms ({self.transaction_timeout_ms}) must be well above "
                          f"checkpoint_interval_ms ({self.checkpoint_interval_ms}) plus restart time")
        if self.delivery_guarantee not in ("exactly-once", "at-least-once"):
            errors.append(f"delivery_guarantee must be exactly-once or at-least-once, got {self.delivery_guarantee!r}")
        if self.redis_write not in ("versioned", "unconditional"):
            errors.append(f"redis_write must be versioned or unconditional, got {self.redis_write!r}")
        if not self.transactional_id_prefix.strip():
            errors.append("transactional_id_prefix must not be empty (unique per deployment)")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            errors.append(f"redis_url must start with redis://, rediss:// or unix://, got {self.redis_url!r}")
        if errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))

    @classmethod
    def load(cls, file: str | Path | None = None, env: Mapping[str, str] | None = None,
             overrides: Mapping[str, Any] | None = None) -> "JobConfig":
        """Defaults < TOML file < RECO_<NAME> environment variables < overrides."""
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        if file:
            with open(file, "rb") as fh:
                data = tomllib.load(fh)
            unknown = sorted(set(data) - set(types))
            if unknown:
                raise ConfigError(f"unknown setting(s) in {file}: {', '.join(unknown)}")
            values.update(data)
        for name in types:
            raw = (env if env is not None else os.environ).get(f"RECO_{name.upper()}")
            if raw is not None:
                values[name] = _parse(name, types[name], raw)
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        for name, value in values.items():
            values[name] = _coerce(name, types[name], value)
        return cls(**values)

    def replace(self, **changes) -> "JobConfig":
        return dataclasses.replace(self, **changes)


def _parse(name: str, type_name: str, raw: str) -> Any:
    try:
        return {"int": int, "float": float}.get(type_name, str)(raw)
    except ValueError:
        raise ConfigError(f"RECO_{name.upper()}={raw!r} is not a valid {type_name}") from None


def _coerce(name: str, type_name: str, value: Any) -> Any:
    expected = {"int": int, "float": (int, float), "str": str}[type_name]
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{name} must be {type_name}, got {value!r}")
    return float(value) if type_name == "float" else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per setting (e.g. --top-n), defaulting to None so lower layers apply."""
    parser.add_argument("--config", help="TOML file with settings (e.g. deploy/local/demo.toml, deploy/k8s/job.toml)")
    for f in fields(JobConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                            type={"int": int, "float": float}.get(f.type, str),
                            help=f"default {f.default}")


def from_arguments(args: argparse.Namespace) -> JobConfig:
    return JobConfig.load(args.config, overrides={f.name: getattr(args, f.name) for f in fields(JobConfig)})
