"""Decode the job's Kafka records without Flink: the value of any record on one of its
topics (``flink_jobs.contracts``), Avro single-object encoded, against the schemas shipped
in the package. A record written by an older schema version decodes too; bytes that are
not such a record raise ``flink_jobs.codec.AvroError`` (a ValueError)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec


@lru_cache(maxsize=None)
def _codec(record: str) -> AvroCodec:
    return AvroCodec(record)


def decode(topic: str, value: bytes) -> dict[str, Any]:
    """The record ``value`` read from ``topic``, as a dict of the current schema's fields;
    the record key is the id as decimal text (``int(key)``)."""
    record = contracts.TOPIC_RECORDS.get(topic)
    if record is None:
        raise ValueError(f"{topic!r} is not one of the job's topics: {', '.join(sorted(contracts.TOPIC_RECORDS))}")
    return _codec(record).decode(value)
