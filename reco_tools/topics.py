"""Create the project's Kafka topics (idempotent): ``reco-topics --bootstrap HOST:PORT``."""

from __future__ import annotations

import argparse
import sys
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, NoBrokersAvailable, TopicAlreadyExistsError

from flink_jobs.contracts import topic_specs
from reco_tools.kafka_io import add_kafka_arguments, client_settings, kafka_properties_or_exit


def connect_admin(bootstrap: str, timeout_s: float = 60.0, properties=None) -> KafkaAdminClient:
    """An admin client, retrying while the broker is still starting; ``properties``: Kafka
    client properties (Java names, see reco_tools.kafka_io.client_settings)."""
    settings = {"client_id": "reco-topics", **client_settings(properties)}
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **settings)
        except (NoBrokersAvailable, KafkaError) as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {exc}")
            time.sleep(0.5)


def ensure_topics(bootstrap: str, event_partitions: int = 4, timeout_s: float = 60.0,
                  recreate: bool = False, properties=None) -> list[str]:
    """Create every missing topic (all of them, emptied, with ``recreate``); returns the names created now."""
    admin = connect_admin(bootstrap, timeout_s, properties)
    try:
        existing = set(admin.list_topics())
        if recreate:
            doomed = [s.name for s in topic_specs(event_partitions) if s.name in existing]
            if doomed:
                admin.delete_topics(doomed)
                deadline = time.monotonic() + timeout_s
                while set(doomed) & set(admin.list_topics()):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"topics not deleted within {timeout_s:.0f}s: {doomed}")
                    time.sleep(0.3)
            existing -= set(doomed)
        missing = [s for s in topic_specs(event_partitions) if s.name not in existing]
        created = []
        for spec in missing:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    admin.create_topics([NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.config)])
                    created.append(spec.name)
                    break
                except TopicAlreadyExistsError:
                    if not recreate or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)  # a deleted topic can linger for a moment
        return created
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--event-partitions", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the broker")
    ap.add_argument("--recreate", action="store_true", help="delete and recreate them: all data is lost")
    add_kafka_arguments(ap)
    args = ap.parse_args(argv)
    if args.event_partitions < 1:
        ap.error("--event-partitions must be >= 1")
    properties = kafka_properties_or_exit(ap, args)
    created = ensure_topics(args.bootstrap, args.event_partitions, args.timeout, args.recreate, properties)
    specs = topic_specs(args.event_partitions)
    for s in specs:
        print(f"[topics] {s.name:28s} {s.partitions} partition(s) {'created' if s.name in created else 'exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
