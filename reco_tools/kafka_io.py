"""Kafka producer and consumer set-up shared by the command-line tools and the tests.

Security: the tools take the job's Kafka client properties (Java names, docs/operations.md "Security")
and map them to kafka-python's settings (:func:`client_settings`); a property kafka-python
cannot honor is refused with its name, never ignored.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from typing import Iterable, Iterator, Mapping

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from tqdm import tqdm

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.sensitive import parse_assignment, parse_properties, read_properties

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_LOGIN_MODULES = {"PlainLoginModule": ("PLAIN",), "ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512")}
_JAAS_HEAD = re.compile(r"\s*(?P<module>[\w.$]+)\s+(?P<flag>required|requisite|sufficient|optional)\b")
_JAAS_OPTION = re.compile(r'\s*(?P<key>[\w.-]+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s;"]+))')


def _jaas_credentials(jaas: str) -> tuple[str, dict[str, str]]:
    """``Module required username="u" password="p";`` -> (module's short name, options).
    Errors never quote the text (it holds a password)."""
    head = _JAAS_HEAD.match(jaas)
    if not head:
        raise ValueError("sasl.jaas.config: expected '<LoginModule class> required key=\"value\" ...;'")
    options, pos = {}, head.end()
    while True:
        option = _JAAS_OPTION.match(jaas, pos)
        if not option:
            break
        value = option["bare"] if option["quoted"] is None else re.sub(r"\\(.)", r"\1", option["quoted"])
        options[option["key"]] = value
        pos = option.end()
    if jaas[pos:].strip() not in (";", ""):
        raise ValueError("sasl.jaas.config: one login module with key=\"value\" options and a final ';' "
                         f"expected; cannot read it after option {len(options)}")
    return head["module"].rsplit(".", 1)[-1], options


def client_settings(properties: Mapping[str, str] | None) -> dict:
    """Kafka client properties (Java names, as the job takes them) -> kafka-python settings.

    Supported: security.protocol, sasl.mechanism (PLAIN, SCRAM-SHA-256/512), sasl.jaas.config
    (Plain/ScramLoginModule: username and password), PEM trust and key stores
    (ssl.truststore.type=PEM + ssl.truststore.location; ssl.keystore.type=PEM +
    ssl.keystore.location, key and certificate chain in one file; ssl.key.password),
    ssl.endpoint.identification.algorithm (https or empty), client.id. Anything else
    raises ValueError naming every property kafka-python cannot use."""
    props = dict(properties or {})
    out: dict = {}
    errors: list[str] = []
    take = props.pop

    protocol = take("security.protocol", None)
    if protocol is not None:
        if protocol.upper() in SECURITY_PROTOCOLS:
            out["security_protocol"] = protocol.upper()
        else:
            errors.append(f"security.protocol={protocol}: one of {', '.join(SECURITY_PROTOCOLS)}")
    sasl = out.get("security_protocol", "PLAINTEXT").startswith("SASL")
    mechanism = take("sasl.mechanism", None)
    if mechanism is not None:
        if mechanism.upper() in SASL_MECHANISMS:
            out["sasl_mechanism"] = mechanism.upper()
        else:
            errors.append(f"sasl.mechanism={mechanism}: the tools (kafka-python) take "
                          f"{', '.join(SASL_MECHANISMS)} from properties (GSSAPI and OAUTHBEARER need code)")
    elif sasl:
        errors.append("sasl.mechanism: needed with SASL (Kafka's default, GSSAPI, is not supported by the tools)")
    jaas = take("sasl.jaas.config", None)
    if jaas is not None:
        try:
            module, options = _jaas_credentials(jaas)
            if module not in _LOGIN_MODULES:
                raise ValueError(f"sasl.jaas.config: login module {module} is not supported by the tools "
                                 f"(PlainLoginModule or ScramLoginModule)")
            if out.get("sasl_mechanism") and out["sasl_mechanism"] not in _LOGIN_MODULES[module]:
                raise ValueError(f"sasl.jaas.config: {module} does not do sasl.mechanism={out['sasl_mechanism']}")
            missing = [k for k in ("username", "password") if k not in options]
            if missing:
                raise ValueError(f"sasl.jaas.config: no {' and no '.join(missing)}")
            out["sasl_plain_username"], out["sasl_plain_password"] = options["username"], options["password"]
        except ValueError as exc:
            errors.append(str(exc))
    elif sasl:
        errors.append("sasl.jaas.config: needed with SASL (the user name and password)")

    for store, file_settings in (("truststore", ("ssl_cafile",)), ("keystore", ("ssl_certfile", "ssl_keyfile"))):
        kind = take(f"ssl.{store}.type", "JKS")
        location = take(f"ssl.{store}.location", None)
        if location is not None:
            if kind.upper() == "PEM":
                out.update(dict.fromkeys(file_settings, location))
            else:
                errors.append(f"ssl.{store}.location: kafka-python reads PEM files only; convert the {kind} "
                              f"store to PEM and set ssl.{store}.type=PEM")
        if take(f"ssl.{store}.password", None) is not None:
            errors.append(f"ssl.{store}.password: not used (the tools read PEM stores, which have none)"
                          + (" (the private key's password is ssl.key.password)" if store == "keystore" else ""))
    for inline in ("ssl.truststore.certificates", "ssl.keystore.certificate.chain", "ssl.keystore.key"):
        if take(inline, None) is not None:
            errors.append(f"{inline}: give PEM files (ssl.*.location) instead of inline PEM")
    key_password = take("ssl.key.password", None)
    if key_password is not None:
        out["ssl_password"] = key_password
    algorithm = take("ssl.endpoint.identification.algorithm", None)
    if algorithm is not None:
        if algorithm.strip().lower() in ("https", ""):
            out["ssl_check_hostname"] = algorithm.strip().lower() == "https"
        else:
            errors.append(f"ssl.endpoint.identification.algorithm={algorithm}: https or empty")
    client_id = take("client.id", None)
    if client_id is not None:
        out["client_id"] = client_id
    errors += [f"{key}: not supported by the tools (kafka-python)" for key in sorted(props)]
    if errors:
        raise ValueError("Kafka properties the tools cannot use:\n  " + "\n  ".join(errors))
    return out


def add_kafka_arguments(ap: argparse.ArgumentParser) -> None:
    """--kafka-properties-file and --kafka-property, as the job takes them."""
    ap.add_argument("--kafka-properties-file", metavar="PATH", default=os.environ.get("RECO_KAFKA_PROPERTIES_FILE") or None,
                    help="Kafka client properties (Java properties format: security.protocol, sasl.mechanism, "
                         "sasl.jaas.config, ssl.*), the job's file; default $RECO_KAFKA_PROPERTIES_FILE")
    ap.add_argument("--kafka-property", action="append", default=[], metavar="KEY=VALUE",
                    help="one Kafka client property on top of the file (repeatable; credentials belong in the file)")


def kafka_properties(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The properties of :func:`add_kafka_arguments`: the file, then $RECO_KAFKA_PROPERTIES
    (properties text), then each --kafka-property; checked against what the tools support."""
    env = os.environ if env is None else env
    props: dict[str, str] = {}
    if args.kafka_properties_file:
        props.update(read_properties(args.kafka_properties_file))
    props.update(parse_properties(env.get("RECO_KAFKA_PROPERTIES", "")))
    for assignment in args.kafka_property:
        key, value = parse_assignment(assignment)
        props[key] = value
    client_settings(props)
    return props


def kafka_properties_or_exit(ap: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """:func:`kafka_properties`; a property the tools cannot use is a usage error of ``ap``."""
    try:
        return kafka_properties(args)
    except ValueError as exc:
        ap.error(str(exc))


def add_schema_registry_arguments(ap: argparse.ArgumentParser) -> None:
    """--schema-registry and --schema-registry-ca-file: for topics in the Confluent wire format."""
    ap.add_argument("--schema-registry", metavar="URL", default=os.environ.get("RECO_SCHEMA_REGISTRY_URL") or None,
                    help="Schema Registry for values in the Confluent wire format (GET /schemas/ids/{id}); "
                         "default $RECO_SCHEMA_REGISTRY_URL, which is where https://user:password@... goes")
    ap.add_argument("--schema-registry-ca-file", metavar="PATH", default=None,
                    help="CA bundle to verify an https:// Schema Registry (default: the system's)")


def schema_registry_or_exit(ap: argparse.ArgumentParser, args: argparse.Namespace):
    """The RegistryClient of :func:`add_schema_registry_arguments` (None without one); a
    password given on the command line, or a URL that is none, is a usage error of ``ap``."""
    from flink_jobs.schema_registry import RegistryClient, RegistryError
    from flink_jobs.sensitive import redact_url, url_has_secret

    url = args.schema_registry
    if not url:
        return None
    if url_has_secret(url) and url != os.environ.get("RECO_SCHEMA_REGISTRY_URL"):
        ap.error(f"--schema-registry {redact_url(url)}: a password on the command line can be read by every user "
                 f"of the machine; put the URL in RECO_SCHEMA_REGISTRY_URL")
    try:
        return RegistryClient(url, args.schema_registry_ca_file or "")
    except (RegistryError, ValueError) as exc:
        ap.error(f"--schema-registry {redact_url(url)}: {exc}")


def make_producer(bootstrap: str, properties: Mapping[str, str] | None = None, **overrides) -> KafkaProducer:
    settings = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type=None,
        # Idempotent producer: a retried batch is never written twice.
        enable_idempotence=True,
        client_id="reco-tools",
    )
    settings.update(client_settings(properties))
    settings.update(overrides)
    return KafkaProducer(**settings)


def event_message(codec, event: dict) -> tuple[bytes, bytes, int]:
    """A user event as the job expects it on Kafka: keyed by user, Avro single-object
    value, and the record timestamp set to the event time (the job's watermarks come from
    record timestamps, per partition)."""
    return contracts.record_key(event["user_id"]), codec.encode(event), event["event_time"]


def produce_catalog(producer: KafkaProducer, items: list[dict], progress: bool = True,
                    topic: str = contracts.ITEMS_TOPIC) -> int:
    """ItemFeatures records to the catalog topic, keyed by item id; returns the number sent."""
    codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.ITEMS_TOPIC])
    return produce(producer, topic,
                   ((contracts.record_key(r["item_id"]), codec.encode(r)) for r in items),
                   total=len(items), desc="catalog", progress=progress)


def produce(producer: KafkaProducer, topic: str, records: Iterable[tuple],
            total: int | None = None, desc: str | None = None, rate: float = 0.0,
            progress: bool = True) -> int:
    """Send ``(key, value[, timestamp_ms])`` records in order, optionally paced to ``rate`` records/s.

    Returns the number sent; raises the first delivery error after flushing.
    """
    errors: list[BaseException] = []
    sent = 0
    start = time.monotonic()
    bar = tqdm(total=total, desc=desc or topic, unit="ev", disable=not progress, smoothing=0.1)
    try:
        for key, value, *timestamp in records:
            producer.send(topic, key=key, value=value, timestamp_ms=timestamp[0] if timestamp else None
                          ).add_errback(errors.append)
            sent += 1
            bar.update(1)
            if errors:
                break
            if rate > 0 and sent % 64 == 0:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        bar.close()
    if errors:
        raise RuntimeError(f"producing to {topic} failed: {errors[0]!r}")
    return sent


def make_consumer(bootstrap: str, topic: str, from_beginning: bool = True,
                  group_id: str | None = None, properties: Mapping[str, str] | None = None,
                  **overrides) -> KafkaConsumer:
    """A consumer that only sees committed transactional records (read_committed)."""
    settings = dict(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=group_id is not None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level="read_committed",
        client_id="reco-tools",
    )
    settings.update(client_settings(properties))
    settings.update(overrides)
    consumer = KafkaConsumer(**settings)
    if group_id is None:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            consumer.close()
            raise RuntimeError(f"topic {topic} does not exist at {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        else:
            consumer.seek_to_end(*tps)
    else:
        consumer.subscribe([topic])
    return consumer


def consume(consumer: KafkaConsumer, idle_timeout_s: float = 5.0,
            max_records: int | None = None) -> Iterator:
    """Yield records until ``max_records`` or until nothing arrives for ``idle_timeout_s``."""
    seen = 0
    last = time.monotonic()
    while max_records is None or seen < max_records:
        batch = consumer.poll(timeout_ms=200)
        if not batch:
            if time.monotonic() - last > idle_timeout_s:
                return
            continue
        last = time.monotonic()
        for records in batch.values():
            for record in records:
                yield record
                seen += 1
                if max_records is not None and seen >= max_records:
                    return
