"""The job's one configuration object: defaults, then a TOML file, then RECO_* environment
variables, then command-line flags; validated once at start with a message per bad value.
Operators receive it; none of them reads the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from urllib.parse import urlsplit

from redis.connection import parse_url as parse_redis_url

from flink_jobs import contracts
from flink_jobs.codec import CONFLUENT, SINGLE_OBJECT
from flink_jobs.sensitive import (Properties, is_secret_property, kafka_property_errors, parse_assignment,
                                  parse_properties, read_properties, read_secret_file, redact_url,
                                  url_has_secret)

from udfs.embedding import PRECISIONS
from udfs.versioning import EVENT_TIME_LIMIT_MS

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
    seeds: int = 20                      # recent items whose neighbors become candidates (tuned with bench/quality.py)
    neighbors_per_item: int = 200        # M: bounded neighbor set per item
    fragment_size: int = 200             # K: neighbors per item, scored, used for ranking and published
    similarity_shrinkage: float = 1.0    # lambda: similarity x C/(C + lambda), in down-weighted counts
    cooccurrence_window_ms: int = 7 * DAY  # L: sliding event-time window of the counts
    bucket_ms: int = HOUR                # granularity of that window
    interest_half_life_ms: int = 7 * DAY
    interest_weight: float = 0.2         # alpha: share of interest similarity in the score
    # Embeddings (catalog records of a model, e.g. from reco-embed): beta weighs the cosine
    # of the user's embedding interest with a candidate's embedding (0 = embeddings unused);
    # the nearest items by embedding join the candidates; vectors are kept packed in state.
    embedding_weight: float = 0.1        # beta (tuned with bench/quality.py --model)
    embedding_candidates: int = 20       # E: nearest items by embedding added to the candidates
    embedding_precision: str = "int8"    # int8 (per-vector scale) or float32
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
    # Decode accepts event times within [earliest, processing time + skew] (flink_jobs/validation.py);
    # anything else goes to the dead-letter topic. The default earliest, 1995-01-01 UTC, lets the
    # MovieLens sample in (it starts 1995-01-09) and keeps 1970 and seconds-for-milliseconds out;
    # a deployment with recent data only should raise it.
    earliest_event_time_ms: int = 788_918_400_000
    max_future_skew_ms: int = HOUR       # at most a day: a far-future event pins TTLs and event time
    # engine
    parallelism: int = 2
    bundle_size: int = 10_000            # most records a Python operator takes per round trip (python.fn-execution.bundle.size)
    bundle_time_ms: int = 100            # longest a record waits for its bundle to fill (python.fn-execution.bundle.time)
    # Entries of keyed state a Python worker process keeps deserialized (python.state.cache-size):
    # one cache per worker (per slot), shared by its keyed operators, an entry per key and
    # operator (a user twice: UserActivity and the Ranker; an item once). A miss is a blocking
    # read from the TaskManager; too small a cache for the active keys makes every event miss
    # (bench/RESULTS.md "2026-12-06: the state cache and the commit").
    state_cache_keys: int = 30_000
    # Where the Python operators run (python.execution-mode): "process", Python worker
    # processes fed over gRPC in bundles; "thread", inside the TaskManager's JVM (PyFlink's
    # embedded mode: no gRPC, but one interpreter, one GIL, per TaskManager, so parallelism
    # comes from TaskManagers of one slot each). Thread mode is measured in bench/RESULTS.md;
    # it needs the job's packages importable on the TaskManagers (the local mini-cluster and
    # the project's own cluster: this checkout's venv).
    python_execution_mode: str = "process"
    checkpoint_interval_ms: int = 10_000
    checkpoint_timeout_ms: int = 120_000
    # Where checkpoints (retained on cancel, for a resume) and savepoints go: a URI every
    # JobManager and TaskManager reaches (file:///shared/..., s3://...). Empty: the cluster's
    # execution.checkpointing.dir; on the local mini-cluster, .run/checkpoints.
    checkpoint_dir: str = ""
    state_backend: str = "rocksdb"        # rocksdb (incremental checkpoints) or hashmap (state on the heap)
    # Restarts after failures are bounded: a job that keeps failing stops, for someone to look.
    restart_attempts: int = 10           # restarts after failures before the job fails for good
    restart_backoff_max_ms: int = 60_000  # longest wait between restarts
    # connections
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Kafka client properties for every source and sink (security.protocol, sasl.*, ssl.*:
    # docs/operations.md "Security"), from kafka_properties_file and --kafka-property
    # KEY=VALUE; secrets never shown.
    kafka_properties: Properties = Properties()
    consumer_group: str = "reco-job"
    transactional_id_prefix: str = "reco-job"
    # Above checkpoint_interval_ms + checkpoint_timeout_ms + restart_backoff_max_ms (validated),
    # below the broker's transaction.max.timeout.ms.
    transaction_timeout_ms: int = 600_000
    delivery_guarantee: str = "exactly-once"  # of the Kafka outputs; at-least-once only to show what breaks
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_ttl_ms: int = 7 * DAY
    redis_write: str = "versioned"       # unconditional only to show what breaks (readers see lists go back)
    # Redis user and password go in redis_url (redis://user:password@host:port/0, percent-encoded).
    redis_connect_timeout_ms: int = 2_000   # TCP (and TLS) connect
    redis_read_timeout_ms: int = 5_000      # a reply to one command
    # A write failing on a connection error, a timeout or a server in a passing state (out of
    # memory, loading, read-only, busy: flink_jobs/redis_store.py) is retried with exponential
    # backoff (base doubling up to cap) for up to redis_retry_max_ms in all; the operator blocks
    # meanwhile (backpressure), then fails the task, and the restart replays (versioned upserts).
    # 0 = no retry.
    redis_retry_base_ms: int = 100
    redis_retry_cap_ms: int = 5_000
    redis_retry_max_ms: int = 60_000        # below checkpoint_timeout_ms: a blocked write holds the checkpoint
    # TLS (rediss:// URLs only): CA bundle to verify the server, client certificate and key
    # (mutual TLS); verify "full" (certificate and host name), "ca" (certificate only), "none".
    redis_tls_ca_file: str = ""
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_tls_verify: str = "full"
    # The wire format of each output topic's values (docs/consumers.md): "single-object" (Avro
    # single-object encoding: self-describing, needs no other service) or "confluent" (0x00,
    # a Schema Registry id, the body: what Kafka Connect, ksqlDB, kcat and Kafka UIs read).
    recommendations_wire_format: str = SINGLE_OBJECT
    item_neighbors_wire_format: str = SINGLE_OBJECT
    dead_letters_wire_format: str = SINGLE_OBJECT
    # A Confluent-compatible Schema Registry (http(s)://host:port[/path]), needed by any
    # "confluent" topic: at start the job sets subject <topic>-value to BACKWARD and registers
    # the topic's schema there (flink_jobs/schema_registry.py). Basic-auth user and password
    # go in the URL (https://user:password@registry:8081, percent-encoded), so they come from
    # RECO_SCHEMA_REGISTRY_URL or schema_registry_url_file like the Redis password, never a
    # command line; the TLS CA file verifies an https:// registry (default: the system's CAs).
    schema_registry_url: str = ""
    schema_registry_tls_ca_file: str = ""

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
        if not (self.similarity_shrinkage >= 0.0 and math.isfinite(self.similarity_shrinkage)):
            errors.append(f"similarity_shrinkage must be a finite number >= 0, got {self.similarity_shrinkage}")
        if not 0.0 <= self.interest_weight <= 1.0:
            errors.append(f"interest_weight must be within [0, 1], got {self.interest_weight}")
        if not (self.embedding_weight >= 0.0 and math.isfinite(self.embedding_weight)):
            errors.append(f"embedding_weight must be a finite number >= 0, got {self.embedding_weight}")
        if self.embedding_candidates < 0:
            errors.append(f"embedding_candidates must be >= 0, got {self.embedding_candidates}")
        if self.embedding_precision not in PRECISIONS:
            errors.append(f"embedding_precision must be one of {', '.join(PRECISIONS)}, got {self.embedding_precision!r}")
        if self.seeds > self.recent_items:
            errors.append(f"seeds ({self.seeds}) cannot exceed recent_items ({self.recent_items})")
        if self.fragment_size > self.neighbors_per_item:
            errors.append(f"fragment_size ({self.fragment_size}) cannot exceed neighbors_per_item "
                          f"({self.neighbors_per_item})")
        if self.bucket_ms > self.cooccurrence_window_ms:
            errors.append(f"bucket_ms ({self.bucket_ms}) cannot exceed cooccurrence_window_ms "
                          f"({self.cooccurrence_window_ms})")
        longest_open_ms = self.checkpoint_interval_ms + self.checkpoint_timeout_ms + self.restart_backoff_max_ms
        if self.transaction_timeout_ms <= longest_open_ms:
            errors.append(f"transaction_timeout_ms ({self.transaction_timeout_ms}) must be above "
                          f"checkpoint_interval_ms ({self.checkpoint_interval_ms}) + checkpoint_timeout_ms "
                          f"({self.checkpoint_timeout_ms}) + restart_backoff_max_ms ({self.restart_backoff_max_ms}) "
                          f"= {longest_open_ms}: a Kafka sink's transaction opens at one checkpoint and commits "
                          f"when the next completes (after a failure, when the restart does), so one the broker "
                          f"aborts first loses its output while Redis already has the lists")
        if self.restart_attempts < 1:
            errors.append(f"restart_attempts must be >= 1, got {self.restart_attempts}")
        if self.restart_backoff_max_ms < 1_000:
            errors.append(f"restart_backoff_max_ms must be >= 1000 (a second), got {self.restart_backoff_max_ms}")
        if self.python_execution_mode not in ("process", "thread"):
            errors.append(f"python_execution_mode must be process or thread, got {self.python_execution_mode!r}")
        if self.state_backend not in ("rocksdb", "hashmap"):
            errors.append(f"state_backend must be rocksdb or hashmap, got {self.state_backend!r}")
        if self.checkpoint_dir and "://" not in self.checkpoint_dir:
            errors.append(f"checkpoint_dir must be a URI every Flink process reaches (file:///..., s3://...), "
                          f"got {self.checkpoint_dir!r}")
        if self.delivery_guarantee not in ("exactly-once", "at-least-once"):
            errors.append(f"delivery_guarantee must be exactly-once or at-least-once, got {self.delivery_guarantee!r}")
        if self.redis_write not in ("versioned", "unconditional"):
            errors.append(f"redis_write must be versioned or unconditional, got {self.redis_write!r}")
        if not self.transactional_id_prefix.strip():
            errors.append("transactional_id_prefix must not be empty (unique per deployment)")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            errors.append(f"redis_url must start with redis://, rediss:// or unix://, got {redact_url(self.redis_url)!r}")
        else:
            try:
                parse_redis_url(self.redis_url)
            except ValueError:   # its message may quote a piece of the password: not shown
                errors.append(f"redis_url {redact_url(self.redis_url)!r} is not a URL redis-py can read (a port, "
                              f"IPv6 address or query argument; / ? # @ in a password need percent-encoding)")
        if not isinstance(self.kafka_properties, Properties):   # a plain dict given to the constructor
            object.__setattr__(self, "kafka_properties", Properties(self.kafka_properties or {}))
        errors.extend(kafka_property_errors(self.kafka_properties))
        errors.extend(self._redis_errors())
        errors.extend(self._event_time_errors())
        errors.extend(self._wire_format_errors())
        if errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))

    def _event_time_errors(self) -> list[str]:
        """The event-time bounds of validation (docs/algorithm.md "Bad input and dead letters")."""
        errors = []
        if not 0 < self.earliest_event_time_ms < EVENT_TIME_LIMIT_MS:
            errors.append(f"earliest_event_time_ms must be within (0, {EVENT_TIME_LIMIT_MS}) (epoch ms; the upper "
                          f"end keeps versions exact), got {self.earliest_event_time_ms}")
        if not 0 <= self.max_future_skew_ms <= DAY:
            errors.append(f"max_future_skew_ms must be within [0, {DAY}] (a day), got {self.max_future_skew_ms}")
        return errors

    def _wire_format_errors(self) -> list[str]:
        """The output topics' wire formats and the Schema Registry (docs/consumers.md)."""
        errors = []
        for name in WIRE_FORMAT_SETTINGS:
            if getattr(self, name) not in (SINGLE_OBJECT, CONFLUENT):
                errors.append(f"{name} must be {SINGLE_OBJECT} or {CONFLUENT}, got {getattr(self, name)!r}")
        confluent = [name for name, topic in WIRE_FORMAT_SETTINGS.items() if getattr(self, name) == CONFLUENT]
        url = self.schema_registry_url
        if confluent and not url:
            errors.append(f"schema_registry_url must be set when {', '.join(confluent)} "
                          f"{'is' if len(confluent) == 1 else 'are'} {CONFLUENT}: the Confluent wire format "
                          f"carries the schema's id in a Schema Registry, where the job registers it at start")
        if url:
            shown = redact_url(url)
            try:
                parts = urlsplit(url)
                parts.port   # ValueError for a port that is no number
            except ValueError:   # its message may quote a piece of the password: not shown
                errors.append(f"schema_registry_url {shown!r} is not a URL (a port that is no number, or an "
                              f"IPv6 address without its ]; / ? # @ in a password need percent-encoding)")
            else:
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    errors.append(f"schema_registry_url must be http://host:port or https://host:port, got {shown!r}")
                elif parts.query or parts.fragment:
                    errors.append(f"schema_registry_url takes no query or fragment, got {shown!r}")
        if self.schema_registry_tls_ca_file and not url.startswith("https://"):
            errors.append("schema_registry_tls_ca_file needs an https:// schema_registry_url (TLS); the URL is not one")
        return errors

    def confluent_topics(self) -> dict[str, str]:
        """The output topics written in the Confluent wire format: topic -> its setting."""
        return {topic: name for name, topic in WIRE_FORMAT_SETTINGS.items() if getattr(self, name) == CONFLUENT}

    def _redis_errors(self) -> list[str]:
        """Timeouts, retry and TLS settings of the Redis client (docs/operations.md "Redis")."""
        errors = []
        for name in ("redis_connect_timeout_ms", "redis_read_timeout_ms", "redis_retry_base_ms", "redis_retry_cap_ms"):
            if getattr(self, name) <= 0:
                errors.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.redis_retry_max_ms < 0:
            errors.append(f"redis_retry_max_ms must be >= 0 (0 = no retry), got {self.redis_retry_max_ms}")
        if self.redis_retry_cap_ms < self.redis_retry_base_ms:
            errors.append(f"redis_retry_cap_ms ({self.redis_retry_cap_ms}) cannot be below redis_retry_base_ms "
                          f"({self.redis_retry_base_ms})")
        if self.redis_retry_max_ms >= self.checkpoint_timeout_ms:
            errors.append(f"redis_retry_max_ms ({self.redis_retry_max_ms}) must be below checkpoint_timeout_ms "
                          f"({self.checkpoint_timeout_ms}): a blocked Redis write holds the checkpoint back, and "
                          f"an expired checkpoint fails the job before the retries end; raise both together "
                          f"(and transaction_timeout_ms with them)")
        if self.redis_tls_verify not in ("full", "ca", "none"):
            errors.append(f"redis_tls_verify must be full, ca or none, got {self.redis_tls_verify!r}")
        tls_files = [n for n in ("redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file") if getattr(self, n)]
        if tls_files and not self.redis_url.startswith("rediss://"):
            errors.append(f"{', '.join(tls_files)} need a rediss:// redis_url (TLS); the URL is not one")
        if bool(self.redis_tls_cert_file) != bool(self.redis_tls_key_file):
            errors.append("redis_tls_cert_file and redis_tls_key_file go together (client certificate and its key)")
        return errors

    @classmethod
    def load(cls, file: str | Path | None = None, env: Mapping[str, str] | None = None,
             overrides: Mapping[str, Any] | None = None) -> "JobConfig":
        """Defaults < TOML file < RECO_<NAME> environment variables < overrides.

        Secrets need no command line: every layer also takes ``redis_url_file`` (a file
        holding the URL; RECO_REDIS_URL_FILE, --redis-url-file), likewise
        ``schema_registry_url_file``, and ``kafka_properties_file``
        (Java properties; RECO_KAFKA_PROPERTIES_FILE, --kafka-properties-file), which stand
        for the value in that layer. ``kafka_properties`` merge key by key over the layers
        (in one layer: the file, then single properties; RECO_KAFKA_PROPERTIES holds
        properties text, a TOML file a ``[kafka_properties]`` table)."""
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        env = env if env is not None else os.environ
        layers: list[tuple[str, dict]] = []
        if file:
            with open(file, "rb") as fh:
                data = tomllib.load(fh)
            unknown = sorted(set(data) - set(types) - set(FILE_SETTINGS))
            if unknown:
                raise ConfigError(f"unknown setting(s) in {file}: {', '.join(unknown)}")
            layers.append((str(file), data))
        layers.append(("the environment", {name: _parse(name, types.get(name, "str"), env[f"RECO_{name.upper()}"])
                                           for name in (*types, *FILE_SETTINGS) if f"RECO_{name.upper()}" in env}))
        layers.append(("the arguments", {k: v for k, v in (overrides or {}).items() if v is not None}))
        properties: dict[str, str] = {}
        for origin, layer in layers:
            layer = dict(layer)
            for file_setting, target in FILE_SETTINGS.items():
                path = layer.pop(file_setting, None)
                if not path:
                    continue
                if not isinstance(path, (str, Path)):
                    raise ConfigError(f"{file_setting} must be a path, got {type(path).__name__}")
                try:
                    if target == "kafka_properties":
                        properties.update(read_properties(path))
                    elif target in layer:
                        raise ConfigError(f"{origin} gives both {target} and {file_setting}: give one")
                    else:
                        layer[target] = read_secret_file(path)
                except ValueError as exc:
                    if isinstance(exc, ConfigError):
                        raise
                    raise ConfigError(f"{file_setting}: {exc}") from None
            if "kafka_properties" in layer:
                properties.update(_coerce("kafka_properties", "Properties", layer.pop("kafka_properties")))
            values.update(layer)
        for name, value in values.items():
            values[name] = _coerce(name, types[name], value)
        if properties:
            values["kafka_properties"] = Properties(properties)
        return cls(**values)

    def redacted(self) -> dict[str, Any]:
        """The settings as they may be logged or printed: passwords and credentials hidden."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["redis_url"] = redact_url(self.redis_url)
        shown["schema_registry_url"] = redact_url(self.schema_registry_url)
        shown["kafka_properties"] = Properties(self.kafka_properties)   # its repr hides secret values
        return shown

    def __repr__(self) -> str:   # the dataclass repr would show the Redis password
        return f"JobConfig({', '.join(f'{k}={v!r}' for k, v in self.redacted().items())})"

    __str__ = __repr__

    def replace(self, **changes) -> "JobConfig":
        return dataclasses.replace(self, **changes)


# Settings read from a file (secrets stay off command lines): setting -> the one it gives.
FILE_SETTINGS = {"redis_url_file": "redis_url", "kafka_properties_file": "kafka_properties",
                 "schema_registry_url_file": "schema_registry_url"}
# The wire format setting of each output topic: setting -> topic.
WIRE_FORMAT_SETTINGS = {"recommendations_wire_format": contracts.RECOMMENDATIONS_TOPIC,
                        "item_neighbors_wire_format": contracts.ITEM_NEIGHBORS_TOPIC,
                        "dead_letters_wire_format": contracts.DEAD_LETTER_TOPIC}
# Settings whose value may hold a password: a wrong one is reported by its type, not its value.
_SECRET_SETTINGS = ("redis_url", "schema_registry_url")


def _parse(name: str, type_name: str, raw: str) -> Any:
    if type_name == "Properties":
        try:
            return parse_properties(raw)
        except ValueError as exc:
            raise ConfigError(f"RECO_{name.upper()}: {exc}") from None
    try:
        return {"int": int, "float": float}.get(type_name, str)(raw)
    except ValueError:
        raise ConfigError(f"RECO_{name.upper()}={raw!r} is not a valid {type_name}") from None


def _coerce(name: str, type_name: str, value: Any) -> Any:
    if type_name == "Properties":
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a table of Kafka properties, got {type(value).__name__}")
        bad = [k for k, v in value.items() if not isinstance(v, (str, int, float, bool))]
        if bad:
            raise ConfigError(f"{name}: the value of {', '.join(map(str, bad))} must be a string or number")
        return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}
    expected = {"int": int, "float": (int, float), "str": str}[type_name]
    if isinstance(value, bool) or not isinstance(value, expected):
        shown = type(value).__name__ if name in _SECRET_SETTINGS else repr(value)   # it may hold a password
        raise ConfigError(f"{name} must be {type_name}, got {shown}")
    return float(value) if type_name == "float" else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per setting (e.g. --top-n), defaulting to None so lower layers apply."""
    parser.add_argument("--config", help="TOML file with settings (e.g. deploy/local/demo.toml, deploy/k8s/job.toml)")
    for f in fields(JobConfig):
        if f.name == "kafka_properties":   # --kafka-properties-file and --kafka-property below
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                            type={"int": int, "float": float}.get(f.type, str),
                            help=f"default {f.default}")
    parser.add_argument("--redis-url-file", metavar="PATH",
                        help="file holding redis_url, so that its password stays off the command line "
                             "(or RECO_REDIS_URL / RECO_REDIS_URL_FILE in the environment)")
    parser.add_argument("--schema-registry-url-file", metavar="PATH",
                        help="file holding schema_registry_url, so that its password stays off the command line "
                             "(or RECO_SCHEMA_REGISTRY_URL / RECO_SCHEMA_REGISTRY_URL_FILE in the environment)")
    parser.add_argument("--kafka-properties-file", metavar="PATH",
                        help="Kafka client properties (Java properties format) for every source and sink, "
                             "e.g. security.protocol, sasl.mechanism, sasl.jaas.config, ssl.* "
                             "(or RECO_KAFKA_PROPERTIES_FILE)")
    parser.add_argument("--kafka-property", action="append", metavar="KEY=VALUE", default=None,
                        help="one Kafka client property, on top of the file (repeatable); "
                             "credentials belong in the file, not here")


def from_arguments(args: argparse.Namespace) -> JobConfig:
    overrides = {f.name: getattr(args, f.name) for f in fields(JobConfig) if f.name != "kafka_properties"}
    overrides.update(redis_url_file=getattr(args, "redis_url_file", None),
                     kafka_properties_file=getattr(args, "kafka_properties_file", None),
                     schema_registry_url_file=getattr(args, "schema_registry_url_file", None))
    if getattr(args, "kafka_property", None):
        try:
            overrides["kafka_properties"] = dict(parse_assignment(a) for a in args.kafka_property)
        except ValueError as exc:
            raise ConfigError(f"--kafka-property: {exc}") from None
    # A command line is visible to every user of the machine (ps, /proc): no secrets on it.
    secret = [k for k in overrides.get("kafka_properties", {}) if is_secret_property(k)]
    if secret:
        raise ConfigError(f"--kafka-property {secret[0]}: a credential on the command line can be read by every "
                          f"user of the machine; put it in --kafka-properties-file or RECO_KAFKA_PROPERTIES_FILE")
    url = overrides.get("redis_url")
    if url and url_has_secret(url):
        raise ConfigError("--redis-url with a password: a command line can be read by every user of the machine; "
                          "use RECO_REDIS_URL, --redis-url-file or RECO_REDIS_URL_FILE")
    url = overrides.get("schema_registry_url")
    if url and url_has_secret(url):
        raise ConfigError("--schema-registry-url with a password: a command line can be read by every user of the "
                          "machine; use RECO_SCHEMA_REGISTRY_URL, --schema-registry-url-file or "
                          "RECO_SCHEMA_REGISTRY_URL_FILE")
    return JobConfig.load(args.config, overrides=overrides)
