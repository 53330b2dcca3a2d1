"""The Confluent wire format in the codec (flink_jobs/codec.py), the Publish operator and
reco-consume: 0x00, the schema id as 4 bytes big-endian, the Avro body; decoded with the
codec's Java-exact checks, and by confluent-kafka's own AvroDeserializer."""

import json
import struct
from types import SimpleNamespace

import pytest
from fastavro.schema import load_schema

from flink_jobs import contracts
from flink_jobs.codec import (SCHEMA_DIR, AvroCodec, AvroError, bundled_registry, confluent_frame, confluent_header,
                              confluent_unframe, wire_format)
from flink_jobs.config import JobConfig
from test_codec import zigzag  # the spec's varint, written without the codec

RECORDS = {
    "reco.Recommendations": {"user_id": 42, "items": [
        {"item_id": 9, "score": 0.75, "reason": "because you liked Heat (1995)"},
        {"item_id": 3, "score": 0.0, "reason": "trending now"}],
        "version": 3, "generated_at": 1_700_000_001_000, "event_time": 1_700_000_000_123, "model_version": 5},
    "reco.ItemNeighbors": {"item_id": 7, "neighbors": [{"item_id": 9, "score": 0.5, "co_count": 3.0}],
                           "item_count": 12.0, "event_time": 1_700_000_000_000},
    "reco.DeadLetter": {"payload": b"\x00\xffjunk", "reason": "bad magic", "source_topic": "t",
                        "source_partition": 2, "source_offset": 99, "source_timestamp": 1_700_000_000_000},
}


@pytest.mark.parametrize("name", sorted(RECORDS))
@pytest.mark.parametrize("schema_id", [1, 258, 2**24 + 3, 2**31 - 1])
def test_framing_round_trip(name, schema_id):
    codec, record = AvroCodec(name), RECORDS[name]
    body = codec.encode_body(record)
    assert body == codec.encode(record)[10:]   # the same body as single-object encoding
    data = confluent_frame(schema_id, body)
    assert data[:1] == b"\x00" and data[1:5] == struct.pack(">I", schema_id) and data[5:] == body
    assert confluent_unframe(data) == (schema_id, body)
    assert wire_format(data) == "confluent" and wire_format(codec.encode(record)) == "single-object"
    text = bundled_registry().text(name)
    assert codec.decode_confluent(data, text) == record
    assert codec.decode_body(body, text) == record
    assert codec.decode_body(body, json.loads(text)) == record   # a parsed schema does too


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_confluent_kafkas_deserializer_reads_the_frames(name):
    """An independent reader: confluent-kafka's in-memory registry and AvroDeserializer."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    registry.register_schema("other-value", Schema('{"type": "string"}', "AVRO"))   # ids 1 and 2 differ
    schema_id = registry.register_schema("topic-value", Schema(bundled_registry().text(name), "AVRO"))
    assert schema_id == 2
    codec = AvroCodec(name)
    decoded = AvroDeserializer(registry)(confluent_frame(schema_id, codec.encode_body(RECORDS[name])),
                                         SerializationContext("topic", MessageField.VALUE))
    # timestamp-millis reaches the consumer as a timestamp: the registered schema keeps logical types
    as_millis = {k: int(v.timestamp() * 1000) if hasattr(v, "timestamp") else v for k, v in decoded.items()}
    assert as_millis == RECORDS[name]


@pytest.mark.parametrize("schema_id", [-1, 2**31, 2**32, True, 1.0, "1"])
def test_ids_outside_a_java_int_are_refused(schema_id):
    with pytest.raises(AvroError, match="schema id must be an int within"):
        confluent_header(schema_id)


@pytest.mark.parametrize("data, message", [
    (b"", "too short for a Confluent header: 0 bytes"),
    (b"\x00\x00\x00\x01", "too short for a Confluent header: 4 bytes"),
    (b"\xc3\x01" + b"\x00" * 12, "not Confluent-framed: magic byte c3 != 00"),
])
def test_bad_frames_raise_avro_error(data, message):
    with pytest.raises(AvroError, match=message):
        confluent_unframe(data)
    with pytest.raises(AvroError):
        AvroCodec("reco.Recommendations").decode_confluent(data, bundled_registry().text("reco.Recommendations"))


def test_neither_format_is_told_apart():
    assert wire_format(b"{}") is None and wire_format(b"\x00\x01") is None and wire_format(b"\xc3\x01") is None


# The codec's Java-exact checks hold for Confluent frames too (tests/unit/test_codec.py has the
# single-object side); byte positions count from the start of the record, as there.

def _item_features(deleted: bytes) -> bytes:
    name = "reco.ItemFeatures"
    body = (zigzag(7) + zigzag(4) + b"Heat" + zigzag(0) + zigzag(0)   # item_id, title, tags [], embedding null
            + zigzag(3) + zigzag(3) + zigzag(1_700_000_000_000) + deleted)
    return confluent_frame(3, body), bundled_registry().text(name)


def test_a_boolean_byte_other_than_0_or_1_is_refused_in_a_frame():
    data, text = _item_features(b"\x01")
    assert AvroCodec("reco.ItemFeatures").decode_confluent(data, text)["deleted"] is True
    data, text = _item_features(b"\x02")
    with pytest.raises(AvroError, match=f"boolean byte 2 at byte {len(data) - 1}, not 0 or 1"):
        AvroCodec("reco.ItemFeatures").decode_confluent(data, text)


def test_a_long_wider_than_64_bits_and_trailing_bytes_are_refused_in_a_frame():
    text = bundled_registry().text("reco.Recommendations")
    codec = AvroCodec("reco.Recommendations")
    with pytest.raises(AvroError, match="64-bit number at byte 5 overflows 64 bits"):
        codec.decode_confluent(confluent_frame(1, b"\x80" * 9 + b"\x02"), text)
    good = confluent_frame(1, codec.encode_body(RECORDS["reco.Recommendations"]))
    with pytest.raises(AvroError, match="1 trailing bytes"):
        codec.decode_confluent(good + b"\x00", text)
    for cut in range(5, len(good)):
        with pytest.raises(AvroError):
            codec.decode_confluent(good[:cut], text)


def test_an_enum_index_outside_the_symbols_is_refused_in_a_frame():
    text = bundled_registry().text("reco.UserEvent")
    body = zigzag(3) + b"e-1" + zigzag(42) + zigzag(7) + zigzag(-1) + zigzag(0) + zigzag(1_700_000_000_123)
    with pytest.raises(AvroError, match="enum reco.EventType index -1 outside 0..4"):
        AvroCodec("reco.UserEvent").decode_body(body, text)


def test_an_array_beyond_max_items_is_refused_before_fastavro(monkeypatch):
    monkeypatch.setattr("fastavro.schemaless_reader", lambda *a, **k: pytest.fail("fastavro reached"))
    body = zigzag(42) + zigzag(10**6) + b"\x00" * 10
    with pytest.raises(AvroError, match="array of 1000000 items or more at byte 6, more than 4096"):
        AvroCodec("reco.Recommendations").decode_confluent(confluent_frame(1, body),
                                                           bundled_registry().text("reco.Recommendations"))


def test_an_older_writer_schema_from_the_registry_resolves_to_the_current_one():
    old = load_schema(str(SCHEMA_DIR / "history" / "reco.Recommendations.1.avsc"), _write_hint=False)
    record = {k: v for k, v in RECORDS["reco.Recommendations"].items() if k != "model_version"}
    from flink_jobs.codec import SchemaRegistry
    body = AvroCodec("reco.Recommendations", SchemaRegistry([old])).encode_body(record)
    assert AvroCodec("reco.Recommendations").decode_body(body, json.dumps(old)) == {**record, "model_version": 0}


@pytest.mark.parametrize("writer, message", [
    ("not json", "the writer schema is not a valid Avro schema"),
    ('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}', "not a valid Avro schema"),
    ('"string"', "writer is not a record schema|SchemaResolutionError"),
    ('{"type": "record", "name": "reco.Other", "fields": []}', "SchemaResolutionError"),
])
def test_a_writer_schema_that_does_not_fit_is_an_avro_error(writer, message):
    body = AvroCodec("reco.Recommendations").encode_body(RECORDS["reco.Recommendations"])
    with pytest.raises(AvroError, match=message):
        AvroCodec("reco.Recommendations").decode_body(body, writer)


def test_the_registered_text_is_the_declared_schema_with_named_types_inlined():
    text = bundled_registry().text("reco.ItemNeighbors")
    assert text == bundled_registry().text("reco.ItemNeighbors")   # the same on every start
    schema = json.loads(text)
    assert schema["fields"][1]["type"]["items"]["name"] == "reco.Neighbor"
    assert schema["fields"][3]["type"] == {"logicalType": "timestamp-millis", "type": "long"}
    assert schema["doc"].startswith("An item's most similar items")
    with pytest.raises(AvroError, match="unknown record"):
        bundled_registry().text("reco.Nothing")


# -- the Publish operator ----------------------------------------------------------------------------

@pytest.mark.parametrize("output_name", ["RECOMMENDATIONS", "ITEM_NEIGHBORS", "DEAD_LETTERS"])
def test_publish_frames_with_the_outputs_schema_id_and_keeps_the_decimal_key(output_name):
    import dataclasses

    from flink_jobs import publish

    output = dataclasses.replace(getattr(publish, output_name), document=None)   # Kafka only, no Redis
    name = contracts.TOPIC_RECORDS[output.topic]
    record = RECORDS[name]
    single = publish.Publish(JobConfig(), output)
    framed = publish.Publish(JobConfig(), dataclasses.replace(output, schema_id=300))
    for op in (single, framed):
        op.open(None)
    [plain] = single.process_element(record, None)
    [row] = framed.process_element(record, None)
    codec = AvroCodec(name)
    assert plain.v == codec.encode(record)
    assert row.v == b"\x00\x00\x00\x01\x2c" + codec.encode_body(record)   # 300 = 0x012c, big-endian
    if output.key_field:
        assert row.k == plain.k == str(record[output.key_field]).encode("ascii")
    else:
        assert len(row) == 1


# -- reco-consume -------------------------------------------------------------------------------------

@pytest.fixture
def consume_tool(monkeypatch):
    """reco-consume over records given here instead of Kafka."""
    from reco_tools import consume as tool

    records = []
    monkeypatch.setattr(tool, "make_consumer", lambda *a, **k: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(tool, "consume", lambda consumer, idle, max_records: iter(records))
    monkeypatch.delenv("RECO_SCHEMA_REGISTRY_URL", raising=False)
    return tool, records


def _record(offset, value, user=42):
    return SimpleNamespace(partition=0, offset=offset, key=contracts.record_key(user), value=value)


def test_consume_decodes_both_formats_with_a_registry(consume_tool, capsys):
    from tests.schema_registry_http import ScriptedRegistry

    tool, records = consume_tool
    codec, record = AvroCodec("reco.Recommendations"), RECORDS["reco.Recommendations"]
    records += [_record(0, confluent_frame(7, codec.encode_body(record))), _record(1, codec.encode(record)),
                _record(2, b"plain text"), _record(3, None)]
    script = {("GET", "/schemas/ids/7"): (200, {"schema": bundled_registry().text("reco.Recommendations")})}
    with ScriptedRegistry(script) as registry:
        assert tool.main(["--schema-registry", registry.url]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("0:0 user 42 v3 @1700000000123: ") and lines[1].startswith("0:1 user 42 v3 ")
    assert lines[2].startswith("0:2 <undecodable: ") and "magic 706c != c301" in lines[2]
    assert "0:1: Avro single-object encoding (0xC3 0x01, fingerprint, body), not the Confluent wire format" in err
    assert "0:2: neither single-object encoding (C3 01) nor the Confluent wire format (00)" in err
    assert lines[3] == "0:3 <undecodable: expected bytes, got NoneType>" and "0:3:" not in err   # a tombstone


def test_consume_says_what_it_found_without_a_registry(consume_tool, capsys):
    tool, records = consume_tool
    codec, record = AvroCodec("reco.Recommendations"), RECORDS["reco.Recommendations"]
    records += [_record(0, confluent_frame(7, codec.encode_body(record)))]
    assert tool.main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("0:0 <undecodable: Confluent wire format (schema id 7), not single-object encoding")
    assert "0:0: Confluent wire format (0x00, schema id, body), not single-object encoding: give --schema-registry" in err


def test_consume_refuses_a_registry_password_on_the_command_line(consume_tool, capsys, monkeypatch):
    tool, _ = consume_tool
    with pytest.raises(SystemExit):
        tool.main(["--schema-registry", "https://reco:S3cret-pw@registry:8081"])
    err = capsys.readouterr().err
    assert "RECO_SCHEMA_REGISTRY_URL" in err and "S3cret-pw" not in err
    monkeypatch.setenv("RECO_SCHEMA_REGISTRY_URL", "https://reco:S3cret-pw@registry:8081")
    assert tool.main([]) == 0   # from the environment it is taken
