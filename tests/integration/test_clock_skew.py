"""Record timestamps ahead of the clock cannot move the job's event time ahead, and the
catalog's source does not hold it back.

One record per partition stamped 59 minutes ahead (the events topic accepts up to an
hour), its payload honest, then a minute's worth of honest live traffic: event time must
stay with the clock, so none of the honest events is late and every user's last list
arrives. Without the clamp (event time from record timestamps alone) the watermark jumps
59 minutes and every honest event after it is dead-lettered as late.
"""

import json
import time
import uuid

import pytest
import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from reco_tools.kafka_io import consume, make_consumer, make_producer, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics
from lab.jobs import MiniClusterRest, start_job, wait_until_consuming
from lab.oracle import expected_versions
from lab.wait import wait_for

pytestmark = pytest.mark.integration
EVENTS = AvroCodec("reco.UserEvent")
PARTITIONS = 4
AHEAD_MS = 59 * 60_000
FLAGS = ["--parallelism", "2", "--bucket-ms", "10000", "--checkpoint-interval-ms", "2000"]


def test_records_stamped_ahead_of_the_clock_do_not_make_honest_events_late(stack, tmp_path):
    ensure_topics(stack.bootstrap, event_partitions=PARTITIONS, recreate=True)
    store = redis.Redis.from_url(stack.redis_url)
    store.flushdb()
    producer = make_producer(stack.bootstrap)
    produce_catalog(producer, Synth(SynthConfig(items=20, clusters=4)).catalog(), progress=False)
    producer.flush()
    job = start_job(stack.bootstrap, stack.redis_url, uuid.uuid4().hex[:8], tmp_path, *FLAGS)
    try:
        wait_until_consuming(stack.bootstrap, job, 240)
        events = []

        def send(user, item, partition, ahead_ms=0):
            now = int(time.time() * 1000)
            e = {"event_id": f"e-{len(events)}", "user_id": user, "item_id": item, "event_type": "VIEW",
                 "value": None, "event_time": now}
            producer.send(contracts.USER_EVENTS_TOPIC, key=contracts.record_key(user), value=EVENTS.encode(e),
                          partition=partition, timestamp_ms=now + ahead_ms).get(timeout=30)
            events.append(e)
        for p in range(PARTITIONS):   # a fast clock on every partition: the watermark's minimum moves too
            send(100 + p, 1, p, ahead_ms=AHEAD_MS)
        for k in range(60):           # then a minute of honest traffic, a second apart
            send(1 + k % 10, 1 + k % 20, k % PARTITIONS)
            time.sleep(1.0)
        producer.close()

        finals = {u: v[-1] for u, v in expected_versions(events).items()}

        def every_list():
            job.check_alive()
            docs = store.mget([contracts.user_recommendations_key(u) for u in finals])
            return all(d is not None and json.loads(d)["version"] == finals[u] for u, d in zip(finals, docs))
        rest = MiniClusterRest(job)
        try:
            wait_for(every_list, 120, f"the last list of each of {len(finals)} users", poll_s=2)
            # trending is ranked at bucket ends by an operator the catalog also feeds: event time
            # reaches it only if the catalog's source does not hold it back
            first_end = events[PARTITIONS]["event_time"] // 10_000 * 10_000 + 10_000
            trending = wait_for(lambda: (lambda raw: raw and json.loads(raw))(store.get(contracts.TRENDING_KEY)),
                                60, "a trending list in Redis", poll_s=1)
        finally:
            late = rest.operator_metric("eventsLate")
        consumer = make_consumer(stack.bootstrap, contracts.DEAD_LETTER_TOPIC)
        letters = [AvroCodec("reco.DeadLetter").decode(r.value)["reason"] for r in consume(consumer, idle_timeout_s=3)]
        consumer.close()
    finally:
        job.stop()
    assert late == 0 and letters == [], (late, letters[:3])
    assert trending["version"] >= first_end and {i["item_id"] for i in trending["items"]} <= set(range(1, 21))
