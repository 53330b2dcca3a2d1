"""reco_client without a Redis server: reading documents as the job writes them, refusing
what it would misread, bad arguments, an unreachable server, and what it imports.

Expected values are written from the README's document definitions (a user list is the
reco.Recommendations record; similar items carry the neighbors; trending counts), not read
back from the client."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flink_jobs import contracts, documents
from reco_client import (IncompatibleDocument, Neighbor, NotFound, RecoClient, RecommendedItem, Settings, Unavailable,
                         decode, model)

ROOT = Path(__file__).resolve().parents[2]
USER_REC = {"user_id": 42, "version": 7, "generated_at": 1_700_000_000_500, "event_time": 1_700_000_000_000,
            "model_version": 3, "items": [{"item_id": 10, "score": 0.9, "reason": "because you liked Heat (1995)"},
                                          {"item_id": 11, "score": 0.5, "reason": "matches your taste"}]}
NEIGHBORS = {"item_id": 5, "item_count": 12.5, "event_time": 1_700_000_060_000,
             "neighbors": [{"item_id": 6, "score": 0.7, "co_count": 4.0}, {"item_id": 9, "score": 0.2, "co_count": 1.0}]}


class _Top:
    t, top = 1_700_000_120_000, ((3, 40), (4, 12))


def _stored(build, rec):
    key, doc = build(rec)
    return key, json.dumps(doc)


def test_a_user_document_reads_as_typed_items_best_first():
    key, raw = _stored(documents.user_document, USER_REC)
    recs = model.recommendations(key, model.load(key, raw), None)
    assert (recs.user_id, recs.version, recs.model_version, recs.fallback) == (42, 7, 3, False)
    assert (recs.event_time_ms, recs.generated_at_ms) == (1_700_000_000_000, 1_700_000_000_500)
    assert recs.items == (RecommendedItem(10, 0.9, "because you liked Heat (1995)"),
                          RecommendedItem(11, 0.5, "matches your taste"))
    assert model.recommendations(key, model.load(key, raw), 1).items == recs.items[:1]


def test_similar_and_trending_documents_read_as_typed_results():
    key, raw = _stored(documents.similar_document, NEIGHBORS)
    similar = model.similar(key, model.load(key, raw), None)
    assert similar.neighbors == (Neighbor(6, 0.7, 4.0), Neighbor(9, 0.2, 1.0))
    assert (similar.item_id, similar.item_count, similar.version) == (5, 12.5, 1_700_000_060_000)
    key, raw = _stored(documents.trending_document, _Top())
    top = model.trending(key, model.load(key, raw), 1)
    assert [(t.item_id, t.count) for t in top.items] == [(3, 40.0)] and top.version == _Top.t


def test_the_trending_fallback_is_flagged_and_keeps_the_user_and_trending_version():
    key, raw = _stored(documents.trending_document, _Top())
    recs = model.trending_fallback(8, model.trending(key, model.load(key, raw), None))
    assert recs.fallback and recs.user_id == 8 and recs.version == _Top.t and recs.generated_at_ms is None
    assert [(i.item_id, i.score) for i in recs.items] == [(3, 40.0), (4, 12.0)]


def test_a_document_of_a_newer_format_is_refused_with_its_numbers():
    key, doc = documents.user_document(USER_REC)
    doc["format"] = documents.DOCUMENT_FORMAT + 1
    with pytest.raises(IncompatibleDocument, match=f"format {documents.DOCUMENT_FORMAT + 1} is newer"):
        model.load(key, json.dumps(doc))


def test_added_fields_are_read_past_and_a_document_without_format_is_format_one():
    key, doc = documents.user_document(USER_REC)
    doc.pop("format")
    doc["a_field_a_newer_job_added"] = [1, 2]
    assert model.recommendations(key, model.load(key, json.dumps(doc)), None).version == 7


@pytest.mark.parametrize("raw, message", [
    ("not json", "not a JSON document"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({**USER_REC, "items": "x"}), "'items' missing or not list"),
    (json.dumps({k: v for k, v in USER_REC.items() if k != "version"}), "'version' missing"),
    (json.dumps({**USER_REC, "user_id": "42"}), "'user_id' missing or not int"),
    (json.dumps({**USER_REC, "items": [{"item_id": 1, "score": "high", "reason": ""}]}), r"items\[0\].*'score'"),
    (json.dumps({**USER_REC, "format": "1"}), "'format' must be an integer"),
])
def test_a_document_the_client_would_misread_is_refused(raw, message):
    key = contracts.user_recommendations_key(42)
    with pytest.raises(IncompatibleDocument, match=message):
        model.recommendations(key, model.load(key, raw), None)


@pytest.mark.parametrize("bad", [-1, 2**63, "7", 1.0, True, None])
def test_ids_must_be_non_negative_longs(bad):
    client = RecoClient()   # no call reaches Redis: the argument is checked first
    with pytest.raises(ValueError, match="must be an integer between 0 and"):
        client.recommendations(bad)
    with pytest.raises(ValueError, match="item_id"):
        client.similar(bad)


@pytest.mark.parametrize("bad", [0, -3, "5", 2.5])
def test_n_must_be_positive(bad):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        RecoClient().trending(bad)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_redis_is_unavailable_and_the_password_stays_out_of_the_message():
    client = RecoClient(redis_url=f"redis://reader:s3cret@127.0.0.1:{_closed_port()}/0", redis_connect_timeout_ms=300)
    with pytest.raises(Unavailable) as caught:
        client.recommendations(1)
    assert "s3cret" not in str(caught.value) and "GET reco:v1:user:1" in str(caught.value)
    with pytest.raises(Unavailable):
        client.ping()


def test_settings_come_from_the_jobs_environment_variables(tmp_path):
    secret = tmp_path / "url"
    secret.write_text("rediss://u:p@cache:6380/1\n")
    s = Settings.from_env({"RECO_REDIS_URL_FILE": str(secret), "RECO_REDIS_TLS_CA_FILE": "/ca.pem",
                           "RECO_REDIS_READ_TIMEOUT_MS": "250"})
    assert (s.redis_url, s.redis_tls_ca_file, s.redis_read_timeout_ms) == ("rediss://u:p@cache:6380/1", "/ca.pem", 250)
    assert Settings.from_env({"RECO_REDIS_URL": "redis://a:1/0"}, redis_url="redis://b:2/0").redis_url == "redis://b:2/0"
    with pytest.raises(ValueError, match="redis_tls_verify"):
        Settings(redis_tls_verify="sometimes")
    with pytest.raises(ValueError, match="redis_url must start with"):
        Settings(redis_url="http://u:pw@x")


def test_not_found_names_the_key():
    err = NotFound("x", contracts.item_similar_key(3))
    assert isinstance(err, LookupError) and err.key == "reco:v1:item:3:similar"


def test_a_kafka_record_decodes_by_topic():
    from flink_jobs.codec import AvroCodec

    value = AvroCodec("reco.Recommendations").encode(USER_REC)
    assert decode(contracts.RECOMMENDATIONS_TOPIC, value) == USER_REC
    with pytest.raises(ValueError, match="not one of the job's topics"):
        decode("reco.unknown", value)


def test_the_client_imports_neither_flink_nor_numpy_nor_kafka():
    code = ("import sys, reco_client, reco_client.records; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyflink', 'numpy', 'kafka', 'udfs', 'apache_beam'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_client_and_what_it_imports_run_on_the_oldest_python_the_package_allows():
    """vermin reads syntax and standard-library use; requires-python promises 3.9."""
    import tomllib

    floor = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"].removeprefix(">=")
    files = ["reco_client", "schemas/__init__.py", *(f"flink_jobs/{m}.py" for m in
             ("contracts", "codec", "documents", "redis_store", "sensitive"))]
    proc = subprocess.run([str(Path(sys.executable).with_name("vermin")), "--no-tips", "--violations", "--eval-annotations",
                           f"-t={floor}-", *files], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_confluent_framed_record_decodes_with_its_writer_schema_and_says_what_it_needs_without():
    from flink_jobs.codec import AvroCodec, bundled_registry

    codec = AvroCodec("reco.Recommendations")
    # Written from the framing's definition (byte 0, 4-byte big-endian id, the Avro body).
    framed = b"\x00" + (513).to_bytes(4, "big") + codec.encode_body(USER_REC)
    with pytest.raises(ValueError, match="schema id 513.*GET /schemas/ids/513"):
        decode(contracts.RECOMMENDATIONS_TOPIC, framed)
    assert decode(contracts.RECOMMENDATIONS_TOPIC, framed, bundled_registry().text("reco.Recommendations")) == USER_REC
