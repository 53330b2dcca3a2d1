import copy
import json
import random
import struct

import pytest

from flink_jobs.codec import (MAX_ITEMS, SCHEMA_DIR, AvroCodec, AvroError, SchemaRegistry, bundled_registry,
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
    # No topic: the trending document in Redis (flink_jobs.documents), described in Avro all the same.
    "reco.Trending": {"event_time": 1_700_000_000_000, "items": [{"item_id": 7, "count": 3.0}]},
    "reco.TrendingItem": {"item_id": 7, "count": 3.0},
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


@pytest.mark.parametrize("index", [-1, -2, -5, 5, 6, -(2**31), 2**31 - 1])
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


# Numbers, booleans and block counts as Java's org.apache.avro.io.BinaryDecoder reads them
# (readLong: 10 bytes at most, the 10th carrying bit 63 only; readInt, readEnum, readIndex:
# 5 bytes at most, 32 bits; readBoolean: true for 1 only; doReadItemCount: a negative count
# is followed by a non-negative byte size). What Java refuses, or reads otherwise, is refused.

def varint(n: int) -> bytes:
    """``n`` (already zigzagged, unsigned) as a varint, any width: no range checks."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def header_of(name: str) -> bytes:
    schema = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    return b"\xc3\x01" + crc64_avro(to_parsing_canonical_form(schema).encode()).to_bytes(8, "little")


def user_event_with_user_id(raw: bytes) -> bytes:
    """A VIEW whose user_id (a long) is the bytes ``raw``."""
    return (header_of("reco.UserEvent") + zigzag(3) + b"e-1" + raw + zigzag(7) + zigzag(0) + zigzag(0)
            + zigzag(1_700_000_000_123))


def item_bytes(tags: bytes = zigzag(0), deleted: bytes = b"\x00", embedding: bytes = zigzag(0)) -> bytes:
    """reco.ItemFeatures with its tags array, embedding union (and array) and deleted byte given raw."""
    return (header_of("reco.ItemFeatures") + zigzag(7) + zigzag(4) + b"Heat" + tags + embedding
            + zigzag(3) + zigzag(3) + zigzag(1_700_000_000_000) + deleted)


def dead_letter_with_partition(raw: bytes) -> bytes:
    """reco.DeadLetter whose source_partition (an int) is the bytes ``raw``."""
    return (header_of("reco.DeadLetter") + zigzag(1) + b"x" + zigzag(1) + b"r" + zigzag(1) + b"t"
            + raw + zigzag(99) + zigzag(0))


def test_the_hand_written_helpers_decode():
    assert AvroCodec("reco.UserEvent").decode(user_event_with_user_id(zigzag(42)))["user_id"] == 42
    item = AvroCodec("reco.ItemFeatures").decode(item_bytes(zigzag(1) + zigzag(1) + b"a" + zigzag(0), b"\x01"))
    assert (item["tags"], item["deleted"], item["embedding"]) == (["a"], True, None)
    assert AvroCodec("reco.DeadLetter").decode(dead_letter_with_partition(zigzag(-1)))["source_partition"] == -1


@pytest.mark.parametrize("value", [0, -1, 1, 2**63 - 1, -(2**63), 2**62, -(2**62) - 1])
def test_the_largest_longs_round_trip(value):
    codec = AvroCodec("reco.UserEvent")
    assert len(zigzag(value)) <= 10
    assert codec.decode(user_event_with_user_id(zigzag(value)))["user_id"] == value
    record = {**SAMPLES["reco.UserEvent"], "user_id": value}
    assert codec.decode(codec.encode(record)) == record


@pytest.mark.parametrize("value", [0, -1, 2**31 - 1, -(2**31)])
def test_the_largest_ints_round_trip(value):
    codec = AvroCodec("reco.DeadLetter")   # source_partition is the schemas' one int field
    assert codec.decode(dead_letter_with_partition(zigzag(value)))["source_partition"] == value
    record = {**SAMPLES["reco.DeadLetter"], "source_partition": value}
    assert codec.decode(codec.encode(record)) == record


@pytest.mark.parametrize("raw", [
    b"\x80\x00",                               # 0 in two bytes
    b"\xfe" + b"\xff" * 8 + b"\x01",             # int64 max in ten bytes, the 10th carrying bit 63
    b"\x80" * 9 + b"\x00",                      # 0 in ten bytes
])
def test_non_minimal_encodings_java_reads_are_read(raw):
    # readLong accepts them; so does fastavro, with the same value
    value = sum((b & 0x7F) << 7 * i for i, b in enumerate(raw))
    value = (value >> 1) ^ -(value & 1)
    assert AvroCodec("reco.UserEvent").decode(user_event_with_user_id(raw))["user_id"] == value


@pytest.mark.parametrize("raw", [
    b"\xfe" + b"\xff" * 8 + b"\x03",             # 10th byte carries bit 64 (Java drops it)
    b"\xfe" + b"\xff" * 8 + b"\x7f",             # bits 64..69
    b"\x80" * 9 + b"\x02",                      # bit 64 alone: Java reads 0, Python 2^63
])
def test_a_long_wider_than_64_bits_is_refused(raw):
    with pytest.raises(AvroError, match="64-bit number at byte 14 overflows 64 bits"):
        AvroCodec("reco.UserEvent").decode(user_event_with_user_id(raw))


@pytest.mark.parametrize("raw", [b"\x80" * 10 + b"\x00", b"\xff" * 10 + b"\x01", b"\x81" * 12 + b"\x00"])
def test_a_long_of_more_than_ten_bytes_is_refused(raw):
    # Java: readLong, "Invalid long encoding"
    with pytest.raises(AvroError, match="over-long 64-bit number at byte 14: more than 10 bytes"):
        AvroCodec("reco.UserEvent").decode(user_event_with_user_id(raw))


@pytest.mark.parametrize("raw, message", [
    (zigzag(2**31), "32-bit number at byte 16 overflows 32 bits"),            # one past int max, 5 bytes
    (zigzag(-(2**31) - 1), "32-bit number at byte 16 overflows 32 bits"),
    (b"\xff" * 4 + b"\x7f", "32-bit number at byte 16 overflows 32 bits"),     # bits 32..34: Java drops them
    (b"\x80" * 5 + b"\x00", "over-long 32-bit number at byte 16: more than 5 bytes"),  # 0 in six bytes
    (zigzag(2**40), "over-long 32-bit number at byte 16: more than 5 bytes"),
])
def test_an_int_java_cannot_read_is_refused(raw, message):
    # Java: readInt reads 5 bytes at most ("Invalid int encoding") and keeps 32 bits
    with pytest.raises(AvroError, match=message):
        AvroCodec("reco.DeadLetter").decode(dead_letter_with_partition(raw))


def test_a_long_enough_for_an_int_still_has_to_fit_32_bits_as_an_enum_index():
    # readEnum and readIndex are readInt: the bytes of an in-range index padded to 6 are refused
    with pytest.raises(AvroError, match="over-long 32-bit number at byte 16"):
        AvroCodec("reco.UserEvent").decode(user_event_bytes(0)[:16] + b"\x80" * 5 + b"\x00"
                                           + user_event_bytes(0)[17:])
    with pytest.raises(AvroError, match="over-long 32-bit number at byte 16"):
        AvroCodec("reco.UserEvent").decode(user_event_bytes(2**62, 1, 4.0))


@pytest.mark.parametrize("byte", [2, 3, 0x7F, 0xFF])
def test_a_boolean_byte_other_than_0_or_1_is_refused(byte):
    # Java: readBoolean is true for 1 only (2 reads false); fastavro reads 2 as True
    data = item_bytes(deleted=bytes([byte]))
    with pytest.raises(AvroError, match=f"boolean byte {byte} at byte {len(data) - 1}, not 0 or 1"):
        AvroCodec("reco.ItemFeatures").decode(data)


def test_a_negative_block_size_is_refused():
    # Java: doReadItemCount, "Block byte-size is negative"
    tags = zigzag(-1) + zigzag(-2) + zigzag(1) + b"a" + zigzag(0)
    with pytest.raises(AvroError, match="array block of negative size -2"):
        AvroCodec("reco.ItemFeatures").decode(item_bytes(tags))


@pytest.mark.parametrize("size", [0, 1, 3])
def test_a_block_size_its_items_do_not_fill_is_refused(size):
    # Java skips such a block by its size, fastavro by its items: they would read apart
    good = zigzag(-1) + zigzag(2) + zigzag(1) + b"a" + zigzag(0)
    assert AvroCodec("reco.ItemFeatures").decode(item_bytes(good))["tags"] == ["a"]
    with pytest.raises(AvroError, match=f"says {size} bytes, its items take 2"):
        AvroCodec("reco.ItemFeatures").decode(item_bytes(zigzag(-1) + zigzag(size) + zigzag(1) + b"a" + zigzag(0)))


def test_block_count_of_minus_2_to_the_63_is_refused():
    # Java: doReadItemCount, "Block count is invalid" (it cannot be negated)
    with pytest.raises(AvroError, match="more than"):
        AvroCodec("reco.ItemFeatures").decode(item_bytes(zigzag(-(2**63)) + zigzag(1) + zigzag(1) + b"a" + zigzag(0)))


def test_the_item_bound_fits_every_legitimate_record():
    from flink_jobs.config import JobConfig
    from flink_jobs.validation import MAX_EMBEDDING_DIMS, MAX_TAGS

    cfg = JobConfig()
    assert MAX_ITEMS >= max(MAX_TAGS, MAX_EMBEDDING_DIMS, cfg.top_n, cfg.fragment_size)
    codec = AvroCodec("reco.ItemFeatures")
    record = {**SAMPLES["reco.ItemFeatures"], "tags": [f"t{i}" for i in range(MAX_TAGS)],
              "embedding": [0.25] * MAX_EMBEDDING_DIMS}
    assert codec.decode(codec.encode(record)) == record


@pytest.fixture
def no_fastavro(monkeypatch):
    """fastavro.schemaless_reader replaced by a stub that records each call and fails."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("fastavro reached")
    monkeypatch.setattr("fastavro.schemaless_reader", refuse)
    return calls


@pytest.mark.parametrize("kind", ["one block", "blocks of one", "a sized block"])
def test_an_array_beyond_max_items_is_refused_before_fastavro(no_fastavro, kind):
    # 10^6 empty tags: refused at the count, never walked nor built
    n = 10**6
    tags = {"one block": zigzag(n) + b"\x00" * n + zigzag(0),
            "blocks of one": (zigzag(1) + b"\x00") * n + zigzag(0),
            "a sized block": zigzag(-n) + zigzag(n) + b"\x00" * n + zigzag(0)}[kind]
    codec = AvroCodec("reco.ItemFeatures")
    with pytest.raises(AvroError, match="fastavro reached"):  # the stub is the one decode calls
        codec.decode(item_bytes())
    no_fastavro.clear()
    with pytest.raises(AvroError, match=f"array of {MAX_ITEMS + 1 if kind == 'blocks of one' else n} items or "
                                         f"more at byte \\d+, more than {MAX_ITEMS}"):
        codec.decode(item_bytes(tags))
    assert no_fastavro == []


def test_max_items_counts_across_blocks_and_is_a_parameter(no_fastavro):
    tags = zigzag(2) + zigzag(0) * 2 + zigzag(-2) + zigzag(2) + zigzag(0) * 2 + zigzag(0)  # 4 tags, 2 blocks
    with pytest.raises(AvroError, match="array of 4 items or more at byte 19, more than 3"):
        AvroCodec("reco.ItemFeatures", max_items=3).decode(item_bytes(tags))
    embedding = zigzag(1) + zigzag(4) + struct.pack("<4f", 1, 2, 3, 4) + zigzag(0)
    with pytest.raises(AvroError, match="array of 4 items or more at byte 18, more than 3"):
        AvroCodec("reco.ItemFeatures", max_items=3).decode(item_bytes(embedding=embedding))
    assert no_fastavro == []


def test_max_items_admits_exactly_max_items():
    tags = zigzag(2) + zigzag(0) * 2 + zigzag(-2) + zigzag(2) + zigzag(0) * 2 + zigzag(0)
    assert AvroCodec("reco.ItemFeatures", max_items=4).decode(item_bytes(tags))["tags"] == [""] * 4
