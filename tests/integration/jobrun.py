"""The job on a local mini-cluster in a child process, and the cluster's REST API: shared
by the integration tests that run the whole Kafka job."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from reco_tools.demo import stop_job  # noqa: F401 (the tests' way to stop what start_job started)

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout_s, what, poll_s=0.3):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def start_job(stack, run_id, log_dir: Path, redis_url: str, *flags):
    """The job on a local mini-cluster, like reco_tools.demo.start_job, but with the Redis
    URL (and its password) in the environment, not on the command line, and the JVM's log
    in ``log_dir`` (its REST port is read from there)."""
    cmd = [sys.executable, "-m", "flink_jobs.main", "--kafka-bootstrap", stack.bootstrap,
           "--consumer-group", f"reco-{run_id}", "--transactional-id-prefix", f"reco-{run_id}", *flags]
    env = {k: v for k, v in os.environ.items() if k != "PYFLINK_GATEWAY_DISABLED"}
    env.update(RECO_REDIS_URL=redis_url, FLINK_LOG_DIR=str(log_dir))
    out = open(log_dir / "job.out", "w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)




class MiniClusterRest:
    """The mini-cluster's REST API; its random port is in the JVM log."""

    def __init__(self, log_dir: Path, job):
        def port():
            if job.poll() is not None:
                pytest.fail(f"the job exited with {job.returncode}:\n{(log_dir / 'job.out').read_text()[-3000:]}")
            for f in log_dir.glob("flink-*.log"):
                m = re.search(r"Rest endpoint listening at [\w.]+:(\d+)", f.read_text(errors="replace"))
                if m:
                    return int(m.group(1))
        self.port = wait_for(port, 120, "the mini-cluster's REST endpoint", poll_s=1)

        def jobs():
            try:
                return [j["id"] for j in self.get("/jobs")["jobs"]]
            except (urllib.error.URLError, OSError):   # e.g. 503 while the dispatcher starts
                return None
        self.job_id = wait_for(jobs, 120, "the job", poll_s=1)[0]

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return json.load(r)

    def job(self):
        return self.get(f"/jobs/{self.job_id}")

    def num_restarts(self) -> int:
        # the REST API fetches metrics every few seconds: none at all until the first fetch
        found = wait_for(lambda: self.get(f"/jobs/{self.job_id}/metrics?get=numRestarts"), 30,
                         "the job's numRestarts metric", poll_s=1)
        return int(found[0]["value"])

    def exceptions(self) -> list:
        return self.get(f"/jobs/{self.job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])

    def operator_metric(self, suffix: str) -> int:
        """Sum of a user metric over every vertex and subtask that has it."""
        total = 0
        for v in self.job()["vertices"]:
            base = f"/jobs/{self.job_id}/vertices/{v['id']}/metrics"
            names = [m["id"] for m in self.get(base) if m["id"].endswith("." + suffix)]
            if names:
                query = ",".join(urllib.parse.quote(n, safe="") for n in names)
                total += sum(int(float(m["value"])) for m in self.get(f"{base}?get={query}"))
        return total
