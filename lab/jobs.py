"""The one way to run the job (``flink_jobs.main``) on a local mini-cluster in a child
process, and to follow it: its REST API, its consumer group, its committed output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from kafka.errors import KafkaError

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.internals import child_environment
from flink_jobs.sensitive import write_properties
from lab.wait import wait_for
from reco_tools.kafka_io import consume, make_consumer
from reco_tools.topics import connect_admin

ROOT = Path(__file__).resolve().parents[1]


class Job:
    """A job started by ``start_job``: its process (``proc``), its folder (``log_dir``, with
    ``job.out``, the client's output, and the mini-cluster's own ``flink-*.log``)."""

    def __init__(self, proc: subprocess.Popen, log_dir: Path, consumer_group: str):
        self.proc, self.log_dir, self.consumer_group = proc, log_dir, consumer_group

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> Path:
        return self.log_dir / "job.out"

    def poll(self) -> int | None:
        return self.proc.poll()

    def tail(self, chars: int = 3000) -> str:
        return self.output.read_text(errors="replace")[-chars:]

    def logs(self) -> str:
        """Everything the job has logged so far: its client's output and the mini-cluster's
        log (where its Python workers' log lines go too)."""
        files = [self.output, *sorted(self.log_dir.glob("flink-*.log"))]
        return "\n".join(f.read_text(errors="replace") for f in files if f.is_file())

    def check_alive(self) -> None:
        """Raise with the end of its output if the job has exited."""
        if self.proc.poll() is not None:
            raise AssertionError(f"the job exited with {self.proc.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM to its process group (the client, its JVM and Python workers), SIGKILL after 30 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def job_command(bootstrap: str, run_id: str, *flags: str, config: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "flink_jobs.main", "--kafka-bootstrap", bootstrap,
           "--consumer-group", f"reco-{run_id}", "--transactional-id-prefix", f"reco-{run_id}", *flags]
    return cmd + ["--config", str(config)] if config is not None else cmd


def start_job(bootstrap: str, redis_url: str, run_id: str, log_dir: Path, *flags: str,
              config: Path | None = None, kafka_properties: dict[str, str] | None = None) -> Job:
    """The job on a local mini-cluster, in a child process (and process group) of its own,
    with main.py ``flags``; consumer group and transactional ids ``reco-{run_id}``.

    Secrets stay off its command line (which every user of the machine can read): the Redis
    URL goes in its environment (RECO_REDIS_URL), Kafka client properties in a file only
    this user can read, in ``log_dir`` (--kafka-properties-file)."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = job_command(bootstrap, run_id, *flags, config=config)
    if kafka_properties:
        cmd += ["--kafka-properties-file", str(write_properties(log_dir / "kafka.properties", kafka_properties))]
    env = child_environment()
    env.pop("RECO_REDIS_URL_FILE", None)
    env.update(RECO_REDIS_URL=redis_url, FLINK_LOG_DIR=str(log_dir))
    with open(log_dir / "job.out", "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Job(proc, log_dir, f"reco-{run_id}")


def wait_until_consuming(bootstrap: str, job: Job, timeout_s: float,
                         properties: dict[str, str] | None = None) -> None:
    """Until the job has committed source offsets once (its first checkpoint): it is up and
    reading, so what is produced next arrives as live traffic, not as a backlog."""
    admin = connect_admin(bootstrap, properties=properties)

    def committed():
        job.check_alive()
        try:
            return bool(admin.list_consumer_group_offsets(job.consumer_group))
        except KafkaError:   # e.g. no group coordinator yet on a fresh broker
            return False
    try:
        wait_for(committed, timeout_s, f"the job's first checkpoint (offsets of {job.consumer_group})", poll_s=1)
    finally:
        admin.close()


def committed_versions(bootstrap: str, properties: dict[str, str] | None = None) -> dict[int, list[int]]:
    """user -> the versions of its lists in the recommendations topic, read_committed, in
    topic order (a version twice: a list committed twice)."""
    codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.RECOMMENDATIONS_TOPIC])
    consumer = make_consumer(bootstrap, contracts.RECOMMENDATIONS_TOPIC, properties=properties)
    versions: dict[int, list[int]] = {}
    try:
        for record in consume(consumer, idle_timeout_s=3):
            doc = codec.decode(record.value)
            versions.setdefault(doc["user_id"], []).append(doc["version"])
    finally:
        consumer.close()
    return versions


def committed_version(bootstrap: str, user: int, version: int, timeout_s: float,
                      properties: dict[str, str] | None = None) -> bool:
    """True once a read_committed consumer sees ``user``'s list ``version``; False after
    ``timeout_s``."""
    codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.RECOMMENDATIONS_TOPIC])
    consumer = make_consumer(bootstrap, contracts.RECOMMENDATIONS_TOPIC, properties=properties)
    key, deadline = contracts.record_key(user), time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    if rec.key == key and codec.decode(rec.value)["version"] == version:
                        return True
        return False
    finally:
        consumer.close()


class FlinkRest:
    """A Flink cluster's REST API (a mini-cluster's or a standalone cluster's)."""

    def __init__(self, port: int):
        self.port = port

    def rest(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else {}

    def vertex_metrics(self, job_id: str, name: str, operator: str = "") -> list[tuple[dict, list[float]]]:
        """(vertex, the user metric ``name`` of the operator ``operator`` (any, when empty) on
        each of its subtasks that reports it), for the vertices that have it."""
        found = []
        for v in self.rest(f"/jobs/{job_id}")["vertices"]:
            base = f"/jobs/{job_id}/vertices/{v['id']}/metrics"
            ids = [m["id"] for m in self.rest(base) if m["id"].endswith(f"{operator}.{name}")]
            if ids:
                query = ",".join(urllib.parse.quote(n, safe="") for n in ids)
                found.append((v, [float(m["value"]) for m in self.rest(f"{base}?get={query}")]))
        return found

    def subtask_metric(self, job_id: str, operator: str, name: str) -> list[float] | None:
        """A user metric's value on each subtask of the operator named ``operator`` (chained
        or not), or None while any subtask has not reported it."""
        try:
            for vertex, values in self.vertex_metrics(job_id, name, f".{operator}"):
                return values if len(values) == vertex["parallelism"] else None
        except (urllib.error.URLError, OSError):
            pass
        return None


class MiniClusterRest(FlinkRest):
    """The REST API of a ``start_job`` job's mini-cluster; its random port is in the JVM's log."""

    def __init__(self, job: Job):
        def port():
            job.check_alive()
            for f in job.log_dir.glob("flink-*.log"):
                m = re.search(r"Rest endpoint listening at [\w.]+:(\d+)", f.read_text(errors="replace"))
                if m:
                    return int(m.group(1))
        super().__init__(wait_for(port, 120, "the mini-cluster's REST endpoint", poll_s=1))

        def jobs():
            try:
                return [j["id"] for j in self.rest("/jobs")["jobs"]]
            except (urllib.error.URLError, OSError):   # e.g. 503 while the dispatcher starts
                return None
        self.job_id = wait_for(jobs, 120, "the job", poll_s=1)[0]

    def job(self):
        return self.rest(f"/jobs/{self.job_id}")

    def num_restarts(self) -> int:
        # the REST API fetches metrics every few seconds: none at all until the first fetch
        found = wait_for(lambda: self.rest(f"/jobs/{self.job_id}/metrics?get=numRestarts"), 30,
                         "the job's numRestarts metric", poll_s=1)
        return int(found[0]["value"])

    def exceptions(self) -> list:
        return self.rest(f"/jobs/{self.job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])

    def operator_metric(self, suffix: str) -> int:
        """Sum of a user metric over every vertex and subtask that has it."""
        return int(sum(sum(values) for _, values in self.vertex_metrics(self.job_id, suffix)))
