"""The job with recommendations and item neighbors in the Confluent wire format, on the local
mini-cluster against the real Kafka broker and Redis, read back by a consumer that knows
nothing of this project: confluent-kafka's Consumer and AvroDeserializer, pointed at a
Schema Registry.

No real Confluent Schema Registry runs on the project's machines (no Docker; Apicurio has no
runnable jar on Maven Central), so the registry is confluent-kafka's own in-memory one served
over HTTP by tests/schema_registry_http.py, with basic auth. The job registers its schemas
there at start (with its password in RECO_SCHEMA_REGISTRY_URL, never logged), frames its
records with the ids it got, and every committed record must decode with the registry alone
and agree with what the job wrote to Redis. Dead letters stay single-object encoded.
"""

import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import pytest
import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.internals import child_environment
from lab.jobs import job_command, start_job, wait_until_consuming
from lab.oracle import expected_versions
from lab.wait import wait_for
from reco_tools.kafka_io import event_message, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics
from tests.schema_registry_http import MockRegistry

pytestmark = pytest.mark.integration
EVENTS = AvroCodec("reco.UserEvent")
USER, PASSWORD = "reco-job", "p@ss:w/rd-S3cret"
RECOMMENDATIONS, NEIGHBORS = "reco.recommendations.v1", "reco.item-neighbors.v1"


def read_committed(bootstrap: str, topic: str, registry_url: str, user_info: str) -> list[tuple[bytes, bytes, dict]]:
    """Every committed record of ``topic`` as (key, raw value, value decoded by confluent-kafka's
    AvroDeserializer with the writer schema the registry gives for the record's id), in
    partition order. Nothing of this project is used here."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url, "basic.auth.user.info": user_info}))
    context = SerializationContext(topic, MessageField.VALUE)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"confluent-test-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in sorted(partitions)])   # 0: from the beginning
        records, idle_since = [], time.monotonic()
        while time.monotonic() - idle_since < 3:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise AssertionError(f"{topic}: {message.error()}")
            idle_since = time.monotonic()
            records.append((message.key(), message.value(), deserialize(message.value(), context)))
        return records
    finally:
        consumer.close()


def _millis(value):
    """timestamp-millis as confluent-kafka gives it (a datetime) -> epoch milliseconds."""
    return round(value.timestamp() * 1000) if hasattr(value, "timestamp") else value


def _plain(record: dict) -> dict:
    return {k: _millis(v) for k, v in record.items()}


@pytest.fixture(scope="module")
def confluent_job(stack, tmp_path_factory):
    user_info = f"{USER}:{PASSWORD}"
    quoted = f"{urllib.parse.quote(USER, safe='')}:{urllib.parse.quote(PASSWORD, safe='')}"
    with MockRegistry(user_info) as registry:
        ensure_topics(stack.bootstrap, recreate=True)
        store = redis.Redis.from_url(stack.redis_url)
        store.flushdb()
        # minute buckets, so that item lists are published as event time passes them
        synth = Synth(SynthConfig(events=400, users=30, items=80, clusters=4, seed=11))
        events = sorted(synth.events(), key=lambda e: e["event_time"])
        producer = make_producer(stack.bootstrap)
        produce_catalog(producer, synth.catalog(), progress=False)
        registry_url = registry.url.replace("://", f"://{quoted}@")
        os.environ["RECO_SCHEMA_REGISTRY_URL"] = registry_url   # the job's environment: no password on its command line
        try:
            job = start_job(stack.bootstrap, stack.redis_url, uuid.uuid4().hex[:8], tmp_path_factory.mktemp("job"),
                            "--parallelism", "2", "--checkpoint-interval-ms", "2000", "--top-n", "5",
                            "--bucket-ms", "60000", "--cooccurrence-window-ms", "600000",
                            "--recommendations-wire-format", "confluent", "--item-neighbors-wire-format", "confluent")
        finally:
            del os.environ["RECO_SCHEMA_REGISTRY_URL"]
        try:
            # The events once the job runs (and has the catalog), in two parts: lists rank from
            # the item side as of the last bucket end, so the second part's lists have
            # neighbors and trending to rank from, not a backlog's empty item side.
            wait_until_consuming(stack.bootstrap, job, 120)
            first, rest = events[:300], events[300:]
            produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in first), progress=False)
            wait_for(lambda: job.check_alive() or next(store.scan_iter("reco:v1:item:*:similar"), None), 120,
                     "the first item lists in Redis")
            produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in rest), progress=False)
            finals = {u: v[-1] for u, v in expected_versions(events).items()}

            def caught_up():
                job.check_alive()
                docs = store.mget([contracts.user_recommendations_key(u) for u in finals])
                return all(d is not None and json.loads(d)["version"] == finals[u] for u, d in zip(finals, docs))
            wait_for(caught_up, 240, "the job to answer every event in Redis")
            yield Run(stack, store, producer, events, job, registry, registry_url, user_info, finals)
        finally:
            producer.close()
            job.stop()


@dataclass
class Run:
    stack: object
    store: redis.Redis
    producer: object
    events: list
    job: object
    registry: MockRegistry
    registry_url: str    # with the job's user and password
    user_info: str
    finals: dict         # user -> the version of its last list


def test_the_job_registered_both_subjects_backward(confluent_job):
    registry = confluent_job.registry
    assert registry.compatibility == {f"{RECOMMENDATIONS}-value": "BACKWARD", f"{NEIGHBORS}-value": "BACKWARD"}
    subjects = sorted(registry.client.get_subjects())
    assert subjects == [f"{NEIGHBORS}-value", f"{RECOMMENDATIONS}-value"]   # nothing for the dead letters
    logs = confluent_job.job.logs()
    assert "is schema id" in logs and f"under subject {RECOMMENDATIONS}-value" in logs
    assert PASSWORD not in logs and urllib.parse.quote(PASSWORD, safe="") not in logs
    assert "reco-job:***@127.0.0.1" in logs   # the setting is shown, its password hidden


def test_every_committed_recommendation_decodes_with_the_registry_alone_and_matches_redis(confluent_job):
    c = confluent_job
    schema_id = c.registry.client.get_latest_version(f"{RECOMMENDATIONS}-value").schema_id

    def last_per_user():
        records = read_committed(c.stack.bootstrap, RECOMMENDATIONS, c.registry.url, c.user_info)
        latest = {}
        for key, raw, record in records:
            assert raw[:1] == b"\x00" and int.from_bytes(raw[1:5], "big") == schema_id
            assert key == str(record["user_id"]).encode("ascii")   # keys stay decimal text
            latest.setdefault(record["user_id"], []).append(_plain(record))
        done = all(latest.get(u, [{}])[-1].get("version") == v for u, v in c.finals.items())
        return done and latest
    by_user = wait_for(last_per_user, 120, "every user's final list committed on Kafka", poll_s=1)
    assert set(by_user) == set(c.finals)
    for user, records in by_user.items():
        versions = [r["version"] for r in records]
        assert versions == sorted(set(versions)), f"user {user}: versions {versions}"
        doc = json.loads(c.store.get(contracts.user_recommendations_key(user)))
        last = records[-1]
        assert {k: doc[k] for k in last} == last, f"user {user}: Kafka {last} != Redis {doc}"
        assert all(set(i) == {"item_id", "score", "reason"} for i in last["items"])
    last_lists = [records[-1]["items"] for records in by_user.values()]
    print(f"\n{sum(map(bool, last_lists))} of {len(last_lists)} users' last lists have items")
    assert sum(map(bool, last_lists)) >= 5, last_lists   # nested records decoded, not only empty arrays
    assert c.registry.unhandled == []


def test_item_neighbors_decode_with_the_registry_alone_and_match_redis(confluent_job):
    c = confluent_job
    schema_id = c.registry.client.get_latest_version(f"{NEIGHBORS}-value").schema_id

    def agreed():
        records = read_committed(c.stack.bootstrap, NEIGHBORS, c.registry.url, c.user_info)
        latest = {}
        for key, raw, record in records:
            assert raw[:1] == b"\x00" and int.from_bytes(raw[1:5], "big") == schema_id
            assert key == str(record["item_id"]).encode("ascii")
            latest[record["item_id"]] = _plain(record)
        in_redis = {int(k.decode().split(":")[3]) for k in c.store.scan_iter("reco:v1:item:*:similar")}
        if not latest or set(latest) != in_redis:
            return None
        docs = {item: json.loads(c.store.get(contracts.item_similar_key(item))) for item in latest}
        if any(docs[i]["version"] != r["event_time"] for i, r in latest.items()):
            return None
        return latest, docs
    latest, docs = wait_for(agreed, 120, "the committed item lists to agree with Redis", poll_s=1)
    for item, record in latest.items():
        assert {k: docs[item][k] for k in record} == record
    assert any(r["neighbors"] for r in latest.values())


def test_dead_letters_stay_single_object_encoded(confluent_job):
    from confluent_kafka import Consumer, TopicPartition

    c = confluent_job
    garbage = b"\xc3\x01not an avro body"
    c.producer.send(contracts.USER_EVENTS_TOPIC, key=b"1", value=garbage, timestamp_ms=c.events[-1]["event_time"])
    c.producer.flush()
    consumer = Consumer({"bootstrap.servers": c.stack.bootstrap, "group.id": f"dlq-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.assign([TopicPartition(contracts.DEAD_LETTER_TOPIC, 0, 0)])
    try:
        def letter():
            message = consumer.poll(0.5)
            if message is None or message.error():
                return None
            value = message.value()
            if value[:2] == b"\xc3\x01" and AvroCodec("reco.DeadLetter").decode(value)["payload"] == garbage:
                return value
            assert value[:2] == b"\xc3\x01", f"a dead letter not single-object encoded: {value[:10]!r}"
        wait_for(letter, 60, "the dead letter", poll_s=0)
    finally:
        consumer.close()


def test_reco_consume_decodes_the_confluent_records(confluent_job):
    c = confluent_job
    user = max(c.finals, key=lambda u: c.finals[u])
    env = {**os.environ, "RECO_SCHEMA_REGISTRY_URL": c.registry_url}
    proc = subprocess.run([sys.executable, "-m", "reco_tools.consume", "--bootstrap", c.stack.bootstrap,
                           "--user", str(user), "--idle", "3"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and all(f" user {user} v" in line for line in lines), proc.stdout
    assert f" user {user} v{c.finals[user]} " in lines[-1]
    assert PASSWORD not in proc.stdout + proc.stderr
    # without the registry it says what it found
    env.pop("RECO_SCHEMA_REGISTRY_URL")
    proc = subprocess.run([sys.executable, "-m", "reco_tools.consume", "--bootstrap", c.stack.bootstrap,
                           "--user", str(user), "--idle", "3", "--max", "1"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "<undecodable: Confluent wire format (schema id" in proc.stdout
    assert "give --schema-registry" in proc.stderr


def test_reco_refill_restores_redis_from_the_confluent_records(confluent_job):
    """Redis repair (docs/operations.md) works on Confluent-framed topics too."""
    c = confluent_job
    keys = [contracts.user_recommendations_key(u) for u in c.finals]
    before = dict(zip(keys, c.store.mget(keys)))
    items = list(c.store.scan_iter("reco:v1:item:*:similar"))
    items_before = dict(zip(items, c.store.mget(items)))
    c.store.delete(*keys, *items)   # Redis lost its data
    env = {**os.environ, "RECO_REDIS_URL": c.stack.redis_url}
    command = [sys.executable, "-m", "reco_tools.refill", "--bootstrap", c.stack.bootstrap, "--item-neighbors"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr   # without the registry: nothing decodes, and it says why
    assert "Confluent wire format (schema id" in proc.stderr and "a Schema Registry is needed" in proc.stderr
    proc = subprocess.run(command, env={**env, "RECO_SCHEMA_REGISTRY_URL": c.registry_url}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    restored = dict(zip(keys, c.store.mget(keys)))
    assert {k: json.loads(v) for k, v in restored.items()} == {k: json.loads(v) for k, v in before.items()}
    assert {k: json.loads(v) for k, v in zip(items, c.store.mget(items))} == \
        {k: json.loads(v) for k, v in items_before.items()}


def test_a_registry_refusing_the_password_stops_the_job_with_status_2(stack, tmp_path):
    """The real start (its JVM, Kafka's checks) against a registry that wants other credentials."""
    with MockRegistry(f"{USER}:another-password") as registry:
        env = {**child_environment(), "RECO_SCHEMA_REGISTRY_URL": registry.url.replace(
            "://", f"://{USER}:{urllib.parse.quote(PASSWORD, safe='')}@")}
        proc = subprocess.run(job_command(stack.bootstrap, uuid.uuid4().hex[:8], "--recommendations-wire-format",
                                          "confluent"), env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: the Schema Registry at http://reco-job:***@127.0.0.1:")
    assert f"refused the credentials for compatibility BACKWARD on subject {RECOMMENDATIONS}-value" in error
    assert "check the user and password in schema_registry_url" in error
    assert PASSWORD not in proc.stdout + proc.stderr
    assert urllib.parse.quote(PASSWORD, safe="") not in proc.stdout + proc.stderr
    assert [(c.method, c.path) for c in registry.calls] == [("PUT", f"/config/{RECOMMENDATIONS}-value")]
