"""The job on the local Flink mini-cluster against the real Kafka broker and Redis."""

import json
import time
import uuid

import pytest
import redis
from jsonschema import Draft202012Validator

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.documents import DOCUMENTS
from lab.jobs import committed_version, start_job
from lab.wait import wait_for
from reco_tools.doc_schemas import json_path
from reco_tools.kafka_io import consume, event_message, make_consumer, make_producer, produce, produce_catalog
from lab.oracle import expected_versions
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics
from schemas import SCHEMA_DIR
from udfs.versioning import next_version

pytestmark = pytest.mark.integration
EVENTS = AvroCodec("reco.UserEvent")


@pytest.fixture(scope="module")
def live_job(stack, tmp_path_factory):
    ensure_topics(stack.bootstrap, recreate=True)
    store = redis.Redis.from_url(stack.redis_url)
    store.flushdb()
    synth = Synth(SynthConfig(events=400, users=30, items=80, clusters=4, seed=9))
    warmup = sorted(synth.events(), key=lambda e: e["event_time"])
    producer = make_producer(stack.bootstrap)
    produce_catalog(producer, synth.catalog(), progress=False)
    produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in warmup), progress=False)
    # One-minute buckets: the warm-up (under three minutes of event time) closes two, so item
    # lists and trending reach Redis as well as the users' lists.
    job = start_job(stack.bootstrap, stack.redis_url, uuid.uuid4().hex[:8], tmp_path_factory.mktemp("job"),
                    "--parallelism", "2", "--checkpoint-interval-ms", "2000", "--top-n", "5", "--bucket-ms", "60000")
    try:
        finals = {u: v[-1] for u, v in expected_versions(warmup).items()}

        def caught_up():
            job.check_alive()
            docs = store.mget([contracts.user_recommendations_key(u) for u in finals])
            return all(d is not None and json.loads(d)["version"] == finals[u] for u, d in zip(finals, docs))
        wait_for(caught_up, 240, "the job to answer every warm-up event")
        yield stack, store, producer, warmup, job
    finally:
        producer.close()
        job.stop()


def test_a_new_event_changes_redis_and_a_committed_kafka_record(live_job):
    stack, store, producer, warmup, job = live_job
    user = warmup[len(warmup) // 2]["user_id"]
    history = [e for e in warmup if e["user_id"] == user]
    version = expected_versions(warmup)[user][-1]
    key = contracts.user_recommendations_key(user)
    before = json.loads(store.get(key))
    assert before["version"] == version

    t = warmup[-1]["event_time"] + 1_000
    event = {"event_id": "live-1", "user_id": user, "item_id": history[-1]["item_id"] % 80 + 1,
             "event_type": "PURCHASE", "value": None, "event_time": t}
    produce(producer, contracts.USER_EVENTS_TOPIC, [event_message(EVENTS, event)], progress=False)
    expected = next_version(version, t)
    sent = time.monotonic()
    after = wait_for(lambda: (lambda raw: raw and json.loads(raw)["version"] == expected and json.loads(raw))(
        store.get(key)), 60, f"{key} to reach version {expected}")
    latency = time.monotonic() - sent
    print(f"\nRedis reflected the new event after {latency:.2f}s")
    assert after["event_time"] == t
    assert event["item_id"] not in {i["item_id"] for i in after["items"]}  # just consumed

    assert committed_version(stack.bootstrap, user, expected, 60)
    codec = AvroCodec("reco.Recommendations")
    consumer = make_consumer(stack.bootstrap, contracts.RECOMMENDATIONS_TOPIC)
    records = [codec.decode(r.value) for r in consume(consumer, idle_timeout_s=3)
               if r.key == contracts.record_key(user)]
    consumer.close()
    committed = [r for r in records if r["version"] == expected]
    assert len(committed) == 1
    assert committed[0]["items"] == after["items"]
    versions = [r["version"] for r in records]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_a_malformed_record_goes_to_the_dead_letter_topic_and_the_job_goes_on(live_job):
    stack, store, producer, warmup, job = live_job
    garbage = b"\xc3\x01not an avro body at all"
    future = producer.send(contracts.USER_EVENTS_TOPIC, key=b"1", value=garbage,
                           timestamp_ms=warmup[-1]["event_time"] + 2_000)
    meta = future.get(timeout=10)
    producer.flush()
    dead = AvroCodec("reco.DeadLetter")
    consumer = make_consumer(stack.bootstrap, contracts.DEAD_LETTER_TOPIC)

    def letter():
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                if dead.decode(r.value)["payload"] == garbage:
                    return dead.decode(r.value)
    found = wait_for(letter, 60, "the dead letter", poll_s=0)
    consumer.close()
    assert found["source_topic"] == contracts.USER_EVENTS_TOPIC
    assert (found["source_partition"], found["source_offset"]) == (meta.partition, meta.offset)
    assert "unknown writer schema fingerprint" in found["reason"]
    assert job.poll() is None  # still running


def test_the_documents_in_redis_match_their_json_schemas(live_job):
    """What the job wrote, read back from Redis, against schemas/json (reco_tools/doc_schemas.py)."""
    stack, store, producer, warmup, job = live_job
    kinds = {kind.name: kind for kind in DOCUMENTS}
    similar_pattern = kinds["similar"].key.format(item_id="*")
    similar = wait_for(lambda: store.get(contracts.TRENDING_KEY) and sorted(store.scan_iter(match=similar_pattern)),
                       60, "item lists and trending in Redis")
    keys = {"user": [contracts.user_recommendations_key(u) for u in sorted({e["user_id"] for e in warmup})],
            "similar": [k.decode() for k in similar], "trending": [contracts.TRENDING_KEY]}
    problems = []
    for name, names in keys.items():
        validator = Draft202012Validator(json.loads((SCHEMA_DIR / json_path(kinds[name])).read_text()))
        for key, raw in zip(names, store.mget(names)):
            assert raw is not None, f"{key} is gone"
            problems += [f"{key}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                         for e in validator.iter_errors(json.loads(raw))]
    assert problems == [], problems[:5]
