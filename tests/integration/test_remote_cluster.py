"""The job on a cluster that is not this project's (docs/operations.md "Submitting to an
existing cluster"):

- the archive of deploy/package.sh (built here, or reused while pyproject.toml and .venv's
  versions are unchanged);
- a standalone cluster from the Flink distribution that PyFlink installs, copied to another
  directory, with its stock configuration (only the ports, the slots and the checkpoint and
  savepoint directories changed) and opt/flink-python in lib/, whose processes run without
  the project's .venv in their environment (lab.flinkcluster.StockCluster);
- the job submitted to it with cluster.sh submit, RECO_FLINK_JOBMANAGER and RECO_FLINK_ARCHIVE:
  its Python workers run the archive's interpreter and load nothing of .venv or of the
  interpreter .venv was made from; the Kafka connector and the timer fix are not in the
  cluster's lib/, they go with the job;
- N events, every list committed, the job stopped with a savepoint (cluster.sh flink stop
  --savepointPath), M more events, the job resumed from the savepoint with a new consumer
  group (only the savepoint knows where the source was), every list committed again: a
  read_committed consumer sees exactly one list per valid event, no version twice.

Slow: the archive once (2-3 minutes, ~170 MB in dist/), then a cluster and two jobs (about
1.5 minutes here). Own ports: RECO_TEST_REMOTE_FLINK_REST_PORT (28481),
RECO_TEST_REMOTE_FLINK_RPC_PORT (28423).
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
import yaml

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from lab.flinkcluster import STOCK_CHANGES, StockCluster, flatten
from lab.jobs import committed_versions
from lab.oracle import expected_versions
from lab.wait import wait_for
from reco_tools.kafka_io import event_message, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
REST_PORT = int(os.environ.get("RECO_TEST_REMOTE_FLINK_REST_PORT", "28481"))
RPC_PORT = int(os.environ.get("RECO_TEST_REMOTE_FLINK_RPC_PORT", "28423"))
EVENTS = AvroCodec("reco.UserEvent")
MINUTE = 60_000
BEFORE, AFTER = 300, 200          # events before the savepoint, and after it


@pytest.fixture(scope="module")
def archive():
    """dist/reco-env.tar.gz, built by the one command (a no-op while it is up to date)."""
    proc = subprocess.run([str(ROOT / "deploy" / "package.sh")], capture_output=True, text=True, timeout=3600)
    print(proc.stdout, proc.stderr, sep="\n")
    assert proc.returncode == 0, "deploy/package.sh failed"
    path = Path(os.environ.get("RECO_DIST_DIR") or ROOT / "dist").resolve() / "reco-env.tar.gz"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def cluster(stack, archive):
    run_dir = Path(stack.env["RECO_RUN_DIR"]).resolve() / "remote-cluster"
    with StockCluster(run_dir, REST_PORT, RPC_PORT, slots=2, archive=archive,
                      say=lambda msg: print(f"[stock cluster] {msg}", flush=True), env=stack.env).running() as c:
        yield c


def _flags(stack, cluster: StockCluster, run_id: str, group: str) -> list[str]:
    # The client's conf (the distribution's stock one) names no checkpoint directory: the job's own.
    return ["--checkpoint-dir", (cluster.directory / "job-checkpoints").as_uri(),
            "--kafka-bootstrap", stack.bootstrap, "--redis-url", stack.redis_url,
            "--consumer-group", group, "--transactional-id-prefix", f"remote-{run_id}",
            "--parallelism", "2", "--checkpoint-interval-ms", "2000", "--debounce-ms", "0",
            "--bucket-ms", str(MINUTE), "--cooccurrence-window-ms", str(10 * MINUTE),
            "--max-out-of-orderness-ms", "1000"]


def _wait_committed(stack, cluster: StockCluster, job_id: str, events: list[dict], what: str) -> dict[int, list[int]]:
    finals = {u: v[-1] for u, v in expected_versions(events).items()}

    def every_last_list():
        # a job that keeps failing (restarts with a growing backoff) fails the test at its third failure
        state = cluster.rest(f"/jobs/{job_id}")["state"]
        failures = cluster.rest(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])
        if state in ("FAILED", "CANCELED", "FINISHED") or len(failures) >= 3:
            cause = failures[0].get("stacktrace", "") if failures else ""
            raise AssertionError(f"job {job_id} is {state} after {len(failures)} failure(s); the last:\n{cause[-4000:]}")
        got = committed_versions(stack.bootstrap)
        return got if all(finals[u] in got.get(u, ()) for u in finals) else None
    return wait_for(every_last_list, 600, f"every user's last list committed ({what})", poll_s=2)


def _assert_stock(cluster: StockCluster) -> None:
    """Only STOCK_CHANGES differ from the distribution's conf, and the job's jars are not in lib/."""
    stock = flatten(yaml.safe_load((cluster.distribution / "conf" / "config.yaml").read_text()))
    ours = flatten(yaml.safe_load((cluster.home / "conf" / "config.yaml").read_text()))
    changed = sorted(k for k in stock.keys() | ours.keys() if stock.get(k) != ours.get(k))
    assert changed == sorted(STOCK_CHANGES)
    lib = sorted(p.name for p in (cluster.home / "lib").iterdir())
    assert not [j for j in lib if "kafka" in j or "reco" in j], lib


def _assert_workers_use_the_archive(cluster: StockCluster) -> None:
    """Each Python worker runs the extracted archive's interpreter, has no .venv in its
    environment and has loaded nothing from .venv or from the interpreter .venv was made from."""
    venv, base = str(ROOT / ".venv"), os.path.realpath(sys.base_prefix)
    workers = cluster.python_workers()
    assert workers, "no Python worker below the TaskManager"
    for pid in workers:
        exe = os.path.realpath(f"/proc/{pid}/exe")
        assert "/python-archives/venv/bin/" in exe, exe
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert venv not in environ, f"worker {pid} has .venv in its environment"
        mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                  if len(line.split()) >= 6}
        outside = sorted(p for p in mapped if p.startswith((venv + "/", base + "/")))
        assert not outside, f"worker {pid} ({exe}) loaded {outside[:5]}"
    print(f"\n{len(workers)} Python worker(s), all on {os.path.dirname(exe)}")


def test_job_from_the_archive_on_a_stock_cluster_is_exactly_once_across_a_savepoint(stack, cluster, tmp_path):
    _assert_stock(cluster)
    ensure_topics(stack.bootstrap, recreate=True)
    store = redis.Redis.from_url(stack.redis_url)
    store.flushdb()
    run_id = uuid.uuid4().hex[:8]
    synth = Synth(SynthConfig(events=BEFORE, users=25, items=60, clusters=4, seed=31))
    before = sorted(synth.events(), key=lambda e: e["event_time"])
    later = Synth(SynthConfig(events=AFTER, users=25, items=60, clusters=4, seed=32,
                              start_ms=before[-1]["event_time"] + 5 * MINUTE))
    after = sorted(later.events(), key=lambda e: e["event_time"])
    producer = make_producer(stack.bootstrap)
    jobs = []
    try:
        produce_catalog(producer, synth.catalog(), progress=False)
        jobs.append(cluster.submit(_flags(stack, cluster, run_id, f"remote-{run_id}")))
        cluster.wait_running(jobs[-1], timeout_s=600)
        produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in before), progress=False)
        first = _wait_committed(stack, cluster, jobs[-1], before, "before the savepoint")
        assert sum(map(len, first.values())) == BEFORE
        _assert_workers_use_the_archive(cluster)

        savepoint = cluster.stop_with_savepoint(jobs[-1], tmp_path / "savepoints")
        print(f"savepoint: {savepoint}")
        produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in after), progress=False)
        # a consumer group without offsets: where the source was, only the savepoint can say
        jobs.append(cluster.submit(_flags(stack, cluster, run_id, f"remote-{run_id}-resumed"), from_checkpoint=savepoint))
        cluster.wait_running(jobs[-1], timeout_s=600)
        versions = _wait_committed(stack, cluster, jobs[-1], before + after, "after the resume")

        count = sum(map(len, versions.values()))
        print(f"committed lists: {count} for {BEFORE} + {AFTER} valid events")
        assert all(len(set(v)) == len(v) for v in versions.values()), "a list was committed twice"
        assert count == BEFORE + AFTER
        assert {u: sorted(v) for u, v in versions.items()} == expected_versions(before + after)
        assert cluster.rest(f"/jobs/{jobs[-1]}")["state"] == "RUNNING"
        last = json.loads(store.get(contracts.user_recommendations_key(after[-1]["user_id"])))
        assert last["version"] == expected_versions(before + after)[after[-1]["user_id"]][-1]
    finally:
        producer.close()
        for job in jobs:
            if cluster.rest(f"/jobs/{job}")["state"] not in ("FINISHED", "CANCELED", "FAILED"):
                cluster.cancel(job)
