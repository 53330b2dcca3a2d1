import uuid

import pytest
from kafka.admin import NewTopic

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from reco_tools.kafka_io import consume, make_consumer, make_producer
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import connect_admin

pytestmark = pytest.mark.integration


def test_stack_created_every_topic(stack):
    admin = connect_admin(stack.bootstrap)
    try:
        assert {s.name for s in contracts.topic_specs()} <= set(admin.list_topics())
    finally:
        admin.close()


def test_thousand_events_round_trip_read_committed_byte_exact(stack):
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = connect_admin(stack.bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()

    codec = AvroCodec("reco.UserEvent")
    events = list(Synth(SynthConfig(events=1000, seed=11)).events())
    committed = [(contracts.record_key(e["user_id"]), codec.encode(e)) for e in events]
    aborted = [(b"0", codec.encode({**e, "event_id": "aborted"})) for e in events[:100]]

    producer = make_producer(stack.bootstrap, transactional_id=f"test-{topic}")
    producer.init_transactions()
    producer.begin_transaction()
    for key, value in committed[:500]:
        producer.send(topic, key=key, value=value)
    producer.commit_transaction()
    producer.begin_transaction()
    for key, value in aborted:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    for key, value in committed[500:]:
        producer.send(topic, key=key, value=value)
    producer.commit_transaction()
    producer.close()

    consumer = make_consumer(stack.bootstrap, topic)
    got = [(r.key, r.value, r.partition) for r in consume(consumer, idle_timeout_s=5, max_records=2000)]
    consumer.close()

    assert len(got) == 1000  # the aborted 100 are invisible to read_committed
    assert sorted((k, v) for k, v, _ in got) == sorted(committed)
    # per key, order is the produced order (one user, one partition)
    for key in {k for k, _ in committed}:
        assert [v for k, v, _ in got if k == key] == [v for k, v in committed if k == key]
        assert len({p for k, _, p in got if k == key}) == 1
    assert sorted((codec.decode(v) for _, v, _ in got), key=lambda e: e["event_id"]) == \
        sorted(events, key=lambda e: e["event_id"])


def test_the_broker_refuses_an_event_stamped_far_ahead_of_its_clock(stack):
    # The job's event time follows record timestamps: the events topic must not take one
    # from the far future (contracts: message.timestamp.after.max.ms, one hour).
    import time

    from reco_tools.topics import ensure_topics

    ensure_topics(stack.bootstrap, recreate=True)   # with the configs of now
    producer = make_producer(stack.bootstrap)
    now = int(time.time() * 1000)
    try:
        producer.send(contracts.USER_EVENTS_TOPIC, key=b"1", value=b"x", timestamp_ms=now - 86_400_000).get(30)
        with pytest.raises(Exception, match="(?i)timestamp"):
            producer.send(contracts.USER_EVENTS_TOPIC, key=b"1", value=b"x",
                          timestamp_ms=now + 2 * 3_600_000).get(30)
    finally:
        producer.close()
