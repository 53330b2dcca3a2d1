import copy
import json
import random
import struct

import pytest

from flink_jobs.codec import (SCHEMA_DIR, AvroCodec, AvroError, SchemaRegistry, bundled_registry,
                              schema_fingerprint)
from fastavro.schema import to_parsing_canonical_form

SAMPLES = {
    "reco.UserEvent": {"event_id": "e-1", "user_id": 42, "item_id": 7, "event_type": "PURCHASE",
                       "value": 19.99, "event_time": 1_700_000_000_123},
    "reco.ItemFeatures": {"item_id": 7, "title": "Heat (1995)", "tags": ["Action", "Crime"],
                          "embedding": [0.5, -1.25], "model_version": 5, "model_size": 3, "updated_at": 1_700_000_000_000,
                          "deleted": False},
    "reco.Recommendations": {"user_id": 42, "items": [
        {"item_id": 9, "score": 0.75, "reason": "because you watched Heat (1995)"},
        {"item_id": 3, "score": 0.5, "reason": "trending"}],
        "version": 3, "generated_at": 1_700_000_001_000, "event_time": 1_700_000_000_123, "model_version": 5},
    "reco.ItemNeighbors": {"item_id": 7, "neighbors": [{"item_id": 9, "score": 0.5, "co_count": 3.0}],
                           "item_count": 12.0, "event_time": 1_700_000_000_000},
    "reco.DeadLetter": {"payload": b"\x00\xffjunk", "reason": "bad magic", "source_topic": "t",
                        "source_partition": 2, "source_offset": 99, "source_timestamp": None},
    "reco.RecommendedItem": {"item_id": 1, "score": 1.0, "reason": "r"},
    "reco.Neighbor": {"item_id": 1, "score": 1.0, "co_count": 2.0},
}


def crc64_avro(data: bytes) -> int:
    """The reference Rabin fingerprint from the Avro specification, written out independently."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def test_every_bundled_schema_has_a_sample():
    assert set(bundled_registry().names()) == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip_is_exact(name):
    codec = AvroCodec(name)
    data = codec.encode(SAMPLES[name])
    assert data[:2] == b"\xc3\x01"
    assert codec.decode(data) == SAMPLES[name]
    # encoding is deterministic: same record, same bytes
    assert codec.encode(codec.decode(data)) == data


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_header_carries_spec_fingerprint_little_endian(name):
    codec = AvroCodec(name)
    canonical = to_parsing_canonical_form(codec.schema).encode()
    assert codec.encode(SAMPLES[name])[2:10] == crc64_avro(canonical).to_bytes(8, "little")


# Vectors from Avro's share/test/data/schema-tests.txt (signed 64-bit as published).
@pytest.mark.parametrize("schema,published", [
    ("null", 7195948357588979594),
    ("boolean", -6970731678124411036),
    ({"type": "fixed", "name": "foo", "size": 15}, 1756455273707447556),
])
def test_fingerprints_match_the_avro_test_vectors(schema, published):
    expected = (published % 2**64).to_bytes(8, "little")
    assert schema_fingerprint(schema) == expected
    assert crc64_avro(to_parsing_canonical_form(schema).encode()).to_bytes(8, "little") == expected


def test_nested_records_are_inlined_in_the_canonical_form():
    canonical = to_parsing_canonical_form(AvroCodec("reco.Recommendations").schema)
    assert '"name":"reco.RecommendedItem","type":"record"' in canonical


def _older_user_event_schema():
    """reco.UserEvent as a version 0 that had no 'value' field."""
    old = copy.deepcopy(bundled_registry().current("reco.UserEvent"))
    old["fields"] = [f for f in old["fields"] if f["name"] != "value"]
    return old


def test_reads_data_written_with_an_older_schema_version():
    current = bundled_registry()
    old_schema = _older_user_event_schema()
    registry = SchemaRegistry([current.current(n) for n in current.names()], history=[old_schema])
    old_writer = AvroCodec("reco.UserEvent", SchemaRegistry([old_schema]))
    old_record = {k: v for k, v in SAMPLES["reco.UserEvent"].items() if k != "value"}
    data = old_writer.encode(old_record)
    assert data[2:10] != AvroCodec("reco.UserEvent").header[2:10]
    decoded = AvroCodec("reco.UserEvent", registry).decode(data)
    assert decoded == {**old_record, "value": None}  # the added field takes its default
    # without the old version in history the fingerprint is unknown: a clear error
    with pytest.raises(AvroError, match="unknown writer schema fingerprint"):
        AvroCodec("reco.UserEvent").decode(data)


@pytest.mark.parametrize("data,message", [
    (b"", "too short"),
    (b"\xc3\x01\x00", "too short"),
    (b"\x00\x01" + b"\x00" * 20, "magic"),
    (b"\xc3\x01" + b"\xee" * 8 + b"\x00", "unknown writer schema"),
])
def test_malformed_headers_raise_avro_error(data, message):
    with pytest.raises(AvroError, match=message):
        AvroCodec("reco.UserEvent").decode(data)


def test_truncated_and_padded_bodies_raise_avro_error():
    codec = AvroCodec("reco.UserEvent")
    good = codec.encode(SAMPLES["reco.UserEvent"])
    for cut in range(10, len(good)):
        with pytest.raises(AvroError):
            codec.decode(good[:cut])
    with pytest.raises(AvroError, match="trailing"):
        codec.decode(good + b"\x00")


@pytest.mark.parametrize("bad", [
    {"user_id": 1},                                                        # missing fields
    {**SAMPLES["reco.UserEvent"], "event_type": "LIKE"},                   # not an enum symbol
    {**SAMPLES["reco.UserEvent"], "user_id": "42"},                        # wrong type
    {**SAMPLES["reco.UserEvent"], "surprise": 1},                          # unknown field
])
def test_encoding_an_invalid_record_raises_avro_error(bad):
    with pytest.raises(AvroError):
        AvroCodec("reco.UserEvent").encode(bad)


def test_random_bytes_never_crash_the_decoder():
    rng = random.Random(1234)
    codecs = [AvroCodec(n) for n in sorted(SAMPLES)]
    goods = [c.encode(SAMPLES[c.name]) for c in codecs]
    outcomes = {"decoded": 0, "rejected": 0}
    for i in range(6000):
        codec, good = codecs[i % len(codecs)], goods[i % len(codecs)]
        if i % 3 == 0:   # pure noise
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
        elif i % 3 == 1:  # valid header, random body
            data = codec.header + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
        else:            # a valid message with a few bytes flipped after the header
            buf = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(10, len(buf))] = rng.getrandbits(8)
            data = bytes(buf)
        try:
            assert isinstance(codec.decode(data), dict)
            outcomes["decoded"] += 1
        except AvroError:
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 2000  # the noise, at least, must be refused


# Hostile bodies, written byte by byte from the Avro specification (zigzag varints, a
# string as its length then UTF-8, an enum or union as its index, a double as 8 bytes
# little-endian) so that no encoder under test is involved.
USER_EVENT_SCHEMA = json.loads((SCHEMA_DIR / "reco.UserEvent.avsc").read_text())
SYMBOLS = next(f["type"]["symbols"] for f in USER_EVENT_SCHEMA["fields"] if f["name"] == "event_type")


def zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def user_event_bytes(enum_index: int, union_index: int = 0, value: float | None = None,
                     event_time: int = 1_700_000_000_123) -> bytes:
    header = b"\xc3\x01" + crc64_avro(to_parsing_canonical_form(USER_EVENT_SCHEMA).encode()).to_bytes(8, "little")
    body = zigzag(3) + b"e-1" + zigzag(42) + zigzag(7) + zigzag(enum_index) + zigzag(union_index)
    if value is not None:
        body += struct.pack("<d", value)
    return header + body + zigzag(event_time)


def test_hand_written_bytes_decode_as_the_schema_says():
    # the helper itself, on indexes in range: symbols in schema order, union ["null", "double"]
    codec = AvroCodec("reco.UserEvent")
    assert SYMBOLS == ["VIEW", "CLICK", "ADD_TO_CART", "PURCHASE", "RATING"]
    for i, symbol in enumerate(SYMBOLS):
        rec = codec.decode(user_event_bytes(i, 1, 4.5))
        assert rec == {"event_id": "e-1", "user_id": 42, "item_id": 7, "event_type": symbol,
                       "value": 4.5, "event_time": 1_700_000_000_123}
    assert codec.decode(user_event_bytes(0))["value"] is None


@pytest.mark.parametrize("index", [-1, -2, -5, 5, 6, -(2**62), 2**62])
def test_enum_index_outside_the_symbols_is_refused(index):
    # fastavro alone reads -1 as the last symbol: a VIEW's corrupt byte became a RATING
    with pytest.raises(AvroError, match=f"enum reco.EventType index {index} outside 0..4"):
        AvroCodec("reco.UserEvent").decode(user_event_bytes(index, 1, 4.0))


@pytest.mark.parametrize("index", [-1, -2, 2, 3])
def test_union_index_outside_the_branches_is_refused(index):
    # fastavro alone reads -1 as the last branch: the bytes after it became a double
    with pytest.raises(AvroError, match=f"union index {index} outside 0..1"):
        AvroCodec("reco.UserEvent").decode(user_event_bytes(0, index, 2.0))


def test_negative_union_index_inside_another_record_is_refused():
    # ItemFeatures.embedding is ["null", array<float>]: -1 would pick the array
    schema = json.loads((SCHEMA_DIR / "reco.ItemFeatures.avsc").read_text())
    header = b"\xc3\x01" + crc64_avro(to_parsing_canonical_form(schema).encode()).to_bytes(8, "little")

    def item(embedding_index: int) -> bytes:
        return (header + zigzag(7) + zigzag(4) + b"Heat" + zigzag(0)  # item_id, title, tags: []
                + zigzag(embedding_index) + zigzag(1) + struct.pack("<f", 0.5) + zigzag(0)  # [0.5]
                + zigzag(3) + zigzag(3)                                        # model_version, _size
                + zigzag(1_700_000_000_000) + b"\x00")               # updated_at, deleted
    codec = AvroCodec("reco.ItemFeatures")
    assert codec.decode(item(1))["embedding"] == [0.5]
    with pytest.raises(AvroError, match="union index -1 outside 0..1"):
        codec.decode(item(-1))


@pytest.mark.parametrize("value", [0.0, 0.49, 5.01, -1.0, float("nan"), float("inf")])
def test_rating_outside_the_documented_range_is_refused(value):
    # reco.UserEvent.avsc: "Rating (0.5-5.0) for RATING"
    with pytest.raises(AvroError, match="outside the documented range 0.5-5.0"):
        AvroCodec("reco.UserEvent").decode(user_event_bytes(SYMBOLS.index("RATING"), 1, value))


def test_rating_without_a_value_is_refused():
    with pytest.raises(AvroError, match="RATING value None"):
        AvroCodec("reco.UserEvent").decode(user_event_bytes(SYMBOLS.index("RATING"), 0))


@pytest.mark.parametrize("value", [0.5, 5.0, 3.5])
def test_rating_edges_of_the_documented_range_are_accepted(value):
    assert AvroCodec("reco.UserEvent").decode(user_event_bytes(SYMBOLS.index("RATING"), 1, value))["value"] == value


def test_the_codec_never_writes_what_it_refuses_to_read():
    codec = AvroCodec("reco.UserEvent")
    with pytest.raises(AvroError, match="0.5-5.0"):
        codec.encode({**SAMPLES["reco.UserEvent"], "event_type": "RATING", "value": 0.0})
    with pytest.raises(AvroError, match="0.5-5.0"):
        codec.encode({**SAMPLES["reco.UserEvent"], "event_type": "RATING", "value": None})


def test_the_range_applies_to_ratings_only():
    # "quantity or price elsewhere": the schema documents no range for them (the job's
    # own bounds are flink_jobs/validation.py's)
    view = AvroCodec("reco.UserEvent").decode(user_event_bytes(SYMBOLS.index("VIEW"), 1, -1e308))
    assert view["value"] == -1e308


@pytest.mark.parametrize("name, version, added", [
    ("reco.ItemFeatures", 1, {"model_version": 0, "model_size": 0}),
    ("reco.ItemFeatures", 2, {"model_size": 0}),
    ("reco.Recommendations", 1, {"model_version": 0}),
])
def test_messages_of_earlier_versions_still_decode(name, version, added):
    """schemas/history holds the versions before model_version and model_size: what
    producers and the job wrote with them still decodes, the added fields at their defaults."""
    from fastavro.schema import load_schema

    old_schema = load_schema(str(SCHEMA_DIR / "history" / f"{name}.{version}.avsc"), _write_hint=False)
    assert not set(added) & {f["name"] for f in old_schema["fields"]}
    old_record = {k: v for k, v in SAMPLES[name].items() if k not in added}
    data = AvroCodec(name, SchemaRegistry([old_schema])).encode(old_record)
    assert data[2:10] != AvroCodec(name).header[2:10]
    assert AvroCodec(name).decode(data) == {**old_record, **added}
