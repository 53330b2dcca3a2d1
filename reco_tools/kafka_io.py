"""Kafka producer and consumer set-up shared by the command-line tools and the tests."""

from __future__ import annotations

import time
from typing import Iterable, Iterator

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from tqdm import tqdm

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec


def make_producer(bootstrap: str, **overrides) -> KafkaProducer:
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
    settings.update(overrides)
    return KafkaProducer(**settings)


def event_message(codec, event: dict) -> tuple[bytes, bytes, int]:
    """A user event as the job expects it on Kafka: keyed by user, Avro single-object
    value, and the record timestamp set to the event time (the job's watermarks come from
    record timestamps, per partition)."""
    return contracts.record_key(event["user_id"]), codec.encode(event), event["event_time"]


def produce_catalog(producer: KafkaProducer, items: list[dict], progress: bool = True) -> int:
    """ItemFeatures records to the catalog topic, keyed by item id; returns the number sent."""
    codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.ITEMS_TOPIC])
    return produce(producer, contracts.ITEMS_TOPIC,
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
                  group_id: str | None = None, **overrides) -> KafkaConsumer:
    """A consumer that only sees committed transactional records (read_committed)."""
    settings = dict(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=group_id is not None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level="read_committed",
        client_id="reco-tools",
    )
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
