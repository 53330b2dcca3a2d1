"""reco-refill (reco_tools/refill.py) against the stack's Kafka and Redis, run as a user runs
it (a subprocess, Redis URL in $RECO_REDIS_URL).

The topics are recreated empty and filled here with the job's record types: several versions
per user in committed transactions, an aborted transaction with higher versions, and a
transaction still open while the tool runs. Redis is flushed (a restart without persistence);
after the refill every user's document must be the newest committed record produced for
that user (computed here from what was produced), a key Redis holds in a newer version must
be untouched, and a second run must change nothing.
"""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.redis_store import REQUIRED_ACL
from reco_tools.kafka_io import make_producer
from reco_tools.topics import connect_admin, ensure_topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RECS = AvroCodec(contracts.TOPIC_RECORDS[contracts.RECOMMENDATIONS_TOPIC])
NEIGHBORS = AvroCodec(contracts.TOPIC_RECORDS[contracts.ITEM_NEIGHBORS_TOPIC])
USERS = range(1, 121)
ABORTED_USERS = (3, 4)       # a higher version of theirs is in an aborted transaction
ONLY_ABORTED_USER = 500      # appears in the aborted transaction only
OPEN_USER = 5                # a higher version of theirs is in a transaction still open during the run
ONLY_OPEN_USER = 600         # appears in the open transaction only
NEWER_USER = 7               # Redis already holds a newer version than any on the topic
ITEMS = range(1, 31)
TTL_MS = 3_600_000


def _recommendations(user: int, version: int) -> dict:
    """A reco.Recommendations record whose content tells its version apart."""
    return {"user_id": user, "version": version, "generated_at": 1_700_000_000_000 + version,
            "event_time": 1_600_000_000_000 + 1000 * version, "model_version": version % 3,
            "items": [{"item_id": 1000 + (user * 7 + version + i) % 97, "score": 1.0 / (i + 1 + version),
                       "reason": f"u{user} v{version} #{i}"} for i in range(1 + (user + version) % 5)]}


def _neighbors(item: int, event_time: int) -> dict:
    return {"item_id": item, "event_time": event_time, "item_count": item + event_time / 1e12,
            "neighbors": [{"item_id": 2000 + (item + event_time // 1000 + i) % 50, "score": 0.9 / (i + 1),
                           "co_count": float(i + item)} for i in range(1 + item % 4)]}


def _send(producer, topic: str, key: int, record: dict, codec: AvroCodec) -> None:
    producer.send(topic, key=contracts.record_key(key), value=codec.encode(record))


@pytest.fixture(scope="module")
def produced(stack):
    """Fills the freshly recreated topics; returns what a reader of committed records must see
    (the newest committed record per user and per item) and the producer holding the open
    transaction."""
    ensure_topics(stack.bootstrap, recreate=True)
    run = uuid.uuid4().hex[:8]
    committed: list[dict] = []
    # Versions per user: 1 to 4 of them, increasing but not consecutive, split over two
    # transactions so that a user's records sit in both.
    versions = {u: [10 * j + u % 7 for j in range(1, 2 + u % 4)] for u in USERS}
    producer = make_producer(stack.bootstrap, transactional_id=f"test-refill-{run}")
    producer.init_transactions()
    for half in (0, 1):
        producer.begin_transaction()
        for u in USERS:
            vs = versions[u]
            for v in (vs[:(len(vs) + 1) // 2] if half == 0 else vs[(len(vs) + 1) // 2:]):
                rec = _recommendations(u, v)
                _send(producer, contracts.RECOMMENDATIONS_TOPIC, u, rec, RECS)
                committed.append(rec)
        producer.commit_transaction()
    producer.begin_transaction()
    for u in (*ABORTED_USERS, ONLY_ABORTED_USER):
        _send(producer, contracts.RECOMMENDATIONS_TOPIC, u, _recommendations(u, 9_999), RECS)
    producer.flush()
    producer.abort_transaction()
    # item lists: a few bucket ends per item, in order of time as the job publishes them
    item_records = [_neighbors(i, 1_600_000_000_000 + 3_600_000 * b) for i in ITEMS
                    for b in ((1, 2, 3) if i % 2 else (1, 2))]
    producer.begin_transaction()
    for rec in item_records:
        _send(producer, contracts.ITEM_NEIGHBORS_TOPIC, rec["item_id"], rec, NEIGHBORS)
    producer.commit_transaction()
    producer.close()

    open_producer = make_producer(stack.bootstrap, transactional_id=f"test-refill-open-{run}")
    open_producer.init_transactions()
    open_producer.begin_transaction()
    open_records = [_recommendations(OPEN_USER, 5_000), _recommendations(ONLY_OPEN_USER, 6_000)]
    for rec in open_records:
        _send(open_producer, contracts.RECOMMENDATIONS_TOPIC, rec["user_id"], rec, RECS)
    open_producer.flush()      # on the broker, not committed: the last stable offset stays before it

    newest: dict[int, dict] = {}
    for rec in committed:
        if rec["user_id"] not in newest or rec["version"] > newest[rec["user_id"]]["version"]:
            newest[rec["user_id"]] = rec
    newest_items: dict[int, dict] = {}
    for rec in item_records:
        if rec["item_id"] not in newest_items or rec["event_time"] > newest_items[rec["item_id"]]["event_time"]:
            newest_items[rec["item_id"]] = rec
    try:
        yield {"committed": committed, "newest": newest, "newest_items": newest_items,
               "open_producer": open_producer, "open_records": open_records, "open_committed": False}
    finally:
        try:
            open_producer.abort_transaction()
        except Exception:
            pass                # committed by the test already
        open_producer.close()


def expected_lists(produced) -> dict[int, dict]:
    """The newest committed record per user as of now (the open transaction may have been
    committed by the first test)."""
    newest = dict(produced["newest"])
    if produced["open_committed"]:
        newest.update({r["user_id"]: r for r in produced["open_records"]})
    return newest


def _command(stack, *args, settle_s: float = 1.0) -> list[str]:
    # A transaction stays open through most of this module: waiting for it to end is the
    # last test's subject, the others wait a second.
    return [sys.executable, "-m", "reco_tools.refill", "--bootstrap", stack.bootstrap,
            "--settle-timeout", str(settle_s), *args]


def refill(stack, *args, redis_url=None, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "RECO_REDIS_URL": redis_url or stack.redis_url}
    return subprocess.run(_command(stack, *args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _counts(summary: str, topic: str) -> dict[str, int]:
    part = re.search(re.escape(topic) + r": ([^;]*)", summary).group(1)
    return {name.replace(" ", "_"): int(n.replace(",", "")) for n, name in
            re.findall(r"([\d,]+) (read|written|skipped as older|superseded|tombstones|undecodable)", part)}


def _snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    return {k: client.get(k) for k in client.scan_iter(match=f"{contracts.REDIS_PREFIX}:*", count=1000)}


def _doc(client: redis.Redis, key: str):
    raw = client.get(key)
    return None if raw is None else json.loads(raw)


def test_refill_restores_the_newest_committed_list_of_every_user_and_changes_nothing_on_a_second_run(
        stack, produced):
    client = redis.Redis.from_url(stack.redis_url)
    client.flushall()                                      # Redis restarted empty
    newer_key = contracts.user_recommendations_key(NEWER_USER)
    newer = json.dumps({"version": 1_000_000, "user_id": NEWER_USER, "items": [], "note": "written by the job"})
    client.set(newer_key, newer)                           # the running job got there first

    proc = refill(stack, "--ttl-ms", str(TTL_MS), "--progress", "1")
    counts = _counts(_ok(proc), contracts.RECOMMENDATIONS_TOPIC)

    newest = produced["newest"]
    for user, rec in newest.items():
        if user != NEWER_USER:
            assert _doc(client, contracts.user_recommendations_key(user)) == {**rec, "format": 1}, f"user {user}"
    # aborted and open transactions never reach Redis
    for user in ABORTED_USERS + (OPEN_USER,):
        assert newest[user]["version"] < 1000
    assert client.get(contracts.user_recommendations_key(ONLY_ABORTED_USER)) is None
    assert client.get(contracts.user_recommendations_key(ONLY_OPEN_USER)) is None
    # the newer key is untouched: value and (absent) TTL
    assert client.get(newer_key) == newer.encode() and client.pttl(newer_key) == -1
    # keys get the TTL asked for; nothing else was written (no item lists without --item-neighbors)
    keys = {k.decode() for k in client.scan_iter(match="*")}
    assert keys == {contracts.user_recommendations_key(u) for u in newest}
    assert all(0 < client.pttl(k) <= TTL_MS for k in keys - {newer_key})
    # the counts: every committed record read (none of the aborted or open ones); of each
    # user only the last written (so a reader never sees an older list come and go), but the
    # newer user's, skipped as older
    users = {r["user_id"] for r in produced["committed"]}
    assert NEWER_USER in users
    assert counts == {"read": len(produced["committed"]), "written": len(users) - 1, "skipped_as_older": 1,
                      "superseded": len(produced["committed"]) - len(users)}
    partitions_with_data = {int(p) for p in re.findall(
        re.escape(contracts.RECOMMENDATIONS_TOPIC) + r"\[(\d+)\]: end offset", proc.stderr)}
    assert len(partitions_with_data) >= 2, proc.stderr   # per partition end reached, on stderr

    # a second run changes nothing
    before = _snapshot(client)
    _ok(refill(stack, "--ttl-ms", str(TTL_MS)))
    assert _snapshot(client) == before

    # item lists only with --item-neighbors: versioned by their event time; user keys unchanged
    summary = _ok(refill(stack, "--ttl-ms", str(TTL_MS), "--item-neighbors"))
    for item, rec in produced["newest_items"].items():
        assert _doc(client, contracts.item_similar_key(item)) == {**rec, "version": rec["event_time"], "format": 1}
    item_counts = _counts(summary, contracts.ITEM_NEIGHBORS_TOPIC)
    assert item_counts["read"] == sum(3 if i % 2 else 2 for i in ITEMS)
    assert item_counts["superseded"] == sum(2 if i % 2 else 1 for i in ITEMS)
    assert {k: v for k, v in _snapshot(client).items() if b":user:" in k} == before

    # a run waits for the transactions open when it starts: this one commits meanwhile, as
    # the job's does at its next checkpoint, and its lists are in
    started = subprocess.Popen(_command(stack, "--ttl-ms", str(TTL_MS), settle_s=120), cwd=ROOT,
                               env={**os.environ, "RECO_REDIS_URL": stack.redis_url}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    said = []
    for line in started.stderr:   # until it has taken its end offsets and waits (or has ended)
        said.append(line)
        if "for the transactions open now to end" in line:
            break
    assert said and "for the transactions open now to end" in said[-1], "".join(said)
    produced["open_producer"].commit_transaction()
    produced["open_committed"] = True
    out, err = started.communicate(timeout=120)
    err = "".join(said) + err
    assert started.returncode == 0, err
    for rec in produced["open_records"]:
        assert _doc(client, contracts.user_recommendations_key(rec["user_id"])) == {**rec, "format": 1}, err


def test_the_jobs_acl_is_enough_for_the_refill(stack, produced):
    # Its pipelined upserts need no more than the job's (EVALSHA, and SCRIPT LOAD on a server
    # that forgot the script: flushed here); its password is never shown.
    client = redis.Redis.from_url(stack.redis_url)
    client.flushall()
    client.script_flush()
    user, password = f"refill-{uuid.uuid4().hex[:6]}", "pw-" + uuid.uuid4().hex
    client.execute_command("ACL", "SETUSER", user, "on", f">{password}", *REQUIRED_ACL.split())
    try:
        proc = refill(stack, redis_url=stack.redis_url.replace("redis://", f"redis://{user}:{password}@"))
        _ok(proc)
        assert password not in proc.stdout + proc.stderr
        expected = expected_lists(produced)
        for u, rec in expected.items():
            assert _doc(client, contracts.user_recommendations_key(u)) == {**rec, "format": 1}, f"user {u}"
        assert len(list(client.scan_iter(match="*"))) == len(expected)
    finally:
        client.execute_command("ACL", "DELUSER", user)


def test_unreachable_kafka_or_redis_and_a_missing_topic_fail_with_a_clear_message(stack, produced):
    proc = refill(stack, "--stall-timeout", "10", redis_url="redis://someone:hush-hush@127.0.0.1:1/0")
    assert proc.returncode == 2
    assert "cannot reach Redis at redis://someone:***@127.0.0.1:1/0" in proc.stderr
    assert "hush-hush" not in proc.stdout + proc.stderr

    proc = subprocess.run([sys.executable, "-m", "reco_tools.refill", "--bootstrap", "127.0.0.1:1"], cwd=ROOT,
                          env={**os.environ, "RECO_REDIS_URL": stack.redis_url},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot reach Kafka at 127.0.0.1:1" in proc.stderr, proc.stderr

    admin = connect_admin(stack.bootstrap)
    try:
        admin.delete_topics([contracts.ITEM_NEIGHBORS_TOPIC])
        proc = refill(stack, "--item-neighbors")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"topic {contracts.ITEM_NEIGHBORS_TOPIC} does not exist" in proc.stderr
        assert contracts.ITEM_NEIGHBORS_TOPIC not in admin.list_topics()   # not auto-created by asking
    finally:
        admin.close()
        ensure_topics(stack.bootstrap)
