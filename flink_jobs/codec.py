"""Avro single-object encoding for every record this project puts on Kafka.

Wire format (Avro specification, "Single object encoding"):
    0xC3 0x01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
    Parsing Canonical Form | Avro binary body

so a consumer can tell which schema wrote a message without a registry service. A
decoder resolves the writer schema it finds by fingerprint against the current (reader)
schema, which is how data written by an older schema version stays readable.

Schemas live in ``schemas/`` as ``<namespace>.<Name>.avsc``, one record per file: the
current version of each record. When a record changes, its previous version moves to
``schemas/history/`` (self-contained, any file name) so that old messages still decode.
Every failure to encode or decode raises :class:`AvroError` and nothing else.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import fastavro
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


class AvroError(ValueError):
    """A record could not be encoded, or bytes could not be decoded."""


def schema_fingerprint(schema: Any) -> bytes:
    """The 8 bytes that follow the magic: CRC-64-AVRO of the canonical form, little-endian."""
    # fastavro returns the fingerprint as hex of its little-endian bytes, which is the
    # byte order the single-object header uses (checked against the spec's value for "null").
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _without_logical_types(schema: Any) -> Any:
    """The same schema with ``logicalType`` dropped everywhere.

    Timestamps then decode as the int milliseconds the job computes with, not as
    datetime objects. The canonical form, and so the fingerprint, does not change:
    Parsing Canonical Form strips logicalType too.
    """
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(v) for v in schema]
    return schema


class SchemaRegistry:
    """Current schema per record name, and every known writer schema by fingerprint."""

    def __init__(self, current: Iterable[Any], history: Iterable[Any] = ()):
        self._current: dict[str, Any] = {}
        self._by_fingerprint: dict[bytes, Any] = {}
        for schema in map(_without_logical_types, current):
            name = schema["name"]
            if name in self._current:
                raise AvroError(f"two current schemas for record {name}")
            self._current[name] = schema
            self._by_fingerprint[schema_fingerprint(schema)] = schema
        for schema in map(_without_logical_types, history):
            self._by_fingerprint.setdefault(schema_fingerprint(schema), schema)

    @classmethod
    def from_directory(cls, directory: Path = SCHEMA_DIR) -> "SchemaRegistry":
        files = sorted(directory.glob("*.avsc"))
        if not files:
            raise AvroError(f"no Avro schemas (*.avsc) in {directory}")
        history = sorted((directory / "history").glob("*.avsc"))
        return cls(
            (load_schema(str(p), _write_hint=False) for p in files),
            (load_schema(str(p), _write_hint=False) for p in history),
        )

    def current(self, name: str) -> Any:
        try:
            return self._current[name]
        except KeyError:
            raise AvroError(f"unknown record {name!r}; known: {sorted(self._current)}") from None

    def writer(self, fp: bytes) -> Any | None:
        return self._by_fingerprint.get(fp)

    def names(self) -> list[str]:
        return sorted(self._current)


@lru_cache(maxsize=1)
def bundled_registry() -> SchemaRegistry:
    return SchemaRegistry.from_directory()


class AvroCodec:
    """Encode and decode one record type; parse schemas once, then reuse them.

    ``name`` is the full record name, e.g. ``"reco.UserEvent"``.
    """

    def __init__(self, name: str, registry: SchemaRegistry | None = None):
        self.registry = registry or bundled_registry()
        self.name = name
        self.schema = self.registry.current(name)
        self.header = MAGIC + schema_fingerprint(self.schema)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self.header)
        try:
            # strict: a missing or unknown field is an error, not a silent null.
            fastavro.schemaless_writer(buf, self.schema, record, strict_allow_default=True)
        except Exception as exc:  # fastavro raises many types; callers see one
            raise AvroError(f"cannot encode {self.name}: {exc}") from exc
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise AvroError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < HEADER_LEN:
            raise AvroError(f"too short for a single-object header: {len(data)} bytes")
        if data[:2] != MAGIC:
            raise AvroError(f"not Avro single-object encoded: magic {data[:2].hex()} != c301")
        writer = self.registry.writer(data[2:HEADER_LEN])
        if writer is None:
            raise AvroError(f"unknown writer schema fingerprint {data[2:HEADER_LEN].hex()}")
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(body, writer, self.schema)
        except Exception as exc:
            raise AvroError(f"cannot decode {self.name}: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data):
            raise AvroError(f"cannot decode {self.name}: {len(data) - body.tell()} trailing bytes")
        if not isinstance(record, dict):
            raise AvroError(f"cannot decode {self.name}: writer is not a record schema")
        return record
