"""Kafka over TLS end to end: the stack's broker restarted with its opt-in SSL listener
(deploy/local/stack.sh with RECO_KAFKA_SSL_PORT), whose CA and broker certificate the script
makes itself, and the one client properties file it writes
($RECO_RUN_DIR/kafka/client-ssl.properties) serving the tools (kafka-python) and the job (the
Java client inside the SQL connector) alike.

- The certificate is for IP 127.0.0.1 and DNS localhost, so clients keep hostname
  verification (``ssl.endpoint.identification.algorithm=https``); the stores' password is
  generated, in files only this user can read, and in no log or command line.
- A client without the truststore (kafka-python, and Java's own client) fails at once with a
  certificate error, and a PLAINTEXT client on the SSL port is refused: not a hang.
- The job on the local mini-cluster, bootstrapped on the SSL listener only, reads the events
  and writes its transactional outputs through it: every user's last list reaches Redis, and
  a read_committed consumer over SSL sees every user's last list and the dead letter.

The listener speaks TLS 1.2, the stack's default (RECO_KAFKA_SSL_PROTOCOLS): kafka-python drops
TLS 1.3 connections at random (deploy/local/stack.sh, docs/operations.md "Security").

Uses the session ``stack`` (RECO_TEST_KAFKA_PORT, RECO_TEST_RUN_DIR); the SSL port is
RECO_TEST_KAFKA_SSL_PORT (the Kafka port + 2). Kafka is restarted without the listener at the end.
"""

import json
import os
import socket
import ssl
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.sensitive import read_properties
from lab.jobs import start_job
from lab.oracle import expected_versions
from lab.wait import wait_for
from reco_tools.kafka_io import consume, event_message, make_consumer, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import connect_admin, ensure_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = AvroCodec("reco.UserEvent")


@pytest.fixture(scope="module")
def tls_kafka(stack):
    """The stack's Kafka restarted with the SSL listener; restarted without it at the end."""
    kafka_port = int(stack.bootstrap.rsplit(":", 1)[1])
    ssl_port = int(os.environ.get("RECO_TEST_KAFKA_SSL_PORT", str(kafka_port + 2)))
    run_dir = Path(stack.env["RECO_RUN_DIR"])
    stack.run("stop", "kafka")
    try:
        started = stack.run("start", "kafka", timeout=600, env_overrides={"RECO_KAFKA_SSL_PORT": str(ssl_port)})
        props_file = run_dir / "kafka" / "client-ssl.properties"
        yield {"bootstrap": f"127.0.0.1:{ssl_port}", "plaintext_port": kafka_port, "run_dir": run_dir,
               "props_file": props_file, "props": read_properties(props_file),
               "password": (run_dir / "kafka" / "tls" / "store-password").read_text().strip(),
               "start_output": started.stdout + started.stderr}
    finally:
        stack.run("stop", "kafka", check=False)
        stack.run("start", "kafka", check=False, timeout=600)


def _kafka_java_tool(props_file: Path, bootstrap: str) -> subprocess.CompletedProcess:
    """Java's own Kafka client (the broker's jars, as the job's connector but unshaded): describe
    the broker's configuration through ``bootstrap`` with ``props_file``."""
    jars = Path(os.environ.get("RECO_JARS_DIR", ROOT / ".cache" / "jars")) / "kafka"
    assert list(jars.glob("kafka-clients-*.jar")), f"no Kafka jars in {jars}: run deploy/setup.sh"
    return subprocess.run(["java", "-cp", f"{jars}/*", f"-Dlog4j2.configurationFile={ROOT}/deploy/local/kafka-log4j2.yaml",
                           "kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap, "--command-config", str(props_file),
                           "--describe", "--entity-type", "brokers", "--entity-name", "1"],
                          capture_output=True, text=True, timeout=180)


def test_the_stack_makes_a_certificate_that_passes_hostname_checks_and_keeps_its_password_private(tls_kafka):
    props, kafka_dir = tls_kafka["props"], tls_kafka["run_dir"] / "kafka"
    ca = kafka_dir / "tls" / "ca.pem"
    assert props == {"security.protocol": "SSL", "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca),
                     "ssl.endpoint.identification.algorithm": "https"}
    # the certificate: signed by the stack's CA, for 127.0.0.1 and localhost (checked as clients do)
    host, port = tls_kafka["bootstrap"].split(":")
    for name in ("127.0.0.1", "localhost"):
        context = ssl.create_default_context(cafile=str(ca))          # verifies the chain and the name
        with socket.create_connection((host, int(port)), timeout=30) as raw, \
                context.wrap_socket(raw, server_hostname=name) as tls:
            sans = tls.getpeercert()["subjectAltName"]
        assert ("IP Address", "127.0.0.1") in sans and ("DNS", "localhost") in sans
    # the password: generated, readable by this user only, in no log, output or command line
    password = tls_kafka["password"]
    assert len(password) >= 32
    for private in ("tls/store-password", "tls/broker.p12", "tls/truststore.p12", "tls/ca.p12",
                    "server.properties", "client-ssl.properties"):
        assert stat.S_IMODE((kafka_dir / private).stat().st_mode) == 0o600, private
    assert stat.S_IMODE((kafka_dir / "tls").stat().st_mode) == 0o700
    assert f"listener.name.ssl.ssl.keystore.password={password}" in (kafka_dir / "server.properties").read_text()
    for log in ("kafka.log", "keytool.log"):
        assert password not in (kafka_dir / log).read_text(), log
    assert password not in tls_kafka["start_output"]
    broker_pid = (kafka_dir / "pid").read_text().strip()
    assert password not in Path(f"/proc/{broker_pid}/cmdline").read_bytes().decode(errors="replace")
    # Java's client with the same file, through the SSL listener
    java = _kafka_java_tool(tls_kafka["props_file"], tls_kafka["bootstrap"])
    assert java.returncode == 0 and "configs for broker 1 are" in java.stdout, java.stdout[-2000:] + java.stderr[-2000:]


def test_a_client_without_the_truststore_or_without_tls_is_refused_clearly(tls_kafka, tmp_path):
    bootstrap = tls_kafka["bootstrap"]
    # kafka-python with TLS but the system's CAs only: the certificate error itself, at once
    # (a broker that merely did not answer would end in SystemExit after the 60 s instead)
    with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
        connect_admin(bootstrap, timeout_s=60, properties={"security.protocol": "SSL"}).close()
    # Java's client likewise: the handshake fails and the tool exits with the cause
    no_truststore = tmp_path / "no-truststore.properties"
    no_truststore.write_text("security.protocol=SSL\n")
    java = _kafka_java_tool(no_truststore, bootstrap)
    out = java.stdout + java.stderr
    assert java.returncode != 0, out[-2000:]
    assert "SslAuthenticationException: SSL handshake failed" in out and "PKIX path building failed" in out, out[-3000:]
    # a client without TLS gets no answer it can read: refused within its timeout
    with pytest.raises(SystemExit, match="did not answer within 5s"):
        connect_admin(bootstrap, timeout_s=5, properties={}).close()


def test_the_job_reads_and_writes_through_the_ssl_listener_only(stack, tls_kafka, tmp_path):
    bootstrap, props, props_file = tls_kafka["bootstrap"], tls_kafka["props"], tls_kafka["props_file"]
    ensure_topics(bootstrap, recreate=True, properties=props)                 # the tools' admin client
    store = redis.Redis.from_url(stack.redis_url)
    store.flushdb()
    synth = Synth(SynthConfig(events=300, users=20, items=60, clusters=3, seed=17))
    events = sorted(synth.events(), key=lambda e: e["event_time"])
    producer = make_producer(bootstrap, props)
    produce_catalog(producer, synth.catalog(), progress=False)
    produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in events), progress=False)
    garbage = b"\xc3\x01not avro, through TLS"
    producer.send(contracts.USER_EVENTS_TOPIC, key=b"1", value=garbage, timestamp_ms=events[-1]["event_time"]).get(30)
    producer.close()

    # the stack's own file, as is: the same one the tools read
    job = start_job(bootstrap, stack.redis_url, uuid.uuid4().hex[:8], tmp_path / "job",
                    "--parallelism", "2", "--checkpoint-interval-ms", "2000", "--top-n", "5",
                    "--kafka-properties-file", str(props_file))
    try:
        finals = {u: v[-1] for u, v in expected_versions(events).items()}

        def caught_up():   # the source read every event through TLS
            job.check_alive()
            docs = store.mget([contracts.user_recommendations_key(u) for u in finals])
            return all(d is not None and json.loads(d)["version"] == finals[u] for u, d in zip(finals, docs))
        wait_for(caught_up, 600, "the job to answer every event read over TLS", poll_s=1)

        # the transactional sinks committed through TLS: every user's last list, read_committed
        codec = AvroCodec("reco.Recommendations")

        def committed_lists():
            consumer = make_consumer(bootstrap, contracts.RECOMMENDATIONS_TOPIC, properties=props)
            try:
                latest = {}
                for r in consume(consumer, idle_timeout_s=5):
                    rec = codec.decode(r.value)
                    latest[rec["user_id"]] = max(latest.get(rec["user_id"], 0), rec["version"])
                return latest
            finally:
                consumer.close()
        def all_committed():
            latest = committed_lists()
            return latest if latest == finals else None
        wait_for(all_committed, 180, "every user's last list committed, read over TLS (read_committed)", poll_s=2)
        dead = AvroCodec("reco.DeadLetter")

        def dead_letters():
            consumer = make_consumer(bootstrap, contracts.DEAD_LETTER_TOPIC, properties=props)
            try:
                return garbage in [dead.decode(r.value)["payload"] for r in consume(consumer, idle_timeout_s=5)]
            finally:
                consumer.close()
        wait_for(dead_letters, 120, "the dead letter committed, read over TLS", poll_s=2)
        assert job.poll() is None
    finally:
        job.stop()
    # the connector's clients used TLS, and no client was given the PLAINTEXT listener
    logs = job.logs()
    assert "security.protocol = SSL" in logs and f"bootstrap.servers = [{bootstrap}]" in logs, job.tail()
    assert f":{tls_kafka['plaintext_port']}]" not in logs, "a Kafka client of the job was bootstrapped on PLAINTEXT"
    # the command-line tools, with the same file
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "reco_tools.consume", "--bootstrap", bootstrap,
                          "--topic", contracts.DEAD_LETTER_TOPIC, "--idle", "3",
                          "--kafka-properties-file", str(props_file)],
                         cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "0:0 " in out.stdout, out.stderr
