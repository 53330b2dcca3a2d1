"""Exactly-once under failure: stream events through Kafka while the job runs on the
standalone cluster, kill -9 the TaskManager (and its Python workers) at random moments,
cancel the job once and resume it from its last retained checkpoint, stop and start the
Kafka broker, and restart Redis empty (no persistence, as the local stack runs it) and
repair it with ``reco-refill``; then check the committed outputs against what the events
imply (``lab.oracle``).

At the end the job is restarted once more from a checkpoint that holds every input, and
each user gets one closing event that moves no watermark: its list is ranked from the
neighbor lists and trending already committed, so its contents are known exactly.

    python -m lab.chaos --events 20000 --kills 2 --seed 7

Needs the local stack (``deploy/local/stack.sh start``) and the cluster
(``deploy/flink/cluster.sh start``) on the same RECO_* settings. Prints a verdict table;
exits 0 only when every check holds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.config import JobConfig
from lab.flinkcluster import ROOT, FlinkCluster
from lab.wait import WaitTimeout, wait_for
from reco_tools.kafka_io import consume, make_consumer, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig, encoded_stream, event_message
from reco_tools.topics import ensure_topics
from lab.oracle import (batch_own, batch_pairs, expected_neighbor_list, expected_top, expected_trending,
                               expected_versions, expected_windows, surely_unpruned, top_differences,
                               ttl_ambiguous, unexplained_scores, window_counts, window_own_counts)

# Settings of the job under test: the production defaults (pruning to M neighbors, 5 s of
# out-of-orderness) except shorter buckets, window and checkpoint interval, so that a few
# minutes of streaming publish many lists and commit often.
JOB = JobConfig(checkpoint_interval_ms=3_000, bucket_ms=5 * 60_000, cooccurrence_window_ms=3_600_000)
# A published list then holds every count the ranker holds for the item (at most M of them,
# K published), so the lists can be rescored from what was committed.
assert JOB.neighbors_per_item <= JOB.fragment_size


@dataclass
class Scenario:
    events: int = 20_000
    kills: int = 2
    seed: int = 7
    rate: float = 250.0          # events/s produced while the job runs
    malformed_every: int = 1_000
    bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    rest_port: int = 8081
    run_dir: Path = ROOT / ".run"
    delivery_guarantee: str = "exactly-once"   # at-least-once shows what the checks catch
    redis_write: str = "versioned"             # unconditional shows what the checks catch
    python_execution_mode: str = "process"     # thread: wants TaskManagers of one slot each (cluster.sh)
    timeout_s: float = 900.0
    dump: Path | None = None                   # where to write the valid events and published lists (JSON)
    stack_env: dict | None = None              # the RECO_* settings of the stack (default: this environment)
    restarts: bool = True                      # also restart the broker and (empty) Redis mid-stream
    log: list = field(default_factory=list)
    started: int = field(default_factory=lambda: int(time.time()))   # names this run's consumer group and transactions

    def say(self, msg: str) -> None:
        line = f"[chaos {time.strftime('%H:%M:%S')}] {msg}"
        self.log.append(line)
        print(line, flush=True)


def _cluster(s: Scenario) -> FlinkCluster:
    return FlinkCluster(s.rest_port, s.run_dir, say=s.say)


def _submit(s: Scenario, from_checkpoint: str | None = None) -> str:
    run_id = f"{s.seed}-{s.started}"
    flags = ["--kafka-bootstrap", s.bootstrap, "--redis-url", s.redis_url,
             "--consumer-group", f"chaos-{run_id}", "--transactional-id-prefix", f"chaos-{run_id}",
             "--delivery-guarantee", s.delivery_guarantee, "--redis-write", s.redis_write,
             "--python-execution-mode", s.python_execution_mode]
    for f in fields(JobConfig):   # every setting JOB changes
        if getattr(JOB, f.name) != f.default:
            flags += [f"--{f.name.replace('_', '-')}", str(getattr(JOB, f.name))]
    return _cluster(s).submit(flags, from_checkpoint)


# Held while the scenario kills and restarts the TaskManager, so the supervisor does not
# start one of its own in between.
_TASKMANAGERS = threading.Lock()


def _kill_taskmanager(s: Scenario) -> None:
    cluster = _cluster(s)
    with _TASKMANAGERS:
        cluster.ensure_taskmanager()
        s.say(cluster.script("kill-taskmanager").strip().removeprefix("[flink] "))
        cluster.script("start-taskmanager")
    s.say("new TaskManager registered")


class TaskManagerSupervisor(threading.Thread):
    """Starts the TaskManagers missing, as systemd or Kubernetes would: with RocksDB,
    PyFlink 2.2.1's TaskManager can die while a cancelled job's tasks close
    (docs/operations.md "Known problems"), and the resumed job then waits for slots until
    its bounded restarts run out."""

    def __init__(self, s: Scenario):
        super().__init__(daemon=True)
        self.s, self.done = s, threading.Event()

    def run(self) -> None:
        cluster = _cluster(self.s)
        while not self.done.wait(1.0):
            with _TASKMANAGERS:
                try:
                    cluster.ensure_taskmanager()
                except Exception as exc:  # noqa: BLE001 (the scenario's checks say what followed)
                    self.s.say(f"supervisor could not start a TaskManager: {exc!r}")

    def stop(self) -> None:
        self.done.set()
        self.join()


STACK = ROOT / "deploy" / "local" / "stack.sh"


def _stack(s: Scenario, *args: str) -> None:
    env = s.stack_env if s.stack_env is not None else dict(os.environ)
    proc = subprocess.run([str(STACK), *args], env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"stack.sh {' '.join(args)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")


def _restart_broker(s: Scenario) -> None:
    _stack(s, "stop", "kafka")
    s.say("Kafka broker stopped")
    time.sleep(3)
    _stack(s, "start", "kafka")
    s.say("Kafka broker started again")


def _lose_redis(s: Scenario, cluster: FlinkCluster, job: list[str], watcher: "RedisWatcher") -> None:
    """Restart Redis empty, then repair it from the committed lists once everything the job
    had written before the loss is committed: by a checkpoint triggered after the loss (its
    barrier follows every record the job had taken in by then).

    What readers saw before the loss is gone with it: a list the job wrote ahead of its
    commits (a replay after a failure not yet caught up) comes back from the topic in the
    last committed version first, and moves forward again as the replay does. So the
    watcher starts afresh: Redis must never go back between losses."""
    lost_ms = int(time.time() * 1000)
    _stack(s, "stop", "redis")
    watcher.forget()
    _stack(s, "start", "redis")
    s.say("Redis restarted empty")

    def committed_since_loss():
        latest = cluster.rest(f"/jobs/{job[-1]}/checkpoints").get("latest", {}).get("completed")
        return latest is not None and latest["trigger_timestamp"] > lost_ms
    wait_for(committed_since_loss, 180, f"a checkpoint of job {job[-1]} triggered after Redis was lost", poll_s=0.5)
    env = {**os.environ, "RECO_REDIS_URL": s.redis_url}
    proc = subprocess.run([sys.executable, "-m", "reco_tools.refill", "--bootstrap", s.bootstrap, "--item-neighbors",
                           "--progress", "60"], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"reco-refill failed ({proc.returncode}): {proc.stderr[-2000:]}")
    s.say(f"Redis refilled: {proc.stdout.strip()}")


class RedisWatcher(threading.Thread):
    """Polls the users' Redis keys while the job runs and counts every time a key is seen
    holding an older version than it held before: what a frontend would show as a list
    going back in time (a replay after a restore written without the version check).
    While Redis is down (a planned restart) the polls that fail are counted, not errors."""

    def __init__(self, url: str, users: list[int], every_s: float = 0.1):
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.keys = [contracts.user_recommendations_key(u) for u in users]
        self.every_s = every_s
        self.highest: dict[str, int] = {}
        self.regressed: set[str] = set()
        self.examples: list[str] = []      # the first few keys seen going back: when, from what, to what
        self.polls = self.unreachable = 0
        self.error: BaseException | None = None   # a watcher that died has watched nothing
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.is_set():
                try:
                    values = self.client.mget(self.keys)
                except redis.ConnectionError:
                    self.unreachable += 1
                    self.done.wait(self.every_s)
                    continue
                for key, raw in zip(self.keys, values):
                    if raw is not None:
                        version = json.loads(raw)["version"]
                        if version < self.highest.get(key, version):
                            if key not in self.regressed and len(self.examples) < 5:
                                self.examples.append(f"{key} at {time.strftime('%H:%M:%S')}: "
                                                     f"{self.highest[key]} -> {version}")
                            self.regressed.add(key)
                        self.highest[key] = max(version, self.highest.get(key, version))
                self.polls += 1
                self.done.wait(self.every_s)
        except BaseException as exc:  # noqa: BLE001 (reported by the check)
            self.error = exc

    def forget(self) -> None:
        """Start afresh (Redis lost its data): what was seen before no longer binds."""
        self.highest = {}

    def stop(self) -> None:
        self.done.set()
        self.join()


# The verdict's checks: id -> what must hold.
CHECKS = {
    "increasing": "versions strictly increasing, no duplicates",
    "same-versions": "same versions as a failure-free run",
    "cooccurrence": "co-occurrence lists equal a batch recount, once each",
    "complete": "every co-occurrence list due was published",
    "scores": "published scores are similarities of published counts",
    "redis-items": "Redis item lists equal the last committed ones",
    "redis-trending": "Redis trending equals a batch recount",
    "redis-equals-kafka": "Redis equals the last committed Kafka record",
    "redis-never-back": "Redis never went back to an older version (between losses)",
    "last-lists": "each user's last list, ranked from the committed lists",
    "dead-letters": "dead letters are exactly the malformed records",
}


def run(s: Scenario) -> dict[str, bool]:
    """The scenario, then the checks: {check id: held}. Cancels its job however it ends."""
    synth = Synth(SynthConfig(events=s.events, users=max(50, s.events // 40), items=max(50, s.events // 50),
                              clusters=10, seed=s.seed))
    # in time order (stable: a malformed record stays after the event before it), so that
    # no event is late at 5 s of out-of-orderness: which ones would be depends on timing
    rows = sorted(encoded_stream(synth, s.malformed_every), key=lambda row: row[2])
    codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.USER_EVENTS_TOPIC])
    valid = [codec.decode(v) for _, v, _, bad in rows if not bad]
    malformed = sorted(v for _, v, _, bad in rows if bad)
    expected = expected_versions(valid)
    span_ms = max(e["event_time"] for e in valid) - min(e["event_time"] for e in valid)
    needed_ms = JOB.bucket_ms + JOB.max_out_of_orderness_ms
    if span_ms <= needed_ms:
        raise ValueError(f"{s.events} events span {span_ms / 60_000:.0f} min of event time: no co-occurrence "
                         f"list is published before {needed_ms / 60_000:.0f} min (a bucket plus the "
                         f"out-of-orderness bound), so that check could not hold; use more events")

    ensure_topics(s.bootstrap, recreate=True)
    redis.Redis.from_url(s.redis_url).flushdb()
    watcher = RedisWatcher(s.redis_url, sorted(expected))
    watcher.start()
    supervisor = TaskManagerSupervisor(s)
    supervisor.start()
    job = []   # the current job id, for the cancel at the end
    try:
        _stream_with_failures(s, synth, rows, job, watcher)
        s.say("all records produced; waiting for every user's last list to be committed")
        _read_recommendations(s, {u: v[-1] for u, v in expected.items()})
        _restart_settled(s, job)
        closing = _closing_events(s, valid)
        valid_all = valid + closing
        expected = expected_versions(valid_all)
        producer = make_producer(s.bootstrap)
        produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(codec, e) for e in closing), progress=False)
        producer.close()
        s.say(f"{len(closing)} closing events produced (one per user, no watermark moves)")
        seen, last_record = _read_recommendations(s, {u: v[-1] for u, v in expected.items()})
        watcher.stop()
        s.say(f"{sum(map(len, seen.values()))} committed lists read; Redis polled {watcher.polls} times "
              f"({watcher.unreachable} while it was down)")
        published = _read_all(s, contracts.ITEM_NEIGHBORS_TOPIC)
        letters = _read_all(s, contracts.DEAD_LETTER_TOPIC)
        store = redis.Redis.from_url(s.redis_url)
        cached = {u: json.loads(raw) if raw else None
                  for u, raw in zip(expected, store.mget([contracts.user_recommendations_key(u) for u in expected]))}
        items = sorted({n["item_id"] for n in published})
        item_docs = {i: json.loads(raw) if raw else None
                     for i, raw in zip(items, store.mget([contracts.item_similar_key(i) for i in items]))}
        trending_raw = store.get(contracts.TRENDING_KEY)
    finally:
        watcher.stop()
        supervisor.stop()
        if job:
            _cancel_quietly(s, job[-1])

    if s.dump:   # for a look at a failure without rerunning it
        s.dump.write_text(json.dumps({"valid": valid, "published": published}))
    results = {}
    dup_or_order = [u for u, vs in seen.items() if vs != sorted(set(vs))]
    results["increasing"] = (not dup_or_order, f"{len(dup_or_order)} users break it")
    wrong_set = [u for u in expected if seen.get(u) != expected[u]]
    results["same-versions"] = (not wrong_set, f"{len(wrong_set)} of {len(expected)} users differ")
    results.update(_item_side_checks(s, valid, published, item_docs, trending_raw))
    results["last-lists"] = _last_list_check(s, valid_all, last_record, published, trending_raw, synth.catalog())
    mismatch = [u for u in expected if cached[u] is None or u not in last_record
                or (cached[u]["version"], cached[u]["items"]) != (last_record[u]["version"], last_record[u]["items"])]
    results["redis-equals-kafka"] = (not mismatch, f"{len(mismatch)} of {len(expected)} users differ")
    results["redis-never-back"] = (
        not watcher.regressed and watcher.error is None and watcher.polls > 0,
        f"{len(watcher.regressed)} of {len(expected)} users seen going back in {watcher.polls} polls"
        + (f" (e.g. {'; '.join(watcher.examples)})" if watcher.examples else "")
        + (f"; the watcher died: {watcher.error!r}" if watcher.error else ""))
    payloads = sorted(d["payload"] for d in letters)
    results["dead-letters"] = (payloads == malformed, f"{len(letters)} letters for {len(malformed)} malformed records")

    width = max(map(len, CHECKS.values()))
    print(f"\n{'check':{width}}  verdict  detail")
    for check, (ok, detail) in results.items():
        print(f"{CHECKS[check]:{width}}  {'PASS' if ok else 'FAIL':7}  {detail}")
    return {check: ok for check, (ok, _) in results.items()}


def _item_side_checks(s: Scenario, valid: list[dict], published: list[dict], item_docs: dict,
                      trending_raw: bytes | None) -> dict[str, tuple[bool, str]]:
    """The co-occurrence lists, their scores, and the item and trending keys in Redis,
    against the batch model of ``lab.oracle``."""
    pairs, own = batch_pairs(valid, JOB), batch_own(valid, JOB)
    keys = [(n["item_id"], n["event_time"]) for n in published]
    # Event time ends at the slowest partition's newest event minus the out-of-orderness
    # bound; a bucket short of the newest event leaves room for the partitions' spread.
    until = max(e["event_time"] for e in valid) - JOB.max_out_of_orderness_ms - 2 * JOB.bucket_ms
    due = expected_windows(valid, JOB, until)
    wrong = []
    for n, key in zip(published, keys):
        i, end = key
        want = window_counts(pairs.get(i, []), end, JOB)
        got = {x["item_id"]: x["co_count"] for x in n["neighbors"]}
        exact = surely_unpruned(pairs.get(i, []), end, JOB)
        # A list holds the K best neighbors by score: all of them when there are at most K.
        # Pruned, a neighbor's count can only be short (its older buckets were forgotten).
        size_ok = len(got) == min(len(want), JOB.fragment_size) if exact else len(got) <= JOB.fragment_size
        counts_ok = all(j in want and got[j] <= want[j] + 1e-6 and (not exact or abs(got[j] - want[j]) <= 1e-6)
                        for j in got)
        bad = abs(n["item_count"] - window_own_counts(own.get(i, []), end, JOB)) > 1e-6 or not (size_ok and counts_ok)
        if bad:
            wrong.append(key)
            if len(wrong) <= 5:
                diff = {j: (got.get(j), want.get(j)) for j in set(got) | set(want)
                        if abs(got.get(j, 0) - want.get(j, 0)) > 1e-6}
                s.say(f"item {i} at {end} ({'exact' if exact else 'pruned'}): N {n['item_count']} vs "
                      f"{window_own_counts(own.get(i, []), end, JOB)}; (published, recount) differ for {diff}")
    missing = sorted(due.keys() - set(keys))
    for i, end in missing[:5]:
        s.say(f"item {i}: no list published at {end}")
    n_seen: dict[int, list[float]] = {}
    for n in published:
        n_seen.setdefault(n["item_id"], []).append(n["item_count"])
    unexplained = [k for n, k in zip(published, keys) if unexplained_scores(n, n_seen, JOB.similarity_shrinkage)]
    last = _last_per_item(published)
    redis_items = [i for i, doc in item_docs.items()
                   if doc is None or (doc["event_time"], doc["item_count"], doc["neighbors"])
                   != (last[i]["event_time"], last[i]["item_count"], last[i]["neighbors"])]
    trending = json.loads(trending_raw) if trending_raw else None
    batch = expected_trending(valid, JOB)
    last_due = max((end for end in batch if end <= until), default=None)
    trending_ok = (trending is not None and last_due is not None and trending["version"] >= last_due
                   and [(x["item_id"], x["count"]) for x in trending["items"]] == batch.get(trending["version"]))
    return {
        "cooccurrence": (bool(published) and not wrong and len(keys) == len(set(keys)),
                         f"{len(published)} lists, {len(wrong)} wrong, {len(keys) - len(set(keys))} duplicates"),
        "complete": (not missing, f"{len(due)} due up to {until}, {len(missing)} missing"),
        "scores": (not unexplained, f"{len(unexplained)} lists with a score no published N(j) explains"),
        "redis-items": (not redis_items, f"{len(redis_items)} of {len(item_docs)} items differ"),
        "redis-trending": (trending_ok, "as of " + (str(trending["version"]) if trending else "nothing")
                           + f", last due {last_due}"),
    }


def _last_list_check(s: Scenario, events: list[dict], last_record: dict[int, dict], published: list[dict],
                     trending_raw: bytes | None, catalog: list[dict]) -> tuple[bool, str]:
    """Each user's last list (its closing event's) against ``verify.expected_top``, given the
    last committed list of every item and the last trending list. The job restarted just
    before, so its rankers score each list from scratch when first asked, with every N(j)
    as of the last list of j: the committed counts, rescored by the oracle, are what they use."""
    last = _last_per_item(published)
    n_known = {i: n["item_count"] for i, n in last.items()}
    neighbors = {i: [(j, score) for j, score, _ in expected_neighbor_list(
        {x["item_id"]: x["co_count"] for x in n["neighbors"]}, n["item_count"], n_known, JOB)]
        for i, n in last.items()}
    trending = [(x["item_id"], x["count"]) for x in json.loads(trending_raw)["items"]] if trending_raw else []
    mine: dict[int, list[dict]] = {}
    for e in events:
        mine.setdefault(e["user_id"], []).append(e)
    gap = max(b["event_time"] - a["event_time"] for a, b in zip(events, events[1:]) if b["event_time"] >= a["event_time"])
    wrong, skipped = [], 0
    for user, theirs in sorted(mine.items()):
        if ttl_ambiguous(theirs, JOB, gap):
            skipped += 1
            continue
        every: dict = {}
        want = expected_top(theirs, neighbors, catalog, trending, JOB, every)
        got = last_record.get(user, {}).get("items")
        diffs = ["no list"] if got is None else top_differences(got, want, every)
        if diffs:
            wrong.append(user)
            if len(wrong) <= 5:
                s.say(f"user {user}'s last list: {'; '.join(diffs[:3])}")
    compared = len(mine) - skipped
    return (compared > 0 and not wrong,
            f"{len(wrong)} of {compared} users differ ({skipped} skipped: a pause near the TTL)")


def _last_per_item(published: list[dict]) -> dict[int, dict]:
    """Each item's newest published list (by event time)."""
    last: dict[int, dict] = {}
    for n in published:
        if n["event_time"] >= last.get(n["item_id"], {}).get("event_time", -1):
            last[n["item_id"]] = n
    return last


def _restart_settled(s: Scenario, job: list[str]) -> None:
    """Cancel the job after two more checkpoints (every input, and what its watermark
    fired, is then in the last one) and resume it from the last one."""
    cluster = _cluster(s)
    first = cluster.wait_checkpoint(job[-1])
    cluster.wait_checkpoint(job[-1], after=first + 1)
    _cancel_and_resume(s, cluster, job)


def _cancel_and_resume(s: Scenario, cluster: FlinkCluster, job: list[str]) -> None:
    cluster.wait_checkpoint(job[-1])
    cluster.rest(f"/jobs/{job[-1]}?mode=cancel", method="PATCH")
    cluster.wait_state(job[-1], {"CANCELED"})
    checkpoint = cluster.latest_checkpoint(job[-1])
    s.say(f"cancelled job {job[-1]}; resuming from {Path(checkpoint).name}")
    cluster.ensure_taskmanager()
    job.append(_submit(s, checkpoint))
    cluster.wait_state(job[-1], {"RUNNING"})
    s.say(f"resumed as job {job[-1]}")


def _closing_events(s: Scenario, valid: list[dict]) -> list[dict]:
    """One VIEW per user of the item of its last event, at the newest record time of its
    partition: no partition's newest time grows, so neither does the watermark (no list,
    trending or TTL fires), and no closing event is late."""
    consumer = make_consumer(s.bootstrap, contracts.USER_EVENTS_TOPIC)
    try:
        newest, partition_of = {}, {}
        for r in consume(consumer, idle_timeout_s=3):
            newest[r.partition] = max(newest.get(r.partition, r.timestamp), r.timestamp)
            partition_of[r.key] = r.partition
    finally:
        consumer.close()
    last = {}
    for e in valid:
        last[e["user_id"]] = e
    return [{**e, "event_id": f"closing-{user}", "event_type": "VIEW", "value": None,
             "event_time": newest[partition_of[contracts.record_key(user)]]}
            for user, e in sorted(last.items())]


def _cancel_quietly(s: Scenario, job_id: str) -> None:
    """Cancel the run's job and wait until it has ended, without hiding an error that is
    already on its way up (the cluster may be what failed)."""
    try:
        _cluster(s).cancel(job_id)
    except Exception as exc:  # noqa: BLE001
        s.say(f"could not cancel job {job_id}: {exc!r}")


def _stream_with_failures(s: Scenario, synth: Synth, rows: list, job: list[str], watcher: RedisWatcher) -> None:
    """Submit the job, produce the rows at the scenario's rate, and meanwhile kill the
    TaskManager and cancel/resume the job at moments drawn from the seed."""
    rng = random.Random(s.seed)
    cluster = _cluster(s)
    producer = make_producer(s.bootstrap)
    produce_catalog(producer, synth.catalog(), progress=False)
    cluster.ensure_taskmanager()
    job.append(_submit(s))
    s.say(f"job {job[-1]} submitted; streaming {len(rows)} records at {s.rate:.0f}/s "
          f"({sum(bad for *_, bad in rows)} malformed)")
    cluster.wait_state(job[-1], {"RUNNING"})
    # The rankers fold an event's tags into the user's interest when they rank it; an event
    # ranked before the catalog reached them adds none, and the last-list check (which
    # assumes the catalog first, as it was produced) would fail for users whose events come
    # first. So the events wait until every ranking subtask says it holds the whole catalog.
    try:
        cluster.wait_gauge(job[-1], "Ranker", "catalogItems", len(synth.catalog()))
    except WaitTimeout as exc:
        # Seen once in the second scenario of a session: the REST API showed no metric of the
        # job at all for two minutes while it ran and checkpointed. The events then go
        # without that evidence; only the last-list check depends on it.
        s.say(f"streaming without word from the rankers that they hold the catalog ({exc})")

    failure: list[BaseException] = []

    def stream():
        try:
            produce(producer, contracts.USER_EVENTS_TOPIC, ((k, v, ts) for k, v, ts, _ in rows), rate=s.rate,
                    progress=False)
        except BaseException as exc:  # noqa: BLE001 (raised below)
            failure.append(exc)

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    produce_s = len(rows) / s.rate
    actions = ["kill"] * s.kills + ["cancel"] + (["broker", "redis"] if s.restarts else [])
    rng.shuffle(actions)
    for action in actions:
        time.sleep(rng.uniform(0.4, 1.0) / len(actions) * produce_s)
        if action == "kill":
            _kill_taskmanager(s)
        elif action == "cancel":
            _cancel_and_resume(s, cluster, job)
        elif action == "broker":
            _restart_broker(s)
        else:
            _lose_redis(s, cluster, job, watcher)
    streamer.join()
    producer.close()
    if failure:
        raise failure[0]


def _read_recommendations(s: Scenario, finals: dict[int, int]) -> tuple[dict[int, list[int]], dict[int, dict]]:
    """Committed lists until every user's last one (version in ``finals``) has been read."""
    recos = AvroCodec(contracts.TOPIC_RECORDS[contracts.RECOMMENDATIONS_TOPIC])
    seen: dict[int, list[int]] = {}
    last_record: dict[int, dict] = {}
    consumer = make_consumer(s.bootstrap, contracts.RECOMMENDATIONS_TOPIC)
    deadline = time.monotonic() + s.timeout_s
    while time.monotonic() < deadline and any(last_record.get(u, {}).get("version") != v for u, v in finals.items()):
        for batch in consumer.poll(timeout_ms=1000).values():
            for r in batch:
                rec = recos.decode(r.value)
                seen.setdefault(rec["user_id"], []).append(rec["version"])
                last_record[rec["user_id"]] = rec
    consumer.close()
    missing = sum(last_record.get(u, {}).get("version") != v for u, v in finals.items())
    if missing:
        s.say(f"gave up after {s.timeout_s:.0f} s: {missing} users' last list not committed")
    return seen, last_record


def _read_all(s: Scenario, topic: str) -> list[dict]:
    codec = AvroCodec(contracts.TOPIC_RECORDS[topic])
    consumer = make_consumer(s.bootstrap, topic)
    try:
        return [codec.decode(r.value) for r in consume(consumer, idle_timeout_s=5)]
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rate", type=float, default=250.0)
    ap.add_argument("--delivery-guarantee", choices=("exactly-once", "at-least-once"), default="exactly-once",
                    help="at-least-once breaks the guarantee on purpose: the checks must fail")
    ap.add_argument("--redis-write", choices=("versioned", "unconditional"), default="versioned",
                    help="unconditional breaks the guarantee on purpose: the checks must fail")
    ap.add_argument("--python-execution-mode", choices=("process", "thread"), default="process",
                    help="thread: start the cluster with RECO_FLINK_TASKMANAGERS=2 RECO_FLINK_SLOTS=1")
    ap.add_argument("--no-restarts", dest="restarts", action="store_false",
                    help="kills and the cancel only: no broker or Redis restart")
    ap.add_argument("--dump", type=Path, metavar="PATH",
                    help="write the valid events and the published co-occurrence lists there as JSON")
    args = ap.parse_args(argv)
    s = Scenario(events=args.events, kills=args.kills, seed=args.seed, rate=args.rate, dump=args.dump,
                 restarts=args.restarts,
                 delivery_guarantee=args.delivery_guarantee, redis_write=args.redis_write,
                 python_execution_mode=args.python_execution_mode,
                 bootstrap=f"127.0.0.1:{os.environ.get('RECO_KAFKA_PORT', '9092')}",
                 redis_url=f"redis://127.0.0.1:{os.environ.get('RECO_REDIS_PORT', '6379')}/0",
                 rest_port=int(os.environ.get("RECO_FLINK_REST_PORT", "8081")),
                 run_dir=Path(os.environ.get("RECO_RUN_DIR", ROOT / ".run")))
    try:
        verdict = run(s)
    except ValueError as exc:
        ap.exit(2, f"chaos: {exc}\n")
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
