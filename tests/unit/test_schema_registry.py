"""Registration of the Confluent topics' schemas at job start (flink_jobs/schema_registry.py)
against scripted registries over HTTP: the calls made, the errors that stop the start
(409 incompatible, unreachable, credentials refused, TLS) and the password kept out of every
message and log line; then the job's own start exiting 2 on them (flink_jobs/main.py)."""

import base64
import contextlib
import json
import logging
import socket
import subprocess

import pytest

from flink_jobs.codec import AvroCodec, AvroError, bundled_registry, confluent_frame
from flink_jobs.config import JobConfig
from flink_jobs.schema_registry import FramedDecoder, RegistryClient, RegistryError, register_outputs
from tests.schema_registry_http import MockRegistry, ScriptedRegistry

RECS = "reco.recommendations.v1-value"
NEIGHBORS = "reco.item-neighbors.v1-value"
USER, SECRET = "reco", "p@ss/w:rd-S3cret"   # percent-encoded in the URL
USER_INFO = "reco:p%40ss%2Fw%3Ard-S3cret"


def _ok_script(ids=None):
    ids = ids or {RECS: 11, NEIGHBORS: 12}
    script = {}
    for subject, schema_id in ids.items():
        script[("PUT", f"/config/{subject}")] = (200, {"compatibility": "BACKWARD"})
        script[("POST", f"/subjects/{subject}/versions")] = (200, {"id": schema_id})
    return script


def _cfg(url, **settings):
    return JobConfig(recommendations_wire_format="confluent", schema_registry_url=url, **settings)


def _with_user(url: str) -> str:
    return url.replace("://", f"://{USER_INFO}@")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_is_asked_when_no_topic_is_confluent():
    assert register_outputs(JobConfig(schema_registry_url=f"http://127.0.0.1:{_free_port()}")) == {}


def test_each_confluent_topic_gets_backward_then_its_schema_and_its_id():
    with ScriptedRegistry(_ok_script()) as registry:
        ids = register_outputs(_cfg(registry.url, item_neighbors_wire_format="confluent"))
    assert ids == {"reco.recommendations.v1": 11, "reco.item-neighbors.v1": 12}
    calls = [(c.method, c.path) for c in registry.calls]
    assert calls == [("PUT", f"/config/{RECS}"), ("POST", f"/subjects/{RECS}/versions"),
                     ("PUT", f"/config/{NEIGHBORS}"), ("POST", f"/subjects/{NEIGHBORS}/versions")]
    put, post = registry.calls[0], registry.calls[1]
    assert put.body == {"compatibility": "BACKWARD"}
    assert put.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
    # the record's current schema, named types inlined, defaults and logical types kept
    schema = json.loads(post.body["schema"])
    assert post.body["schema"] == bundled_registry().text("reco.Recommendations")
    assert schema["name"] == "reco.Recommendations" and "schemaType" not in post.body
    item = next(f for f in schema["fields"] if f["name"] == "items")["type"]["items"]
    assert item["type"] == "record" and item["name"] == "reco.RecommendedItem"
    assert next(f for f in schema["fields"] if f["name"] == "model_version")["default"] == 0
    assert next(f for f in schema["fields"] if f["name"] == "event_time")["type"]["logicalType"] == "timestamp-millis"
    assert "Authorization" not in put.headers   # no user in the URL, no header


def test_the_registered_text_is_what_confluent_kafka_reads_back():
    """confluent-kafka's own registry takes the text, and its AvroDeserializer decodes what the
    codec frames with the id it gave (the test's adapter serves it over HTTP)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    record = {"user_id": 42, "items": [{"item_id": 9, "score": 0.75, "reason": "r"}], "version": 3,
              "generated_at": 1_700_000_001_000, "event_time": 1_700_000_000_123, "model_version": 5}
    with MockRegistry() as registry:
        ids = register_outputs(_cfg(registry.url, item_neighbors_wire_format="confluent"))
        assert register_outputs(_cfg(registry.url)) == {"reco.recommendations.v1": ids["reco.recommendations.v1"]}
        assert registry.compatibility == {RECS: "BACKWARD", NEIGHBORS: "BACKWARD"}
        data = confluent_frame(ids["reco.recommendations.v1"], AvroCodec("reco.Recommendations").encode_body(record))
        deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
        decoded = deserialize(data, SerializationContext("reco.recommendations.v1", MessageField.VALUE))
        assert registry.unhandled == []
    millis = {k: int(decoded[k].timestamp() * 1000) for k in ("generated_at", "event_time")}   # timestamp-millis
    assert {**decoded, **millis} == record


def test_basic_auth_comes_from_the_url_and_is_never_shown(caplog):
    with ScriptedRegistry(_ok_script()) as registry:
        with caplog.at_level(logging.DEBUG):
            register_outputs(_cfg(_with_user(registry.url)))
    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    assert {c.headers.get("Authorization") for c in registry.calls} == {expected}
    assert all(USER_INFO not in c.path and SECRET not in c.path for c in registry.calls)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "reco.Recommendations is schema id 11 under subject reco.recommendations.v1-value" in logged
    assert f"http://{USER}:***@127.0.0.1:" in logged
    assert SECRET not in logged and USER_INFO not in logged
    assert SECRET not in repr(RegistryClient(_with_user(registry.url)))


def test_an_incompatible_schema_stops_the_start_naming_subject_and_setting(caplog):
    script = _ok_script()
    script[("POST", f"/subjects/{RECS}/versions")] = (409, {
        "error_code": 409, "message": "Schema being registered is incompatible with an earlier schema for subject "
                                      f"\"{RECS}\", details: [READER_FIELD_MISSING_DEFAULT_VALUE]"})
    with ScriptedRegistry(script) as registry, caplog.at_level(logging.DEBUG):
        with pytest.raises(RegistryError) as err:
            register_outputs(_cfg(_with_user(registry.url)))
    message = str(err.value)
    assert err.value.status == 409
    assert f"refuses schema reco.Recommendations under subject {RECS} as incompatible" in message
    assert "(schema_registry_url)" in message and "READER_FIELD_MISSING_DEFAULT_VALUE" in message
    assert 'recommendations_wire_format = "single-object"' in message and "a field added needs a default" in message
    assert SECRET not in message + "\n".join(r.getMessage() for r in caplog.records)


def test_an_unreachable_registry_stops_the_start():
    url = _with_user(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(RegistryError) as err:
        register_outputs(_cfg(url))
    message = str(err.value)
    assert err.value.status is None
    assert f"cannot set compatibility BACKWARD on subject {RECS}" in message
    assert "the Schema Registry at http://reco:***@127.0.0.1:" in message and "(schema_registry_url) is unreachable" in message
    assert "Connection refused" in message and SECRET not in message


@pytest.mark.parametrize("status, words", [
    (401, "refused the credentials"),
    (403, "refused the user"),
])
def test_refused_credentials_stop_the_start_without_showing_them(status, words, caplog):
    answer = (status, {"error_code": status, "message": "Unauthorized"})
    script = {("PUT", f"/config/{RECS}"): answer, ("POST", f"/subjects/{RECS}/versions"): answer}
    with ScriptedRegistry(script) as registry, caplog.at_level(logging.DEBUG):
        with pytest.raises(RegistryError) as err:
            register_outputs(_cfg(_with_user(registry.url)))
    message = str(err.value)
    assert words in message and f"compatibility BACKWARD on subject {RECS}" in message
    assert "check the user and password in schema_registry_url" in message
    assert SECRET not in message + "\n".join(r.getMessage() for r in caplog.records)


def test_an_answer_without_an_id_or_not_json_is_an_error():
    script = _ok_script()
    script[("POST", f"/subjects/{RECS}/versions")] = (200, {"version": 1})
    with ScriptedRegistry(script) as registry, pytest.raises(RegistryError, match="without a schema id"):
        register_outputs(_cfg(registry.url))
    script[("POST", f"/subjects/{RECS}/versions")] = (200, {"id": 2**31})
    with ScriptedRegistry(script) as registry, pytest.raises(RegistryError, match="without a schema id"):
        register_outputs(_cfg(registry.url))


def test_a_redirect_is_not_followed_with_the_credentials():
    script = {("PUT", f"/config/{RECS}"): (307, {"message": "elsewhere"})}
    with ScriptedRegistry(script) as registry, pytest.raises(RegistryError, match="HTTP 307"):
        register_outputs(_cfg(_with_user(registry.url)))
    assert len(registry.calls) == 1


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A test CA, a server certificate for 127.0.0.1 it signed, and another CA."""
    d = tmp_path_factory.mktemp("registry-tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=reco-test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=registry", cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other-ca.pem",
             "-days", "2", "-subj", "/CN=another-ca", cwd=d)
    return d


def test_https_with_the_configured_ca_file(tls_files):
    with ScriptedRegistry(_ok_script(), tls=(str(tls_files / "server.pem"), str(tls_files / "server.key"))) as registry:
        assert registry.url.startswith("https://")
        cfg = _cfg(_with_user(registry.url), schema_registry_tls_ca_file=str(tls_files / "ca.pem"))
        assert register_outputs(cfg) == {"reco.recommendations.v1": 11}
        with pytest.raises(RegistryError) as err:   # a registry another CA signed is refused
            register_outputs(cfg.replace(schema_registry_tls_ca_file=str(tls_files / "other-ca.pem")))
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) and "schema_registry_tls_ca_file" in str(err.value)
    with pytest.raises(RegistryError, match="cannot use the CA file /nonexistent.pem \\(schema_registry_tls_ca_file\\)"):
        register_outputs(cfg.replace(schema_registry_tls_ca_file="/nonexistent.pem"))


# -- the job's start ------------------------------------------------------------------------------

@pytest.fixture
def job_main(monkeypatch):
    """flink_jobs.main with everything before the registration stubbed (no JVM in unit tests)."""
    from flink_jobs import main as job_main

    monkeypatch.setattr(job_main, "create_environment", lambda cfg: (object(), object()))
    monkeypatch.setattr(job_main, "require_guarantees", lambda env, cfg, ask_kafka=True: None)
    monkeypatch.setattr(job_main, "require_event_topic", lambda cfg: None)
    return job_main


@pytest.mark.parametrize("failure", ["incompatible", "unreachable", "unauthorized"])
def test_the_job_exits_2_naming_subject_and_setting(job_main, failure, monkeypatch, capsys, caplog):
    script = _ok_script()
    script[("POST", f"/subjects/{RECS}/versions")] = {
        "incompatible": (409, {"error_code": 409, "message": "Schema being registered is incompatible"}),
        "unauthorized": (401, {"error_code": 401, "message": "Unauthorized"}),
        "unreachable": None}[failure]
    with ScriptedRegistry(script) as registry:
        url = registry.url if failure != "unreachable" else f"http://127.0.0.1:{_free_port()}"
        monkeypatch.setenv("RECO_SCHEMA_REGISTRY_URL", _with_user(url))
        with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exited:
            job_main.main(["--recommendations-wire-format", "confluent"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and RECS in err and "schema_registry_url" in err
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "reco:***@127.0.0.1" in logged   # the start line shows the setting, redacted
    assert SECRET not in err + logged and USER_INFO not in err + logged


class _Stop(Exception):
    pass


def test_the_ids_reach_the_deliveries(job_main, monkeypatch):
    """build_job hands the ids it registered to the Ranker's deliveries (pipeline.build's
    ``deliver``) and to attach_sinks, which puts them in the Outputs of its Publish operators;
    both are pickled with their operators to the workers. The Ranker's rows go to their sink
    as they are."""
    import dataclasses
    import pickle

    from flink_jobs import publish

    seen, delivered = {}, []

    def build(raw, catalog, cfg, assign_watermarks, deliver):
        delivered.extend(pickle.loads(pickle.dumps(d)).output for d in deliver)

    def attach(t_env, outputs, cfg, ids):
        seen.update(ids)
        raise _Stop
    monkeypatch.setattr(job_main, "kafka_sources", lambda t_env, cfg: (None, None))
    monkeypatch.setattr(job_main.pipeline, "build", build)
    monkeypatch.setattr(job_main, "attach_sinks", attach)
    with MockRegistry() as registry, pytest.raises(_Stop):
        job_main.build_job(_cfg(registry.url, item_neighbors_wire_format="confluent"))
    assert seen == {"reco.recommendations.v1": 1, "reco.item-neighbors.v1": 2}
    assert delivered == [dataclasses.replace(publish.RECOMMENDATIONS, schema_id=1),
                         dataclasses.replace(publish.ITEM_NEIGHBORS, schema_id=2)]
    monkeypatch.undo()

    made, sunk = [], []

    class Stream:
        def process(self, fn, output_type=None):
            made.append(pickle.loads(pickle.dumps(fn.output)))
            return self

        def sink_to(self, sink):
            return type("Sunk", (), {"uid": lambda s, u: s, "name": lambda s, n: s})()

        def uid(self, uid):
            return self

        def name(self, name):
            return self

    class TableEnv:
        def create_statement_set(self):
            return type("Set", (), {"add_insert": lambda s, table, data: None,
                                    "attach_as_datastream": lambda s: None})()

        def from_data_stream(self, stream):
            sunk.append(stream)

    streams = {output.name: Stream() for output in publish.OUTPUTS}
    monkeypatch.setattr(job_main, "kafka_sink", lambda t_env, cfg, name, topic, keyed: name)
    monkeypatch.setattr(job_main, "table_uids", lambda t_env, table: contextlib.nullcontext())
    job_main.attach_sinks(TableEnv(), type("Outputs", (), streams)(), JobConfig(), {"reco.user-events.dlq.v1": 5})
    assert made == [dataclasses.replace(publish.DEAD_LETTERS, schema_id=5), publish.TRENDING]
    assert sunk == [streams["recommendations"], streams["item_neighbors"], streams["dead_letters"]]


# -- reading back: both wire formats ----------------------------------------------------------------

RECORD = {"user_id": 42, "items": [{"item_id": 9, "score": 0.75, "reason": "r"}], "version": 3,
          "generated_at": 1_700_000_001_000, "event_time": 1_700_000_000_123, "model_version": 5}


def test_the_framed_decoder_reads_both_formats_and_fetches_each_id_once():
    codec = AvroCodec("reco.Recommendations")
    text = bundled_registry().text("reco.Recommendations")
    script = {("GET", "/schemas/ids/7"): (200, {"schema": text})}
    with ScriptedRegistry(script) as registry:
        decoder = FramedDecoder(codec, RegistryClient(registry.url))
        framed = confluent_frame(7, codec.encode_body(RECORD))
        assert decoder.decode(framed) == RECORD and decoder.decode(framed) == RECORD
        assert decoder.decode(codec.encode(RECORD)) == RECORD   # single-object needs no registry
        with pytest.raises(AvroError, match="Confluent wire format, schema id 8: the Schema Registry at "
                                            "http://127.0.0.1:\\d+ HTTP 404"):
            decoder.decode(confluent_frame(8, codec.encode_body(RECORD)))
    assert [(c.method, c.path) for c in registry.calls] == [("GET", "/schemas/ids/7"), ("GET", "/schemas/ids/8")]
    with pytest.raises(AvroError, match="Confluent wire format \\(schema id 7\\), not single-object encoding: a "
                                        "Schema Registry is needed"):
        FramedDecoder(codec).decode(framed)
    with pytest.raises(AvroError, match="not Avro single-object encoded: magic 7b22"):
        FramedDecoder(codec).decode(b'{"user_id": 42}')
    with pytest.raises(AvroError, match="expected bytes, got NoneType"):   # a tombstone
        FramedDecoder(codec).decode(None)


@pytest.mark.parametrize("answer, message", [
    ({"schema": "{}", "schemaType": "PROTOBUF"}, "a PROTOBUF schema, not Avro"),
    ({"schema": "{}", "references": [{"name": "x", "subject": "y", "version": 1}]}, "uses schema references"),
    ({"id": 7}, "without a schema"),
])
def test_schemas_the_decoder_cannot_use_are_named(answer, message):
    with ScriptedRegistry({("GET", "/schemas/ids/7"): (200, answer)}) as registry:
        with pytest.raises(RegistryError, match=message):
            RegistryClient(registry.url).schema(7)


@pytest.mark.parametrize("url", ["registry:8081", "ftp://registry", "http://registry:port"])
def test_the_client_refuses_what_is_no_http_url(url):
    with pytest.raises((RegistryError, ValueError)):
        RegistryClient(url)


def test_a_server_that_is_no_registry_is_named_so():
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            self.send_response(200)
            self.send_header("Content-Length", "15")
            self.end_headers()
            self.wfile.write(b"<html>hi</html>")

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with pytest.raises(RegistryError, match="HTTP 200, but not JSON .*is this a Schema Registry"):
            register_outputs(_cfg(f"http://127.0.0.1:{server.server_address[1]}"))
    finally:
        server.shutdown()
        server.server_close()
