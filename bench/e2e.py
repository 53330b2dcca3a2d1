"""End-to-end benchmark on the real deployment: Kafka in, Redis and committed Kafka out,
exactly-once, RocksDB with incremental checkpoints, on a standalone cluster.

    make bench                                  # everything below, about 15 minutes
    .venv/bin/python bench/e2e.py --only throughput,ceiling [--events 40000] [--keep]

It starts its own Kafka, Redis and Flink cluster (ports 29092/29093, 26379, 28081; data in
.run/bench) and stops them at the end (``--keep`` leaves them up). Every figure is printed
with its method and written to ``bench/results/e2e.json``; plots go to ``bench/results/``.

- warm-up: before the first measured run, the job drains a 10,000-event backlog whose
  figures are not kept. The first job on a new TaskManager runs slower while the JVM
  compiles its hot paths (p=2, 2026-12-01: 1,505-1,865 events/s for the first drain of a
  sitting against 1,892-2,628 for the same code right after), which would favour whichever
  run comes second.
- throughput: a backlog of synthetic events (``reco-synth`` model, W=20, 5 seeds) is
  produced first, in two parts: a history, which runs past the first bucket end of the
  item side (``history_length``: about 12,000 events), and the ``--events`` measured, written
  in a Kafka transaction left open. The job is submitted and drains the history; once all
  its lists have arrived and Redis holds every neighbor list and the trending list that
  the history gives (the Ranker writes them when it has them; which ones, from the same
  steps in one process), the transaction is committed and the job (which reads committed
  records only) sees the measured events all at once. Rate = their lists arriving on the
  recommendations topic (read_uncommitted, as written), from the commit to the last list;
  then every list is checked to be committed (read_committed), and the measured ones
  without an item are counted (``empty_lists``, 0 when the method holds). Why so: a list
  draws its candidates from the item side's lists, which come at bucket ends through three
  Python operators, while the rankers read the events straight from Decode. Drained from an
  empty job, the rankers ran ahead of the item side by tens of thousands of events, and
  those lists came out empty and cheap, a different number each run: identical drains
  moved by up to 3x. Why the whole measured drain: the lists come in bursts seconds apart
  (bundles of up to ``bundle_size`` records), and any window inside the drain measures its
  bursts (25-30% above the drain); ``bursts`` counts them (runs of arrivals a second or more
  apart). CPU per event over the same span: the TaskManagers' CPU time with their Python
  workers' (from /proc), and the workers' part alone. At parallelism 1 and 2 (p=2
  ``--repeats`` times, 3 by default: the median run is reported with the range), and at
  W = 5, 20, 50 (parallelism 2). The warm-up and the ceiling drain their whole backlog
  without a history, from the job running to the last record.
- ceiling: bench/passthrough.py (the job's source, settings and exactly-once sink, one
  Python operator passing records through) on a backlog five times as long; then in the
  job's shape (``--keyed plain|state|timer``: a keying Python operator, the key-by, a keyed
  Python operator, which touches a value state per record, and sets a timer), on the same
  backlog: what the engine costs per record before the job's own work; and the state
  variant on 30 keys (fewer than a bundle's records: the commit's cost per key and bundle
  nearly gone, the cost per record left).
- freshness: the job runs on an empty topic; events are produced at 25%, 50% and 75% of
  the measured maximum, with event time = wall time; for each event, the time from just
  before it is sent until the user's Redis key holds its version (read when Redis
  announces a write of that key: keyspace notifications, no polling), counted from
  ``SETTLE_S`` (60 s) after the first list of the run reached Redis: each run is a new job,
  and the TaskManager's JVM compiles that job's classes for 40-60 s after it starts (a
  third of a core here), the broker's JVM its own paths during its first minute and a half
  of traffic; counted from 10 s, the p99 of identical runs moved from 0.4 to 2 s with the
  run's place in the sitting. The p99 of each 10 s of the run is printed too (a run whose
  latency still falls is not settled). ``--rates 50,100`` measures at those rates instead
  (with ``--flags``, e.g. to compare bundle times).
- model: the throughput run without and with item embeddings in the catalog (a model
  trained on the same events; ``embedding_weight`` as the job's default), in ``--repeats``
  pairs: the ratio of each pair's rates, median and range (one pair has moved from 0.5 to
  1.0 between runs here), and the same steps in one process without the engine (the core).
- redis: GET latency of ``reco:v1:user:*`` keys, 8 client processes, beside
  ``redis-benchmark -c 8 -t get``.
- state: the latest completed checkpoint's state size per operator, divided by the users
  (UserActivity, Ranker) or items (ItemCooccurrence) with state.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.passthrough import TOPIC as PASSTHROUGH_TOPIC  # noqa: E402
from flink_jobs import contracts  # noqa: E402
from flink_jobs.config import JobConfig  # noqa: E402
from flink_jobs.codec import AvroCodec  # noqa: E402
from flink_jobs.internals import child_environment  # noqa: E402
from lab.flinkcluster import FlinkCluster  # noqa: E402
from reco_tools.kafka_io import event_message, make_consumer, make_producer, produce, produce_catalog  # noqa: E402
from reco_tools.synth import Synth, SynthConfig  # noqa: E402
from reco_tools.topics import connect_admin, ensure_topics  # noqa: E402
from lab import inprocess  # noqa: E402
from udfs.records import Event, ItemInfo  # noqa: E402
from udfs.versioning import next_version  # noqa: E402

KAFKA_PORT, REDIS_PORT, REST_PORT, RPC_PORT = 29092, 26379, 28081, 28123
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
# a history ends this many events past the first bucket end (one hour of the synthetic
# stream is about 13,700 events), so that every partition's watermark has passed it
HISTORY_MARGIN, HISTORY_MAX = 2_000, 30_000
EVENT_CODEC = AvroCodec(contracts.TOPIC_RECORDS[contracts.USER_EVENTS_TOPIC])
RUN_DIR = ROOT / ".run" / "bench"
RESULTS = ROOT / "bench" / "results"
STAGES = ("throughput", "ceiling", "freshness", "redis", "state", "window", "model")
WARMUP_MAX_S = 60   # of a freshness run: the longest it waits for the job's first list
SETTLE_S = 60       # then, not measured: the job's JIT compilation (the module's docstring)
MODEL_BETA = JobConfig().embedding_weight   # of the model stage's run with a model


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Services:
    """The benchmark's own stack and cluster (``root``: whose job and cluster script)."""

    def __init__(self, root: Path):
        self.env = {**child_environment(), "RECO_KAFKA_PORT": str(KAFKA_PORT),
                    "RECO_KAFKA_CONTROLLER_PORT": str(KAFKA_PORT + 1), "RECO_REDIS_PORT": str(REDIS_PORT),
                    "RECO_RUN_DIR": str(RUN_DIR), "RECO_FLINK_REST_PORT": str(REST_PORT),
                    "RECO_FLINK_RPC_PORT": str(RPC_PORT)}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("RECO_")})
        self.cluster = FlinkCluster(REST_PORT, RUN_DIR, root=root, say=say,
                                    pythonpath=str(root) if root != ROOT else None)
        self.redis = redis.Redis.from_url(REDIS_URL)

    def _run(self, *cmd: str) -> None:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")

    def start(self) -> None:
        say("starting Kafka, Redis and the Flink cluster")
        self._run(str(ROOT / "deploy/local/stack.sh"), "start")
        self.cluster.script("start")

    def stop(self) -> None:
        self.cluster.script("stop")
        self._run(str(ROOT / "deploy/local/stack.sh"), "stop")

    def fresh(self) -> None:
        """Empty topics (the pass-through's too) and an empty Redis."""
        ensure_topics(BOOTSTRAP, recreate=True)
        from kafka.admin import NewTopic
        admin = connect_admin(BOOTSTRAP)
        try:
            if PASSTHROUGH_TOPIC in admin.list_topics():
                admin.delete_topics([PASSTHROUGH_TOPIC])
                time.sleep(2)
            admin.create_topics([NewTopic(PASSTHROUGH_TOPIC, 4, 1)])
        finally:
            admin.close()
        self.redis.flushdb()

    def submit(self, flags: list[str], run_id: str, parallelism: int, py: str | None = None) -> str:
        self.cluster.ensure_taskmanager()   # a cancel can take it down (docs/operations.md "Known problems")
        job = self.cluster.submit((["--py", py] if py else [])
                                  + ["--kafka-bootstrap", BOOTSTRAP, "--redis-url", REDIS_URL,
                                     "--consumer-group", f"bench-{run_id}", "--transactional-id-prefix",
                                     f"bench-{run_id}", "--parallelism", str(parallelism), *flags])
        self.cluster.wait_running(job)
        return job


def synth_events(n: int, seed: int = 7, extra: int = 0) -> tuple[Synth, list[dict]]:
    """``n`` + ``extra`` events of a synthetic population sized by ``n``."""
    synth = Synth(SynthConfig(events=n + extra, users=max(500, n // 8), items=max(200, n // 20), seed=seed))
    return synth, list(synth.events())


def history_length(events: list[dict], cfg: JobConfig = JobConfig(), margin: int = HISTORY_MARGIN) -> int:
    """How many of ``events`` it takes for the item side to emit its first lists: those before
    the first bucket end (and the watermark's out-of-orderness), then ``margin`` more."""
    first = events[0]["event_time"]
    end = first - first % cfg.bucket_ms + cfg.bucket_ms + cfg.max_out_of_orderness_ms
    return next((i for i, e in enumerate(events) if e["event_time"] >= end), len(events)) + margin


def backlog(n: int) -> tuple[Synth, list[dict], int]:
    """The drains' events: a history, then ``n`` measured events; and the history's length.

    A list draws its candidates from the item side's lists (neighbors, trending), which come
    at bucket ends: without a history a drain's first hour of event time ranks into empty
    candidate sets, cheaply, and how many lists come out empty depends on when the item side's
    lists reach the rankers, which moves between runs."""
    synth, events = synth_events(n, extra=HISTORY_MAX)
    history = history_length(events)
    if history + n > len(events):
        raise SystemExit(f"bench: the history ({history:,} events) is longer than {HISTORY_MAX:,}; raise HISTORY_MAX")
    return synth, events[:history + n], history


def _read(topic: str, expected: int, timeout_s: float, isolation_level: str,
          on_batch: Callable[[list], None]) -> int:
    """Read ``topic`` until ``expected`` records have been read or ``timeout_s`` has passed,
    handing each batch to ``on_batch`` as it comes; how many were read."""
    consumer = make_consumer(BOOTSTRAP, topic, isolation_level=isolation_level)
    count = 0
    deadline = time.monotonic() + timeout_s
    try:
        while count < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                count += len(batch)
                on_batch(batch)
    finally:
        consumer.close()
    return count


def _arrivals(topic: str, expected: int, timeout_s: float,
              then: tuple[int, Callable[[], None]] | None = None) -> list[float]:
    """Arrival times (monotonic) of records on ``topic`` (read_uncommitted: as written) until
    ``expected`` have arrived; ``then = (count, action)``: ``action()`` once ``count`` have."""
    times: list[float] = []

    def arrived(batch: list) -> None:
        nonlocal then
        times.extend([time.monotonic()] * len(batch))
        if then is not None and len(times) >= then[0]:
            then[1]()
            then = None

    _read(topic, expected, timeout_s, "read_uncommitted", arrived)
    return times


def _committed(topic: str, expected: int, since_ms: int | None) -> tuple[int, int]:
    """``(committed, empty)``: records committed on ``topic`` (read until ``expected`` have
    been, or 120 s), and with ``since_ms`` how many of them are lists without an item for an
    event at or after that event time."""
    codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.RECOMMENDATIONS_TOPIC])
    empty = 0

    def count_empty(batch: list) -> None:
        nonlocal empty
        if since_ms is not None:
            lists = [codec.decode(r.value) for r in batch]
            empty += sum(not x["items"] and x["event_time"] >= since_ms for x in lists)

    return _read(topic, expected, 120, "read_committed", count_empty), empty


def drain_rate(start: float, times: list[float]) -> float:
    """Records/s from ``start`` (the job running, or the measured events' release) to the last arrival."""
    return len(times) / max(max(times) - start, 1e-9)


def bursts(times: list[float], gap_s: float = 1.0) -> int:
    """How many runs of arrivals ``times`` holds, apart by ``gap_s`` or more."""
    times = sorted(times)
    return 1 + sum(b - a >= gap_s for a, b in zip(times, times[1:])) if times else 0


class CpuSampler:
    """CPU seconds used by the TaskManagers and everything they started (the Python
    workers), sampled every ``every_s`` in a thread: what an event costs in CPU is steadier
    on a shared machine than what it takes in wall time. Each sample also keeps the workers'
    part (the Python operators), the rest being the JVMs' (sources, sinks, state, network)."""

    def __init__(self, every_s: float = 0.25):
        self.samples: list[tuple[float, float, float]] = []
        self.every_s, self._stop = every_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tick() -> float:
        return float(os.sysconf("SC_CLK_TCK"))

    @classmethod
    def cpu_seconds(cls) -> tuple[float, float]:
        """``(all, workers)``: utime + stime of each TaskManager and its live descendants,
        with the times of their reaped children (cutime + cstime): workers that ended still
        count; ``workers`` is the descendants' part."""
        stats, children = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            pid, ppid = int(entry), int(fields[1])
            own, reaped = sum(int(x) for x in fields[11:13]), sum(int(x) for x in fields[13:15])
            stats[pid] = (own, reaped, b"TaskManagerRunner" in cmdline)
            children.setdefault(ppid, []).append(pid)
        total = workers = 0
        for tm in [pid for pid, (_, _, is_tm) in stats.items() if is_tm]:
            total += stats[tm][0]
            todo = [(pid, True) for pid in children.get(tm, [])] + [(tm, False)]
            while todo:
                pid, below = todo.pop()
                ticks = stats[pid][1] + (stats[pid][0] if below else 0)
                total, workers = total + ticks, workers + ticks
                todo.extend((child, True) for child in children.get(pid, []) if below)
        return total / cls._tick(), workers / cls._tick()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), *self.cpu_seconds()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, t: float, workers: bool = False) -> float:
        """CPU seconds (the workers' alone with ``workers``) at monotonic time ``t``,
        interpolated between samples."""
        times = [s[0] for s in self.samples]
        i = max(1, min(bisect.bisect_left(times, t), len(times) - 1))
        (t0, *c0), (t1, *c1) = self.samples[i - 1], self.samples[i]
        k = 1 if workers else 0
        return c0[k] + (c1[k] - c0[k]) * (t - t0) / max(t1 - t0, 1e-9)


def drain_cpu_ms(start: float, times: list[float], cpu: CpuSampler, workers: bool = False) -> float:
    """CPU milliseconds per record over the span of ``drain_rate`` (the workers' alone with ``workers``)."""
    return 1000 * (cpu.at(max(times), workers) - cpu.at(start, workers)) / len(times)


def _catalog(synth: Synth, events: list[dict], model: bool) -> list[dict]:
    """The synthetic catalog; with ``model``, carrying embeddings trained on ``events`` (reco-embed's train)."""
    catalog = synth.catalog()
    if not model:
        return catalog
    from reco_tools.embed import catalog_with_model, train

    return catalog_with_model(catalog, train(events), 1, 0)


def _produce_backlog(synth: Synth, events: list[dict], model: bool = False, upto: int | None = None) -> None:
    """The catalog (a model trained on all ``events`` with ``model``) and ``events[:upto]``."""
    producer = make_producer(BOOTSTRAP)
    produce_catalog(producer, _catalog(synth, events, model), progress=False)
    produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENT_CODEC, e) for e in events[:upto]),
            progress=False)
    producer.close()


def published_item_lists(synth: Synth, events: list[dict]) -> list[str]:
    """The Redis keys of the neighbor lists the job has published once it has ranked
    ``events`` (the same steps in one process, lab.inprocess, with no end of input)."""
    items: set[int] = set()
    flow = inprocess.Dataflow(JobConfig(), [ItemInfo.of(r) for r in synth.catalog()],
                              lambda kind, record: items.add(record["item_id"]) if kind == "item_neighbors" else None)
    for e in events:
        flow.push(Event.of(e))
    return [contracts.TRENDING_KEY] + [contracts.item_similar_key(i) for i in sorted(items)]


class HeldBack:
    """Events written in a Kafka transaction left open: the job reads committed records only,
    so it sees none of them until ``release()`` commits it, and then all at once.
    ``release()`` first waits (up to ``timeout_s``) until Redis holds every key of ``ready``:
    the Ranker writes the item side's lists there when it has them."""

    def __init__(self, events: list[dict], ready: list[str], timeout_s: float = 120.0):
        self.ready, self.timeout_s = ready, timeout_s
        self.released: float | None = None
        self.waited_s = self.missing = None
        self.producer = make_producer(BOOTSTRAP, transactional_id=f"bench-held-{time.time_ns()}",
                                      transaction_timeout_ms=600_000)
        self.producer.init_transactions()
        self.producer.begin_transaction()
        produce(self.producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENT_CODEC, e) for e in events),
                progress=False)

    def release(self) -> None:
        store, start = redis.Redis.from_url(REDIS_URL), time.monotonic()
        while (missing := len(self.ready) - store.exists(*self.ready)) and time.monotonic() - start < self.timeout_s:
            time.sleep(0.1)
        self.waited_s, self.missing = round(time.monotonic() - start, 1), missing
        self.producer.commit_transaction()
        self.released = time.monotonic()
        self.producer.close()


def throughput(svc: Services, n: int, parallelism: int, flags: list[str], label: str,
               passthrough: bool = False, model: bool = False, history: bool = True) -> dict:
    """Drain a backlog of ``n`` events, with ``history`` after a history (``backlog``,
    ``HeldBack``); the rate of lists (or records) over the ``n``.
    ``model``: the catalog carries embeddings (pass ``--embedding-weight`` in ``flags``)."""
    svc.fresh()
    synth, events, skip = backlog(n) if history else (*synth_events(n), 0)
    total = len(events)
    _produce_backlog(synth, events, model, upto=skip or None)
    held = HeldBack(events[skip:], published_item_lists(synth, events[:skip])) if skip else None
    run_id = f"{label}-{int(time.time())}"
    topic = PASSTHROUGH_TOPIC if passthrough else contracts.RECOMMENDATIONS_TOPIC
    say(f"{label}: {skip:,} + {n:,} events backlogged; submitting at parallelism {parallelism}")
    start = time.monotonic()
    with CpuSampler() as cpu:
        job = svc.submit(flags, run_id, parallelism, py=str(ROOT / "bench/passthrough.py") if passthrough else None)
        deployed = time.monotonic()
        times = _arrivals(topic, total, timeout_s=max(600.0, total / 50),
                          then=(skip, held.release) if held else None)
    result = {"label": label, "events": n, "history": skip, "parallelism": parallelism, "flags": flags,
              "arrived": len(times), "deploy_s": round(deployed - start, 1)}
    measured_start, measured = (held.released, times[skip:]) if held else (deployed, times)
    if held and held.released is None:
        say(f"{label}: the history's {skip:,} lists did not all arrive; the held-back events were never released")
    elif measured and min(measured) <= measured_start:
        raise SystemExit(f"{label}: lists arrived for held-back events before they were released: "
                         "does the job read committed records only?")
    elif len(times) >= total:
        result["events_per_s"] = round(drain_rate(measured_start, measured), 1)
        result["cpu_ms_per_event"] = round(drain_cpu_ms(measured_start, measured, cpu), 3)
        result["python_cpu_ms_per_event"] = round(drain_cpu_ms(measured_start, measured, cpu, workers=True), 3)
        result["bursts"] = bursts(measured)
        result["drain_s"] = round(max(times) - measured_start, 1)
        if held:
            result["history_s"] = round(measured_start - deployed, 1)
            result["item_side_wait_s"], result["item_lists_missing"] = held.waited_s, held.missing
        result["committed"], empty = _committed(topic, total, None if passthrough else events[skip]["event_time"])
        if not passthrough:
            result["empty_lists"] = empty
    result["job_id"] = job
    try:
        result["checkpoints"] = svc.cluster.rest(f"/jobs/{job}/checkpoints")["counts"]["completed"]
    except Exception:  # noqa: BLE001 (a figure, not a verdict)
        pass
    if not passthrough:
        result["state"] = state_sizes(svc, job)
    svc.cluster.cancel(job)
    empties = f", {result['empty_lists']:,} measured lists empty" if "empty_lists" in result else ""
    say(f"{label}: {result.get('events_per_s', 'n/a')} events/s, {result.get('cpu_ms_per_event', 'n/a')} CPU ms "
        f"per event, of which Python {result.get('python_cpu_ms_per_event', 'n/a')} ({result['arrived']:,} of "
        f"{total:,} arrived, the measured {n:,} in {result.get('bursts', 0)} bursts, "
        f"{result.get('committed', 0):,} committed{empties})")
    return result


def median_run(runs: list[dict], label: str) -> dict:
    """The run of median rate (a run that did not finish counts as 0), labelled with the
    range of all: one drain's rate moves by a fifth between runs on this machine."""
    by_rate = sorted(runs, key=lambda r: r.get("events_per_s", 0.0))
    low, high = (r.get("events_per_s", 0.0) for r in (by_rate[0], by_rate[-1]))
    cpu = sorted(r.get("cpu_ms_per_event", float("nan")) for r in runs)
    if len(runs) > 1:
        label = f"{label} (median of {len(runs)}: {low:,.0f}-{high:,.0f})"
    return {**by_rate[(len(runs) - 1) // 2], "label": label, "runs": len(runs),
            "cpu_ms_per_event_range": [cpu[0], cpu[-1]]}


def core_cost(n: int, model: bool = False) -> dict:
    """The job's own steps (lab.inprocess: no engine, one process) on the throughput runs'
    events, in CPU time over the measured ``n`` after the history: what the engine adds is
    the job's CPU per event beyond this. ``model``: the catalog carries embeddings, as in the
    model stage's second run. ``empty_lists``: lists of the measured part without an item."""
    synth, events, history = backlog(n)
    typed, catalog = [Event.of(e) for e in events], [ItemInfo.of(r) for r in _catalog(synth, events, model)]
    empty = 0

    def count_empty(kind: str, record) -> None:
        nonlocal empty
        empty += kind == "recommendations" and not record["items"]

    flow = inprocess.Dataflow(JobConfig(), catalog)
    for ev in typed[:history]:
        flow.push(ev)
    flow.emit = count_empty
    start = time.process_time()
    for ev in typed[history:]:
        flow.push(ev)
    cpu = time.process_time() - start
    result = {"events": n, "cpu_ms_per_event": round(1000 * cpu / n, 3), "events_per_s": round(n / cpu, 1),
              "empty_lists": empty}
    say(f"core{' with a model' if model else ''} (the job's steps in one process, same events): "
        f"{result['cpu_ms_per_event']} CPU ms per event, {empty:,} of {n:,} lists empty")
    return result


def state_sizes(svc: Services, job: str) -> dict:
    """State bytes per operator in the latest completed checkpoint (full size, not the increment)."""
    try:
        cid = svc.cluster.wait_checkpoint(job, timeout_s=60)
        details = svc.cluster.rest(f"/jobs/{job}/checkpoints/details/{cid}")
        names = {v["id"]: v["name"] for v in svc.cluster.rest(f"/jobs/{job}")["vertices"]}
        return {names.get(vid, vid): t.get("state_size", t.get("full_state_size", 0))
                for vid, t in details["tasks"].items()}
    except Exception as exc:  # noqa: BLE001 (a figure, not a verdict)
        return {"error": repr(exc)}


def freshness(svc: Services, rate: float, seconds: float, parallelism: int, flags: list[str]) -> dict:
    """Latency from producing an event until its version is in the user's Redis key."""
    svc.fresh()
    synth, events = synth_events(int(rate * (seconds + WARMUP_MAX_S + SETTLE_S)) + 2_000, seed=11)
    run_id = f"fresh-{int(rate)}-{int(time.time())}"
    # linger 5 ms: sent one by one (linger 0), the events cost this process about 0.45 of a
    # core at 450 events/s and the broker 0.25, taken from the job on the same two cores;
    # the linger is inside the measured latency
    producer = make_producer(BOOTSTRAP, linger_ms=5)
    produce_catalog(producer, synth.catalog(), progress=False)
    job = svc.submit(flags, run_id, parallelism)
    versions: dict[int, int] = {}
    pending: dict[int, list[tuple[int, float]]] = {}   # user -> [(version awaited, sent at), ...]
    latencies: list[tuple[float, float]] = []   # (sent at, latency)
    first_list = [0.0]   # when the first list reached Redis
    lock = threading.Lock()
    done = threading.Event()
    done_at = [0.0]

    # Each write of a user's list is announced by Redis (keyspace notifications on the
    # bench's own server): read that one key then, instead of polling every pending key.
    client = redis.Redis.from_url(REDIS_URL)
    client.config_set("notify-keyspace-events", "K$")
    prefix = f"__keyspace@0__:{contracts.user_recommendations_key(0)[:-1]}"
    subscriber = client.pubsub(ignore_subscribe_messages=True)
    subscriber.psubscribe(prefix + "*")

    def settle(user: int, stored: int, now: float) -> None:
        waiting = pending.get(user)
        if waiting:
            latencies.extend((sent, now - sent) for v, sent in waiting if v <= stored)
            left = [(v, sent) for v, sent in waiting if v > stored]
            if left:
                pending[user] = left
            else:
                del pending[user]

    def poll():
        while not done.is_set() or (pending and time.monotonic() < done_at[0] + 30):
            message = subscriber.get_message(timeout=0.1)
            if message is None:
                continue
            now = time.monotonic()
            user = int(message["channel"][len(prefix):])
            raw = client.get(contracts.user_recommendations_key(user))
            match = VERSION.search(raw or b"")
            if match:
                first_list[0] = first_list[0] or now
                with lock:
                    settle(user, int(match.group(1)), now)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    # Warm-up, not measured: until SETTLE_S after the first list reached Redis. The Python
    # workers start only after the job is RUNNING, and then work off what waited for them,
    # while the JVMs compile the job's code; measured from the start, a run's figures would
    # be those of its start-up.
    start, measured_from, n_measured = time.monotonic(), None, int(rate * seconds)
    for n, e in enumerate(events):
        now = time.monotonic()
        if measured_from is None and ((first_list[0] and now - first_list[0] >= SETTLE_S) or now - start >= WARMUP_MAX_S + SETTLE_S):
            measured_from = n
        if measured_from is not None and n - measured_from >= n_measured:
            break
        ahead = n / rate - (now - start)
        if ahead > 0:
            time.sleep(ahead)
        t = int(time.time() * 1000)
        e = {**e, "event_time": t}
        v = versions[e["user_id"]] = next_version(versions.get(e["user_id"]), t)
        key, value, ts = event_message(EVENT_CODEC, e)
        sent = time.monotonic()
        producer.send(contracts.USER_EVENTS_TOPIC, key=key, value=value, timestamp_ms=ts)
        if measured_from is not None:
            with lock:
                pending.setdefault(e["user_id"], []).append((v, sent))
    producer.flush()
    done_at[0] = time.monotonic()
    done.set()
    poller.join()
    subscriber.close()
    producer.close()
    svc.cluster.cancel(job)
    lost = sum(map(len, pending.values()))
    q = _quantiles([latency for _, latency in latencies])
    first = min((sent for sent, _ in latencies), default=0.0)
    windows = [[latency for sent, latency in latencies if w <= sent - first < w + 10] for w in range(0, int(seconds), 10)]
    result = {"rate": rate, "seconds": seconds, "measured": len(latencies), "not_seen_in_30s": lost,
              "warmup_s": round(measured_from / rate, 1) if measured_from is not None else None,
              "p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99),
              "p99_by_10s_ms": [_quantiles(w)(0.99) for w in windows],
              "cdf_ms": [q(i / 100) for i in range(101)]}   # the latency at each percentile, for the plot
    say(f"freshness at {rate:.0f}/s: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms"
        f" ({len(latencies)} events, {lost} not seen; measured after a warm-up of {result['warmup_s']} s;"
        f" p99 by 10 s: {', '.join(str(v) for v in result['p99_by_10s_ms'])})")
    return result


def _quantiles(values: list[float]):
    """p -> the p-quantile of ``values`` (seconds) in ms, None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return lambda p: None
    return lambda p: round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1)


VERSION = re.compile(rb'"version": *(\d+)')


def _get_latencies(args) -> list[float]:
    keys, seconds = args
    client = redis.Redis.from_url(REDIS_URL)
    rng = random.Random(os.getpid())
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        key = rng.choice(keys)
        t0 = time.perf_counter()
        client.get(key)
        out.append(time.perf_counter() - t0)
    return out


def redis_lookups(svc: Services, seconds: float = 5.0) -> dict:
    keys = [k.decode() for k in svc.redis.scan_iter(match=contracts.user_recommendations_key(0)[:-1] + "*",
                                                      count=1000)][:5000]
    if not keys:
        return {"error": "no reco:v1:user:* keys in Redis (run the throughput stage first)"}
    with multiprocessing.Pool(8) as pool:
        lat = sorted(x for part in pool.map(_get_latencies, [(keys, seconds)] * 8) for x in part)
    ours = {"clients": 8, "gets": len(lat), "p50_ms": round(lat[len(lat) // 2] * 1000, 3),
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 3), "keys": len(keys)}
    proc = subprocess.run(["redis-benchmark", "-p", str(REDIS_PORT), "-c", "8", "-n", "100000", "-t", "get",
                           "--csv"], capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    ref = dict(zip((h.strip('"') for h in lines[0].split(",")), (c.strip('"') for c in lines[1].split(",")))) \
        if len(lines) >= 2 else {"error": proc.stderr.strip()}
    say(f"redis GET, 8 clients: p50 {ours['p50_ms']} ms, p99 {ours['p99_ms']} ms; redis-benchmark: {ref}")
    return {"python_redis_py": ours, "redis_benchmark": ref}


def per_entity(state: dict, users: int, items: int) -> dict:
    """Bytes per active user and per item from operator state sizes."""
    def size(prefix):
        return sum(v for k, v in state.items() if isinstance(v, int) and k.startswith(prefix))
    return {"users": users, "items": items,
            "user_activity_bytes_per_user": round(size("UserActivity") / max(users, 1)),
            "ranker_bytes_per_user": round(size("Ranker") / max(users, 1)),
            "item_bytes_per_item": round(size("ItemCooccurrence") / max(items, 1)),
            "operators": state}


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed: no plots")
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    rows = [r for r in results.get("throughput", []) + results.get("window", []) + results.get("ceiling", [])
            if r.get("events_per_s")]
    a.barh([r["label"] for r in rows], [r["events_per_s"] for r in rows],
           color=["tab:gray" if r["label"].startswith("ceiling") else "tab:blue" for r in rows])
    a.axvline(2000, color="tab:red", linestyle="--", label="goal 2,000 events/s")
    a.set_xlabel("events/s (backlog drained)")
    a.legend(loc="lower right")
    for r in results.get("freshness", []):
        if r["measured"]:
            b.plot(r["cdf_ms"], [i / 100 for i in range(101)], label=f"{r['rate']:.0f} events/s")
    b.axvline(1000, color="tab:red", linestyle="--", label="goal p99 1 s")
    b.set_xscale("log")
    b.set_xlabel("event produced -> its list in Redis (ms)")
    b.set_ylabel("share of events")
    b.legend(loc="lower right")
    fig.suptitle(f"reco-flink end to end, {results['machine']}, {results['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    say(f"plot: {path}")


def print_table(results: dict) -> None:
    print(f"\n# {results['date']}  {results['machine']}  (bench/e2e.py)")
    print(f"{'figure':44} {'value':>14}  method")
    for r in (results.get("throughput", []) + results.get("window", []) + results.get("ceiling", [])
              + results.get("model", [])):
        after = f" after a history of {r['history']:,}" if r.get("history") else ""
        empty = f", {r['empty_lists']:,} of its lists empty" if "empty_lists" in r else ""
        print(f"{r['label']:44} {r.get('events_per_s', 'n/a'):>14}  events/s, backlog of {r['events']:,} drained{after}"
              f"{empty}, {r.get('committed', 0):,} committed; {r.get('cpu_ms_per_event', 'n/a')} CPU ms per event")
    core, job = results.get("core"), (results.get("throughput") or [{}])[0].get("cpu_ms_per_event")
    if core:
        print(f"{'core: the job steps in one process':44} {core['cpu_ms_per_event']:>14}  CPU ms per event, same events, "
              f"no engine ({core['events_per_s']:,.0f} events/s on one core)")
        if job:
            print(f"{'engine overhead: core / job p=2 CPU per event':44} {core['cpu_ms_per_event'] / job:>14.2f}  "
                  f"share of the job's CPU that is its own steps")
    ratios = results.get("model_ratios")
    if ratios:
        print(f"{'with a model / without, p=2 (by pair)':44} {statistics.median(ratios):>14.3f}  median of "
              f"{len(ratios)} pairs' events/s ratios ({ratios[0]}-{ratios[-1]})")
    for label, r in zip(("core, no model", "core, model"), results.get("model_core", [])):
        print(f"{label:44} {r['cpu_ms_per_event']:>14}  CPU ms per event, the job's steps in one process")
    for r in results.get("freshness", []):
        print(f"{'freshness at %.0f events/s p50/p95/p99' % r['rate']:44} "
              f"{'%s/%s/%s' % (r['p50_ms'], r['p95_ms'], r['p99_ms']):>14}  ms, produce -> Redis, "
              f"{r['measured']:,} events")
    red = results.get("redis", {})
    if "python_redis_py" in red:
        o, ref = red["python_redis_py"], red["redis_benchmark"]
        print(f"{'Redis GET p50/p99, 8 clients (redis-py)':44} {'%s/%s' % (o['p50_ms'], o['p99_ms']):>14}  ms")
        print(f"{'redis-benchmark GET p50/p99, 8 clients':44} "
              f"{'%s/%s' % (ref.get('p50_latency_ms'), ref.get('p99_latency_ms')):>14}  ms")
    st = results.get("state")
    if st and "users" in st:
        print(f"{'state bytes per user (UserActivity+Ranker)':44} "
              f"{st['user_activity_bytes_per_user'] + st['ranker_bytes_per_user']:>14}  checkpoint size / users")
        print(f"{'state bytes per item (ItemCooccurrence)':44} {st['item_bytes_per_item']:>14}  checkpoint size / items")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=40_000, help="backlog size per throughput run")
    ap.add_argument("--only", default=",".join(STAGES), help=f"comma-separated stages of {STAGES}")
    ap.add_argument("--repeats", type=int, default=3, help="p=2 throughput runs, and model stage pairs; the median is reported")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each freshness run")
    ap.add_argument("--rates", default="", help="freshness at these events/s (comma-separated) instead of at "
                                                "25/50/75%% of the measured maximum, e.g. --rates 50")
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose job is measured (an older commit)")
    ap.add_argument("--out", type=Path, default=RESULTS / "e2e.json")
    ap.add_argument("--keep", action="store_true", help="leave the services running")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other stages' figures of --out (freshness reuses its maximum)")
    ap.add_argument("--flags", default="", help="extra flags for every job run, e.g. '--state-cache-keys 10000'")
    args = ap.parse_args(argv)
    stages = set(args.only.split(","))
    if stages - set(STAGES):
        ap.error(f"unknown stage(s): {', '.join(sorted(stages - set(STAGES)))}")
    svc = Services(args.root.resolve())
    extra = args.flags.split()
    results = json.loads(args.out.read_text()) if args.merge and args.out.exists() else {}
    results.update({"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()}, {os.cpu_count()} cores",
                    "root": str(args.root.resolve()), "events": args.events, "flags": extra})
    svc.start()
    try:
        if stages - {"redis"}:
            throughput(svc, 10_000, 2, extra, "warm-up (not kept)", history=False)
        rates = [float(r) for r in args.rates.split(",") if r]
        if ("throughput" in stages or "state" in stages
                or ("freshness" in stages and not rates and "throughput" not in results)):
            p1 = throughput(svc, args.events, 1, extra, "job p=1")
            runs = [throughput(svc, args.events, 2, extra, f"job p=2, run {n + 1} of {args.repeats}")
                    for n in range(args.repeats)]
            results["throughput"] = [median_run(runs, "job p=2"), p1]
            results["throughput_p2_runs"] = runs
            results["core"] = core_cost(args.events)
            if "state" in stages:
                _, events = synth_events(args.events)
                results["state"] = per_entity(results["throughput"][0].get("state", {}),
                                              len({e["user_id"] for e in events}), len({e["item_id"] for e in events}))
        if "redis" in stages:
            results["redis"] = redis_lookups(svc)
        if "ceiling" in stages:
            # five times the backlog: the pass-through drains 40,000 records in about the time it takes to start
            results["ceiling"] = [throughput(svc, 5 * args.events, 2, keyed, f"ceiling: {label} p=2",
                                             passthrough=True, history=False)
                                  for keyed, label in (([], "pass-through"), (["--keyed", "plain"], "keyed"),
                                                       (["--keyed", "state"], "keyed, state"),
                                                       (["--keyed", "timer"], "keyed, state, timer"),
                                                       (["--keyed", "state", "--keys", "30"], "keyed, state, 30 keys"))]
        if "window" in stages:
            results["window"] = [throughput(svc, args.events, 2, extra + ["--recent-items", str(w),
                                                                   "--seeds", str(min(w, JobConfig().seeds))],
                                            f"job p=2 W={w}") for w in (5, 50)]
        if "model" in stages:
            # in pairs, without then with embeddings (a model trained on the same events): one
            # pair moves by half between runs here, so the ratio is the median of --repeats pairs
            pairs = [(throughput(svc, args.events, 2, extra, f"job p=2, no model, pair {n + 1} of {args.repeats}"),
                      throughput(svc, args.events, 2, extra + ["--embedding-weight", str(MODEL_BETA)],
                                 f"job p=2, model, beta {MODEL_BETA}, pair {n + 1} of {args.repeats}", model=True))
                      for n in range(args.repeats)]
            results["model"] = [median_run([a for a, _ in pairs], "job p=2, no model"),
                                median_run([b for _, b in pairs], f"job p=2, model, beta {MODEL_BETA}")]
            results["model_ratios"] = sorted(round(b.get("events_per_s", 0.0) / a["events_per_s"], 3)
                                             for a, b in pairs if a.get("events_per_s"))
            results["model_core"] = [core_cost(args.events), core_cost(args.events, model=True)]
        if "freshness" in stages:
            if not rates:
                top = results["throughput"][0].get("events_per_s") or 100.0
                rates = [top * share for share in (0.25, 0.5, 0.75)]
            results["freshness"] = [freshness(svc, rate, args.seconds, 2, extra) for rate in rates]
    finally:
        if not args.keep:
            svc.stop()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))   # what was measured, even when a stage failed
    print_table(results)
    plot(results, args.out.with_suffix(".png"))
    say(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
