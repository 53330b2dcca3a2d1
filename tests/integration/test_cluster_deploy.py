"""The job on the standalone cluster of deploy/flink/cluster.sh, submitted with `flink run`
as in production:

- its own counters on the cluster's Prometheus endpoint (README "Monitoring");
- an upgrade through a savepoint: `flink stop --savepointPath`, then the job resumed from
  it with other settings (top_n, interest_weight, and a new consumer group, so that only
  the savepoint can say where the source was), with every state intact: the next list of
  a user gets the next version, and no event is read twice.

Slow (a cluster, a job, a savepoint and a second job: 2-3 minutes here). Own ports:
RECO_TEST_FLINK_REST_PORT (28181), RECO_TEST_FLINK_RPC_PORT (26223), RECO_TEST_FLINK_PROM_PORT
(28249, and the nine above it).
"""

import json
import os
import re
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from lab.flinkcluster import FlinkCluster
from reco_tools.kafka_io import consume, event_message, make_consumer, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics
from lab.jobs import committed_versions
from lab.oracle import expected_versions
from lab.wait import wait_for

pytestmark = pytest.mark.integration
REST_PORT = int(os.environ.get("RECO_TEST_FLINK_REST_PORT", "28181"))
RPC_PORT = int(os.environ.get("RECO_TEST_FLINK_RPC_PORT", "26223"))
PROM_PORT = int(os.environ.get("RECO_TEST_FLINK_PROM_PORT", "28249"))
EVENTS = AvroCodec("reco.UserEvent")
MINUTE = 60_000
PARTITIONS = 4                     # the stack's events topic (RECO_EVENT_PARTITIONS default)
ADVANCE_USERS = [900_000 + p for p in range(PARTITIONS)]   # one event on each partition
LATE_USER = 910_000
# The job's metrics (flink_jobs/operators.py DecodeEvents and Ranker, publish.py Publish).
COUNTERS = ("eventsValid", "eventsDeadLettered", "eventsLate", "recommendationsEmitted", "redisWrites",
            "redisRetries")


def _flags(stack, run_id: str, group: str, top_n: int, interest_weight: float) -> list[str]:
    return ["--kafka-bootstrap", stack.bootstrap, "--redis-url", stack.redis_url,
            "--consumer-group", group, "--transactional-id-prefix", f"deploy-{run_id}",
            "--parallelism", "2", "--checkpoint-interval-ms", "2000",
            "--top-n", str(top_n), "--interest-weight", str(interest_weight),
            "--bucket-ms", str(MINUTE), "--cooccurrence-window-ms", str(10 * MINUTE),
            "--max-out-of-orderness-ms", "1000"]


@pytest.fixture(scope="module")
def cluster(stack):
    """The standalone cluster on its own ports and run directory, stopped at the end."""
    with FlinkCluster(REST_PORT, Path(stack.env["RECO_RUN_DIR"]) / "deploy-cluster",
                      say=lambda msg: print(f"[cluster] {msg}", flush=True),
                      env={**stack.env, "RECO_FLINK_RPC_PORT": str(RPC_PORT),
                           "RECO_FLINK_PROM_PORT": str(PROM_PORT)}).running() as cluster:
        yield cluster


def _latest(store, user: int):
    raw = store.get(contracts.user_recommendations_key(user))
    return json.loads(raw) if raw else None


def _watermarks(cluster: FlinkCluster, job_id: str, vertex_name: str) -> list[int]:
    vertex = next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if vertex_name in v["name"])
    marks = cluster.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks")
    return [int(m["value"]) for m in marks if m["id"].endswith("currentInputWatermark")]


@pytest.fixture(scope="module")
def running_job(stack, cluster):
    """The job on the cluster with warm-up events, one malformed record, one event per
    partition that moves event time on, then one late event; every list and dead letter in."""
    ensure_topics(stack.bootstrap, recreate=True)
    store = redis.Redis.from_url(stack.redis_url)
    store.flushdb()
    run_id = uuid.uuid4().hex[:8]
    synth = Synth(SynthConfig(events=300, users=25, items=60, clusters=4, seed=21))
    warmup = sorted(synth.events(), key=lambda e: e["event_time"])
    t_max = warmup[-1]["event_time"]
    advance_t = t_max + 5 * MINUTE
    advance = [{"event_id": f"advance-{u}", "user_id": u, "item_id": 1 + p, "event_type": "PURCHASE",
                "value": None, "event_time": advance_t} for p, u in enumerate(ADVANCE_USERS)]
    late = {"event_id": "late-1", "user_id": LATE_USER, "item_id": 2, "event_type": "VIEW", "value": None,
            "event_time": t_max - 2 * MINUTE}
    producer = make_producer(stack.bootstrap)
    produce_catalog(producer, synth.catalog(), progress=False)
    cluster.ensure_taskmanager()
    job_id = cluster.submit(_flags(stack, run_id, f"deploy-{run_id}", top_n=5, interest_weight=0.2))
    try:
        # flink run's Python client asked Kafka for the partitions (kafka_tables.require_event_topic)
        client_logs = "".join(f.read_text() for f in (cluster.run_dir / "flink" / "log").glob("*client*.log"))
        assert f"{contracts.USER_EVENTS_TOPIC} has {PARTITIONS} partition(s) for parallelism 2" in client_logs
        cluster.wait_running(job_id, timeout_s=240)
        produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in warmup), progress=False)
        producer.send(contracts.USER_EVENTS_TOPIC, key=b"1", value=b"\xc3\x01not avro", timestamp_ms=t_max)
        for p, event in enumerate(advance):   # each partition's event time moves past the late event's bucket
            key, value, ts = event_message(EVENTS, event)
            producer.send(contracts.USER_EVENTS_TOPIC, key=key, value=value, timestamp_ms=ts, partition=p)
        producer.flush()
        finals = {u: v[-1] for u, v in expected_versions(warmup + advance).items()}

        def all_lists():
            docs = store.mget([contracts.user_recommendations_key(u) for u in finals])
            return all(d is not None and json.loads(d)["version"] == finals[u] for u, d in zip(finals, docs))
        wait_for(all_lists, 240, "every user's last list in Redis", poll_s=1)
        wait_for(lambda: min(_watermarks(cluster, job_id, "UserActivity") or [0]) >= advance_t - 1_001,
                 120, "event time to reach the advance events", poll_s=1)
        key, value, ts = event_message(EVENTS, late)
        producer.send(contracts.USER_EVENTS_TOPIC, key=key, value=value, timestamp_ms=ts).get(timeout=10)
        producer.flush()
        letters = AvroCodec("reco.DeadLetter")

        def dead_letters():
            consumer = make_consumer(stack.bootstrap, contracts.DEAD_LETTER_TOPIC)
            try:
                found = [letters.decode(r.value) for r in consume(consumer, idle_timeout_s=2)]
            finally:
                consumer.close()
            return found if len(found) >= 2 else None
        found = wait_for(dead_letters, 120, "the malformed and the late record in the dead-letter topic", poll_s=1)
        reasons = sorted(f["reason"] for f in found)
        assert len(reasons) == 2 and reasons[0].startswith("late: ") and reasons[1].startswith("unknown writer"), found
        yield {"job_id": job_id, "run_id": run_id, "store": store, "producer": producer, "warmup": warmup,
               "advance": advance, "late": late, "dead_letters": len(found)}
    finally:
        producer.close()
        for job in cluster.rest("/jobs")["jobs"]:
            if job["status"] in ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING"):
                cluster.cancel(job["id"])


def _scrape() -> dict[str, float]:
    """Each metric of the job's Python operators, summed over the cluster's processes and subtasks."""
    totals: dict[str, float] = defaultdict(float)
    answered = 0
    for port in range(PROM_PORT, PROM_PORT + 10):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            continue
        answered += 1
        for line in text.splitlines():
            match = re.match(r"flink_taskmanager_job_task_operator_(\w+)\{[^}]*\} (\S+)$", line)
            if match:
                totals[match.group(1)] += float(match.group(2))
    assert answered >= 2, f"expected the JobManager's and a TaskManager's endpoint on {PROM_PORT}-{PROM_PORT + 9}"
    return totals


def test_prometheus_endpoint_shows_the_jobs_own_counters(running_job):
    valid = len(running_job["warmup"]) + len(running_job["advance"])

    def counted():
        totals = _scrape()
        return totals if all(c in totals for c in COUNTERS) and totals["eventsValid"] >= valid else None
    try:
        totals = wait_for(counted, 60, "the job's counters on the Prometheus endpoint", poll_s=2)
    except BaseException:
        print(sorted(_scrape()))
        raise
    print("\n" + "\n".join(f"  {c} = {totals[c]:.0f}" for c in COUNTERS))
    assert totals["eventsValid"] == valid
    assert totals["eventsDeadLettered"] == 2 and totals["eventsLate"] == 1
    assert totals["recommendationsEmitted"] == valid           # one list per valid event (debounce off)
    # a user's lists of one bundle are one write (its last): at least one per user
    assert totals["redisWrites"] >= len({e["user_id"] for e in running_job["warmup"] + running_job["advance"]})
    assert totals["redisRetries"] == 0
    for breach in ("bucketsFlushedLate", "deltasLate"):        # counted only when one happens
        assert totals.get(breach, 0) == 0


def test_an_upgrade_through_a_savepoint_keeps_every_state(stack, cluster, running_job, tmp_path):
    store, producer = running_job["store"], running_job["producer"]
    events = running_job["warmup"] + running_job["advance"]
    user, t = ADVANCE_USERS[0], running_job["advance"][0]["event_time"]
    before = _latest(store, user)
    assert before["version"] == t * 1024 and len(before["items"]) <= 5

    savepoint = cluster.stop_with_savepoint(running_job["job_id"], tmp_path / "savepoints")
    print(f"\nsavepoint: {savepoint}")
    # The new job: other list settings, and a consumer group with no offsets, so the source's
    # position can come from the savepoint only (else: the earliest offset, every event again).
    run_id = running_job["run_id"]
    cluster.ensure_taskmanager()
    resumed = cluster.submit(_flags(stack, run_id, f"deploy-{run_id}-after", top_n=8, interest_weight=0.6),
                             from_checkpoint=savepoint)
    try:
        cluster.wait_running(resumed, timeout_s=240)
        # the same user at the same event time: only the restored version makes it previous + 1
        again = {"event_id": "after-upgrade", "user_id": user, "item_id": 3, "event_type": "PURCHASE",
                 "value": None, "event_time": t}
        produce(producer, contracts.USER_EVENTS_TOPIC, [event_message(EVENTS, again)], progress=False)
        after = wait_for(lambda: (lambda d: d if d and d["version"] > before["version"] else None)(
            _latest(store, user)), 120, f"user {user}'s next list", poll_s=0.5)
        assert after["version"] == before["version"] + 1, "the user's state was not restored"
        assert 5 < len(after["items"]) <= 8, "the new top_n did not apply"
        expected = expected_versions(events + [again])

        def committed():
            got = {u: sorted(v) for u, v in committed_versions(stack.bootstrap).items()}
            return got if got.get(user, [])[-1:] == [after["version"]] else None
        versions = wait_for(committed, 120, "the new list committed to Kafka", poll_s=1)
        # Every list exactly once, before and after: nothing re-read, nothing lost.
        assert versions == expected
        assert cluster.rest(f"/jobs/{resumed}")["state"] == "RUNNING"
        consumer = make_consumer(stack.bootstrap, contracts.DEAD_LETTER_TOPIC)
        try:
            assert len(list(consume(consumer, idle_timeout_s=2))) == running_job["dead_letters"]
        finally:
            consumer.close()
    finally:
        cluster.cancel(resumed)
