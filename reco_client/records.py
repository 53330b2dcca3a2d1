"""Decode the job's Kafka records without Flink: the value of any record on one of its
topics (``flink_jobs.contracts``), against the schemas shipped in the package. A record
written by an older schema version decodes too; bytes that are not such a record raise
``flink_jobs.codec.AvroError`` (a ValueError).

Single-object encoding (the default) names its writer schema by fingerprint, so it decodes
from the package alone. A Confluent-framed record (``*_wire_format = "confluent"``) names it
by a Schema Registry id: fetch that schema (``GET /schemas/ids/{id}``) and pass it, or read
the topic with any Confluent deserializer (docs/consumers.md).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Optional, Union

from flink_jobs import contracts
from flink_jobs.codec import CONFLUENT, AvroCodec, AvroError, confluent_unframe, wire_format


@lru_cache(maxsize=None)
def _codec(record: str) -> AvroCodec:
    return AvroCodec(record)


def decode(topic: str, value: bytes, writer_schema: Optional[Union[str, Mapping[str, Any]]] = None) -> dict[str, Any]:
    """The record ``value`` read from ``topic``, as a dict of the current schema's fields;
    the record key is the id as decimal text (``int(key)``). ``writer_schema``: the schema a
    Confluent-framed value names by its id (JSON text or parsed)."""
    record = contracts.TOPIC_RECORDS.get(topic)
    if record is None:
        raise ValueError(f"{topic!r} is not one of the job's topics: {', '.join(sorted(contracts.TOPIC_RECORDS))}")
    if wire_format(value) == CONFLUENT:
        if writer_schema is None:
            schema_id, _ = confluent_unframe(value)
            raise AvroError(f"a Confluent-framed record (schema id {schema_id}): pass the schema your Schema Registry "
                            f"returns for GET /schemas/ids/{schema_id} as writer_schema")
        return _codec(record).decode_confluent(value, writer_schema)
    return _codec(record).decode(value)
