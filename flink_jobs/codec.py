"""Avro encoding of every record this project puts on Kafka, in two wire formats.

Single-object encoding (Avro specification, "Single object encoding"; the default):
    0xC3 0x01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
    Parsing Canonical Form | Avro binary body

so a consumer can tell which schema wrote a message without a registry service. A
decoder resolves the writer schema it finds by fingerprint against the current (reader)
schema, which is how data written by an older schema version stays readable.

Confluent wire format (an output topic's ``*_wire_format = "confluent"``; docs/consumers.md):
    0x00 | 4-byte big-endian schema id in a Confluent-compatible Schema Registry | Avro binary body

The registry holds the writer schema (``SchemaRegistry.text``, registered at job start by
``flink_jobs.schema_registry``); this module only frames and unframes, and decodes a body
with a writer schema its caller fetched (``decode_body``, ``decode_confluent``).

Schemas live in ``schemas/`` as ``<namespace>.<Name>.avsc``, one record per file: the
current version of each record. When a record changes, its previous version moves to
``schemas/history/`` (self-contained, any file name) so that old messages still decode.
Every failure to encode or decode raises :class:`AvroError` and nothing else.

Three checks go beyond fastavro, which trusts its input:
- the body must read as Java's ``org.apache.avro.io.BinaryDecoder`` reads it, or not at
  all: a number wider than its type (Java drops the extra bits, Python ints do not wrap), a
  varint longer than Java reads (10 bytes for a long, 5 for an int, an enum or a union
  index), a boolean byte other than 0 or 1 (Java reads 2 as false, fastavro as true), a
  negative length or block size, and a block size that its items do not fill (Java skips
  by it, fastavro by the items) are refused; so is an array or map of more than
  ``max_items`` items, before fastavro builds any of it;
- enum and union indexes must lie within the writer schema's symbols and branches
  (fastavro uses them as Python list subscripts, so -1 would read as the last symbol or
  branch: corrupt bytes would become a valid record of another type);
- values must lie within the ranges the schemas document (``DOCUMENTED_RANGES``), on
  decode and on encode alike: the codec never writes what it would refuse to read.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import fastavro
from fastavro.schema import fingerprint, load_schema, parse_schema, to_parsing_canonical_form

from schemas import SCHEMA_DIR

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_LEN = len(CONFLUENT_MAGIC) + 4
# Registry ids are Java ints (Confluent's serializers write them with ByteBuffer.putInt and
# registries hand out positive ones): one above this would read back negative in Java.
MAX_SCHEMA_ID = 2**31 - 1
SINGLE_OBJECT, CONFLUENT = "single-object", "confluent"   # the wire formats, as the settings name them


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


def _user_event_ranges(record: Mapping[str, Any]) -> str | None:
    # reco.UserEvent.avsc, field "value": "Rating (0.5-5.0) for RATING"
    if record.get("event_type") == "RATING":
        value = record.get("value")
        if value is None or not 0.5 <= value <= 5.0:  # NaN fails the comparison too
            return f"RATING value {value} outside the documented range 0.5-5.0"
    return None


# Record name -> why a record breaks a range its schema documents (None when it does not).
# Only ranges written in the schemas belong here; the job's own bounds are in validation.py.
DOCUMENTED_RANGES: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "reco.UserEvent": _user_event_ranges,
}

_FIXED_SIZE = {"null": 0, "float": 4, "double": 8}
_BITS = {"int": 32, "long": 64}

# Items of one array or map, across its blocks. The largest legitimate collection of the
# project's schemas is an embedding of validation.MAX_EMBEDDING_DIMS (4096) floats; tags
# (MAX_TAGS = 100), a recommendation list (top_n, 20 by default) and a neighbor list
# (fragment_size, 200 by default) are far shorter. A deployment with top_n or fragment_size
# above this must pass a larger max_items to the codecs that read those lists.
MAX_ITEMS = 4096


def _varint(data: bytes, pos: int, bits: int = 64) -> tuple[int, int]:
    """The zigzag-encoded ``bits``-bit integer at ``pos``, and the position after it.

    As Java's BinaryDecoder.readLong / readInt: at most 10 bytes (5 for 32 bits), a zero
    top bit on the last. Bits beyond ``bits``, which Java silently drops, are refused.
    """
    size = (bits + 6) // 7
    n = shift = 0
    for i in range(pos, min(pos + size, len(data))):
        b = data[i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if n >> bits:
                raise AvroError(f"{bits}-bit number at byte {pos} overflows {bits} bits")
            return (n >> 1) ^ -(n & 1), i + 1
        shift += 7
    if pos + size <= len(data):
        raise AvroError(f"over-long {bits}-bit number at byte {pos}: more than {size} bytes")
    raise AvroError(f"truncated number at byte {pos}")


def _skip(data: bytes, pos: int, n: int) -> int:
    if pos + n > len(data):
        raise AvroError(f"truncated: {n} bytes needed at byte {pos}, {len(data) - pos} left")
    return pos + n


def _check_indexes(data: bytes, pos: int, schema: Any, named: Mapping[str, Any],
                   max_items: int = MAX_ITEMS) -> int:
    """Walk ``data`` from ``pos`` as the (parsed) writer ``schema`` and return where the
    datum ends; raise AvroError for bytes that Java would refuse or read otherwise, an enum
    or union index outside its schema, or an array or map of more than ``max_items`` items.

    This is the Avro binary format's skip: sizes only, no values built.
    """
    if isinstance(schema, list):  # union: the branch index (Java: readIndex, an int), then the value
        i, pos = _varint(data, pos, 32)
        if not 0 <= i < len(schema):
            raise AvroError(f"union index {i} outside 0..{len(schema) - 1}")
        return _check_indexes(data, pos, schema[i], named, max_items)
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind in ("record", "error"):
            for field in schema["fields"]:
                pos = _check_indexes(data, pos, field["type"], named, max_items)
            return pos
        if kind == "enum":  # Java: readEnum, an int
            i, pos = _varint(data, pos, 32)
            if not 0 <= i < len(schema["symbols"]):
                raise AvroError(f"enum {schema['name']} index {i} outside 0..{len(schema['symbols']) - 1}")
            return pos
        if kind == "fixed":
            return _skip(data, pos, schema["size"])
        if kind in ("array", "map"):
            items = schema["items"] if kind == "array" else schema["values"]
            total = 0
            while True:
                at = pos
                count, pos = _varint(data, pos)
                if count == 0:
                    return pos
                size = None
                if count < 0:  # a block that also gives its size in bytes
                    count = -count
                    size, pos = _varint(data, pos)
                    if size < 0:
                        raise AvroError(f"{kind} block of negative size {size} at byte {at}")
                total += count  # before any item is walked: a huge count costs nothing
                if total > max_items:
                    raise AvroError(f"{kind} of {total} items or more at byte {at}, more than {max_items}")
                # Bounds the loop; every item of the project's schemas takes a byte or more.
                if count > len(data) - pos:
                    raise AvroError(f"{kind} block of {count} items in {len(data) - pos} bytes")
                start = pos
                for _ in range(count):
                    if kind == "map":
                        pos = _check_indexes(data, pos, "string", named, max_items)
                    pos = _check_indexes(data, pos, items, named, max_items)
                if size is not None and pos - start != size:
                    raise AvroError(f"{kind} block at byte {at} says {size} bytes, its items take {pos - start}")
        schema = kind  # {"type": "long"} and the like
    if schema in _FIXED_SIZE:
        return _skip(data, pos, _FIXED_SIZE[schema])
    if schema == "boolean":  # one byte, 0 or 1 (Java: readBoolean, true only for 1)
        if pos < len(data) and data[pos] > 1:
            raise AvroError(f"boolean byte {data[pos]} at byte {pos}, not 0 or 1")
        return _skip(data, pos, 1)
    if schema in _BITS:
        return _varint(data, pos, _BITS[schema])[1]
    if schema in ("bytes", "string"):
        n, pos = _varint(data, pos)
        if n < 0:
            raise AvroError(f"negative length {n} at byte {pos}")
        return _skip(data, pos, n)
    return _check_indexes(data, pos, named[schema], named, max_items)  # a named type defined earlier


def confluent_header(schema_id: int) -> bytes:
    """The 5 bytes before a Confluent-framed body: 0x00, then the id as a big-endian Java int."""
    if isinstance(schema_id, bool) or not isinstance(schema_id, int) or not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise AvroError(f"schema id must be an int within [0, {MAX_SCHEMA_ID}], got {schema_id!r}")
    return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")


def confluent_frame(schema_id: int, body: bytes) -> bytes:
    """An Avro body (``AvroCodec.encode_body``) in the Confluent wire format."""
    return confluent_header(schema_id) + body


def confluent_unframe(data: bytes) -> tuple[int, bytes]:
    """(schema id, Avro body) of a Confluent-framed value; AvroError for anything else."""
    data = _as_bytes(data)
    if len(data) < CONFLUENT_HEADER_LEN:
        raise AvroError(f"too short for a Confluent header: {len(data)} bytes")
    if data[:1] != CONFLUENT_MAGIC:
        raise AvroError(f"not Confluent-framed: magic byte {data[:1].hex()} != 00")
    return int.from_bytes(data[1:CONFLUENT_HEADER_LEN], "big"), data[CONFLUENT_HEADER_LEN:]


def wire_format(data: bytes) -> str | None:
    """Which framing ``data`` carries by its first bytes: SINGLE_OBJECT, CONFLUENT or None
    (neither). Only the header is looked at; the body may still not decode."""
    if data[:2] == MAGIC and len(data) >= HEADER_LEN:
        return SINGLE_OBJECT
    if data[:1] == CONFLUENT_MAGIC and len(data) >= CONFLUENT_HEADER_LEN:
        return CONFLUENT
    return None


def _as_bytes(data: Any) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AvroError(f"expected bytes, got {type(data).__name__}")
    return bytes(data)


class SchemaRegistry:
    """Current schema per record name, and every known writer schema by fingerprint."""

    def __init__(self, current: Iterable[Any], history: Iterable[Any] = ()):
        self._current: dict[str, Any] = {}
        self._declared: dict[str, Any] = {}   # as written, logical types kept (for a Schema Registry)
        self._by_fingerprint: dict[bytes, Any] = {}
        for declared in current:
            schema = _without_logical_types(declared)
            name = schema["name"]
            if name in self._current:
                raise AvroError(f"two current schemas for record {name}")
            self._current[name] = schema
            self._declared[name] = declared
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

    def text(self, name: str) -> str:
        """The current schema of record ``name`` as one JSON text, named types inlined: what
        the job registers in a Schema Registry. Docs, defaults and logical types stay in
        (Parsing Canonical Form would drop them: a registry's BACKWARD check needs the
        defaults, and Connect and ksqlDB read timestamp-millis as timestamps); the same
        files give the same text, so a restart registers nothing new."""
        self.current(name)   # AvroError for an unknown name
        return json.dumps(self._declared[name], separators=(",", ":"), ensure_ascii=False)

    def names(self) -> list[str]:
        return sorted(self._current)


@lru_cache(maxsize=1)
def bundled_registry() -> SchemaRegistry:
    return SchemaRegistry.from_directory()


class AvroCodec:
    """Encode and decode one record type; parse schemas once, then reuse them.

    ``name`` is the full record name, e.g. ``"reco.UserEvent"``; ``decode`` refuses an
    array or map of more than ``max_items`` items (see ``MAX_ITEMS``).
    """

    def __init__(self, name: str, registry: SchemaRegistry | None = None, max_items: int = MAX_ITEMS):
        self.registry = registry or bundled_registry()
        self.name = name
        self.max_items = max_items
        self.schema = self.registry.current(name)
        self.header = MAGIC + schema_fingerprint(self.schema)
        self._ranges = DOCUMENTED_RANGES.get(name)
        self._parsed_writers: dict[Any, tuple[Any, dict[str, Any]]] = {}  # for _check_indexes
        self._foreign: dict[tuple[str, str], Any] = {}   # writer schemas given by callers, by text

    def _parsed_writer(self, key: Any, writer: Any) -> tuple[Any, dict[str, Any]]:
        """The writer schema with full names, and its named types by full name (``key``: its
        fingerprint, or its text for one from a Schema Registry)."""
        if key not in self._parsed_writers:
            named: dict[str, Any] = {}
            self._parsed_writers[key] = (parse_schema(writer, named_schemas=named, _write_hint=False), named)
        return self._parsed_writers[key]

    def _encode(self, record: Mapping[str, Any], header: bytes) -> bytes:
        buf = io.BytesIO()
        buf.write(header)
        try:
            # strict: a missing or unknown field is an error, not a silent null.
            fastavro.schemaless_writer(buf, self.schema, record, strict_allow_default=True)
        except Exception as exc:  # fastavro raises many types; callers see one
            raise AvroError(f"cannot encode {self.name}: {exc}") from exc
        if self._ranges and (reason := self._ranges(record)):
            raise AvroError(f"cannot encode {self.name}: {reason}")
        return buf.getvalue()

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Single-object encoding: header, then the body."""
        return self._encode(record, self.header)

    def encode_body(self, record: Mapping[str, Any]) -> bytes:
        """The Avro body alone, with the same checks as ``encode`` (for ``confluent_frame``)."""
        return self._encode(record, b"")

    def decode(self, data: bytes) -> dict[str, Any]:
        """A single-object encoded record, its writer schema found by fingerprint."""
        data = _as_bytes(data)
        if len(data) < HEADER_LEN:
            raise AvroError(f"too short for a single-object header: {len(data)} bytes")
        if data[:2] != MAGIC:
            raise AvroError(f"not Avro single-object encoded: magic {data[:2].hex()} != c301")
        fp = data[2:HEADER_LEN]
        writer = self.registry.writer(fp)
        if writer is None:
            raise AvroError(f"unknown writer schema fingerprint {fp.hex()}")
        return self._decode_at(data, HEADER_LEN, fp, writer)

    def decode_body(self, body: bytes, writer_schema: str | Mapping[str, Any]) -> dict[str, Any]:
        """A bare Avro body written with ``writer_schema`` (JSON text or a parsed schema, e.g.
        a Schema Registry's), resolved against the current schema with every check of
        ``decode``; byte positions in errors count from the start of ``body``."""
        return self._decode_at(_as_bytes(body), 0, *self._foreign_writer(writer_schema))

    def decode_confluent(self, data: bytes, writer_schema: str | Mapping[str, Any]) -> dict[str, Any]:
        """A Confluent-framed record whose id (``confluent_unframe``) gave ``writer_schema``;
        byte positions in errors count from the start of ``data``, as in ``decode``."""
        data = _as_bytes(data)
        confluent_unframe(data)   # the header's checks
        return self._decode_at(data, CONFLUENT_HEADER_LEN, *self._foreign_writer(writer_schema))

    def _foreign_writer(self, writer_schema: str | Mapping[str, Any]) -> tuple[str, Any]:
        """(cache key, writer schema without logical types) for a schema given by the caller."""
        try:
            text = writer_schema if isinstance(writer_schema, str) else json.dumps(writer_schema, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise AvroError(f"cannot decode {self.name}: the writer schema is not JSON: {exc}") from None
        key = ("text", text)
        if key not in self._parsed_writers:
            try:
                writer = _without_logical_types(json.loads(text))
                self._parsed_writer(key, writer)
            except Exception as exc:   # json or fastavro: a schema that is no Avro schema
                raise AvroError(f"cannot decode {self.name}: the writer schema is not a valid Avro schema: "
                                f"{type(exc).__name__}: {exc}") from None
            self._foreign[key] = writer
        return key, self._foreign[key]

    def _decode_at(self, data: bytes, start: int, key: Any, writer: Any) -> dict[str, Any]:
        """The body of ``data`` from ``start`` written with ``writer``: Java-exact checks
        first (nothing built), then fastavro, then the documented ranges."""
        try:
            _check_indexes(data, start, *self._parsed_writer(key, writer), self.max_items)
        except AvroError as exc:
            raise AvroError(f"cannot decode {self.name}: {exc}") from None
        except RecursionError:
            raise AvroError(f"cannot decode {self.name}: nested too deeply") from None
        body = io.BytesIO(data)
        body.seek(start)
        try:
            record = fastavro.schemaless_reader(body, writer, self.schema)
        except Exception as exc:
            raise AvroError(f"cannot decode {self.name}: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data):
            raise AvroError(f"cannot decode {self.name}: {len(data) - body.tell()} trailing bytes")
        if not isinstance(record, dict):
            raise AvroError(f"cannot decode {self.name}: writer is not a record schema")
        if self._ranges and (reason := self._ranges(record)):
            raise AvroError(f"cannot decode {self.name}: {reason}")
        return record
