"""Kafka with SASL/SCRAM: the local broker with a SASL_PLAINTEXT listener
(SCRAM-SHA-512, deploy/local/stack.sh with RECO_KAFKA_SASL_PORT), the tools and the job on the
local Flink mini-cluster reading and writing through it with the client properties the stack
writes. A stack of its own: ports RECO_TEST_SASL_KAFKA_PORT (29392; controller +1, SASL +2) and
RECO_TEST_SASL_REDIS_PORT (26579), data in RECO_TEST_SASL_RUN_DIR (.run/test-sasl), reset at the
start and stopped at the end."""

import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from kafka.errors import KafkaError

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.sensitive import read_properties
from lab.jobs import committed_version, start_job
from lab.wait import wait_for
from reco_tools.kafka_io import consume, event_message, make_consumer, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import connect_admin, ensure_topics
from lab.oracle import expected_versions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack.sh"
KAFKA_PORT = int(os.environ.get("RECO_TEST_SASL_KAFKA_PORT", "29392"))
SASL_PORT = KAFKA_PORT + 2
REDIS_PORT = int(os.environ.get("RECO_TEST_SASL_REDIS_PORT", "26579"))
RUN_DIR = Path(os.environ.get("RECO_TEST_SASL_RUN_DIR", ROOT / ".run" / "test-sasl"))
SASL = f"127.0.0.1:{SASL_PORT}"
EVENTS = AvroCodec("reco.UserEvent")


def _stack(env, *args, check=True):
    proc = subprocess.run([str(STACK), *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        pytest.fail(f"stack.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def sasl_stack():
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECO_KAFKA_PROPERTIES")}
    env.update(RECO_KAFKA_PORT=str(KAFKA_PORT), RECO_KAFKA_CONTROLLER_PORT=str(KAFKA_PORT + 1),
               RECO_KAFKA_SASL_PORT=str(SASL_PORT), RECO_REDIS_PORT=str(REDIS_PORT), RECO_RUN_DIR=str(RUN_DIR))
    _stack(env, "reset")          # a fresh broker: the SCRAM user comes from formatting the storage
    started = _stack(env, "start")
    try:
        props_file = RUN_DIR / "kafka" / "client-sasl.properties"
        password = (RUN_DIR / "kafka" / "sasl-password").read_text().strip()
        yield {"props_file": props_file, "props": read_properties(props_file), "password": password,
               "redis_url": f"redis://127.0.0.1:{REDIS_PORT}/0", "start_output": started.stdout + started.stderr}
    finally:
        _stack(env, "stop", check=False)


def test_the_stack_serves_sasl_scram_and_keeps_the_password_off_command_lines_and_logs(sasl_stack):
    props = sasl_stack["props"]
    assert props["security.protocol"] == "SASL_PLAINTEXT" and props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert f'password="{sasl_stack["password"]}"' in props["sasl.jaas.config"]
    for secret_file in (sasl_stack["props_file"], RUN_DIR / "kafka" / "sasl-password"):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
    server = (RUN_DIR / "kafka" / "server.properties").read_text()
    assert f"SASL_PLAINTEXT://127.0.0.1:{SASL_PORT}" in server and "sasl.enabled.mechanisms=SCRAM-SHA-512" in server
    for log in ("format.log", "kafka.log"):
        assert sasl_stack["password"] not in (RUN_DIR / "kafka" / log).read_text(), log
    assert sasl_stack["password"] not in sasl_stack["start_output"]
    assert not list((RUN_DIR / "kafka").glob("args.*")), "a java @argfile with the password was left behind"


def test_the_sasl_listener_refuses_a_wrong_password_and_a_client_without_sasl(sasl_stack):
    props = sasl_stack["props"]
    wrong = {**props, "sasl.jaas.config": props["sasl.jaas.config"].replace('password="', 'password="x')}
    for bad in (wrong, {}):
        with pytest.raises((KafkaError, SystemExit)):
            connect_admin(SASL, timeout_s=5, properties=bad).close()
    log = (RUN_DIR / "kafka" / "kafka.log").read_text()
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in log


def test_the_tools_work_through_sasl(sasl_stack):
    props = sasl_stack["props"]
    ensure_topics(SASL, recreate=True, properties=props)                 # admin client
    producer = make_producer(SASL, props)
    marker = uuid.uuid4().hex.encode()
    produce(producer, contracts.DEAD_LETTER_TOPIC, [(None, marker)], progress=False)
    producer.close()
    consumer = make_consumer(SASL, contracts.DEAD_LETTER_TOPIC, properties=props)
    values = [r.value for r in consume(consumer, idle_timeout_s=3)]
    consumer.close()
    assert marker in values
    # the command-line tools too, with the same properties file
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "reco_tools.consume", "--bootstrap", SASL,
                          "--topic", contracts.DEAD_LETTER_TOPIC, "--idle", "3",
                          "--kafka-properties-file", str(sasl_stack["props_file"])],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "0:0 " in out.stdout, out.stderr


def test_the_job_reads_and_writes_through_sasl(sasl_stack, tmp_path):
    props = sasl_stack["props"]
    ensure_topics(SASL, recreate=True, properties=props)
    store = redis.Redis.from_url(sasl_stack["redis_url"])
    store.flushdb()
    synth = Synth(SynthConfig(events=300, users=20, items=60, clusters=3, seed=11))
    events = sorted(synth.events(), key=lambda e: e["event_time"])
    producer = make_producer(SASL, props)
    produce_catalog(producer, synth.catalog(), progress=False)
    produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in events), progress=False)
    garbage = b"\xc3\x01not avro, through SASL"
    producer.send(contracts.USER_EVENTS_TOPIC, key=b"1", value=garbage, timestamp_ms=events[-1]["event_time"]).get(30)
    producer.close()

    job = start_job(SASL, sasl_stack["redis_url"], uuid.uuid4().hex[:8], tmp_path / "job",
                    "--parallelism", "2", "--checkpoint-interval-ms", "2000", "--top-n", "5",
                    kafka_properties=props)
    try:
        finals = {u: v[-1] for u, v in expected_versions(events).items()}

        def caught_up():   # the source read every event through SASL
            job.check_alive()
            docs = store.mget([contracts.user_recommendations_key(u) for u in finals])
            return all(d is not None and json.loads(d)["version"] == finals[u] for u, d in zip(finals, docs))
        wait_for(caught_up, 300, "the job to answer every event", poll_s=0.5)

        # the transactional sinks committed through SASL: every user's last list, read_committed
        user = events[-1]["user_id"]
        assert committed_version(SASL, user, finals[user], 90, props)
        codec = AvroCodec("reco.Recommendations")
        consumer = make_consumer(SASL, contracts.RECOMMENDATIONS_TOPIC, properties=props)
        committed = {}
        for r in consume(consumer, idle_timeout_s=5):
            rec = codec.decode(r.value)
            committed[rec["user_id"]] = max(committed.get(rec["user_id"], 0), rec["version"])
        consumer.close()
        assert committed == finals
        dead = AvroCodec("reco.DeadLetter")
        consumer = make_consumer(SASL, contracts.DEAD_LETTER_TOPIC, properties=props)
        letters = [dead.decode(r.value)["payload"] for r in consume(consumer, idle_timeout_s=5)]
        consumer.close()
        assert garbage in letters
        assert job.poll() is None
    finally:
        job.stop()
    text = job.output.read_text()
    assert sasl_stack["password"] not in text, "the job logged the SASL password"
    assert "sasl.jaas.config': '***'" in text   # its settings line, redacted
