"""The standalone cluster of ``deploy/flink/cluster.sh``, driven from Python: submit the job,
follow it through the REST API, find its checkpoints. Used by the chaos scenario and the
end-to-end benchmark.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

from flink_jobs.internals import child_environment
from lab.jobs import FlinkRest
from lab.wait import wait_for

ROOT = Path(__file__).resolve().parents[1]


class FlinkCluster(FlinkRest):
    """``root``: the checkout whose cluster.sh and job are used (another one is how the
    benchmark measures an older commit); ``say``: where progress lines go; ``env``: the
    environment of cluster.sh (default: this process's), e.g. other RECO_* ports."""

    def __init__(self, rest_port: int = 8081, run_dir: Path = ROOT / ".run", root: Path = ROOT,
                 say=print, pythonpath: str | None = None, env: dict[str, str] | None = None):
        super().__init__(rest_port)
        self.run_dir, self.root, self.say = Path(run_dir), Path(root), say
        self.pythonpath, self.env = pythonpath, env

    @contextlib.contextmanager
    def running(self):
        """The cluster started (cluster.sh start) for the block, and stopped after it."""
        self.script("start")
        try:
            yield self
        finally:
            self.script("stop", check=False)

    def script(self, *args: str, check: bool = True) -> str:
        env = {**child_environment(self.env), "RECO_RUN_DIR": str(self.run_dir),
               "RECO_FLINK_REST_PORT": str(self.port)}
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        proc = subprocess.run([str(self.root / "deploy" / "flink" / "cluster.sh"), *args], env=env,
                              capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def submit(self, flags: list[str], from_checkpoint: str | None = None) -> str:
        """``flink run -d`` the job with main.py ``flags``; returns the job id."""
        out = self.script("submit", *(["--from", from_checkpoint] if from_checkpoint else []), *flags)
        match = re.search(r"JobID ([0-9a-f]{32})", out)
        if not match:
            raise RuntimeError(f"no job id in:\n{out}")
        return match.group(1)

    def ensure_taskmanager(self) -> None:
        """Start a TaskManager when none is registered (one can also die of a cancel)."""
        if self.rest("/overview")["taskmanagers"] == 0:
            self.say("no TaskManager registered: starting one")
            self.script("start-taskmanager")

    def wait_state(self, job_id: str, states: set[str], timeout_s: float = 120) -> str:
        def state():
            current = self.rest(f"/jobs/{job_id}")["state"]
            if current not in states and "RUNNING" in states:
                # With RocksDB, PyFlink 2.2.1's TaskManager can die ("pthread lock: Invalid
                # argument") while a cancelled job's tasks close: a waiting job needs a new one.
                self.ensure_taskmanager()
            return current if current in states else None
        return wait_for(state, timeout_s, f"job {job_id} to be {' or '.join(sorted(states))}", poll_s=1)

    def wait_running(self, job_id: str, timeout_s: float = 120) -> None:
        """Until every task of the job runs (the job can be RUNNING while its tasks deploy)."""
        self.wait_state(job_id, {"RUNNING"}, timeout_s)

        def all_running():
            if all(v["status"] == "RUNNING" for v in self.rest(f"/jobs/{job_id}")["vertices"]):
                return True
            self.ensure_taskmanager()
        wait_for(all_running, timeout_s, f"every task of job {job_id} to run", poll_s=0.5)

    def wait_gauge(self, job_id: str, operator: str, name: str, at_least: float, timeout_s: float = 120) -> None:
        """Until every subtask of the operator ``operator`` reports its metric ``name`` at
        ``at_least`` or more."""
        def reached():
            values = self.subtask_metric(job_id, operator, name)
            if values is not None and min(values) >= at_least:
                return True
            self.ensure_taskmanager()
        wait_for(reached, timeout_s, f"{name} >= {at_least} on every {operator} subtask of job {job_id}", poll_s=0.5)

    def wait_checkpoint(self, job_id: str, timeout_s: float = 180, after: int = 0) -> int:
        """Until the job has completed a checkpoint since it (re)started, with an id above
        ``after`` when given; returns its id."""
        def completed():
            latest = self.rest(f"/jobs/{job_id}/checkpoints").get("latest", {}).get("completed")
            return latest["id"] if latest and latest["id"] > after else None
        return wait_for(completed, timeout_s, f"a checkpoint of job {job_id} after {after}", poll_s=0.5)

    def latest_checkpoint(self, job_id: str) -> str:
        """The newest completed, retained checkpoint of a job (one with its _metadata written)."""
        base = self.run_dir / "flink" / "checkpoints" / job_id
        done = [p for p in base.glob("chk-*") if (p / "_metadata").is_file()]
        if not done:
            raise RuntimeError(f"no completed checkpoint in {base}")
        return str(max(done, key=lambda p: int(p.name.split("-")[1])))

    def cancel(self, job_id: str) -> None:
        """Cancel a job and wait until it has ended."""
        self.rest(f"/jobs/{job_id}?mode=cancel", method="PATCH")
        self.wait_state(job_id, {"CANCELED", "FAILED", "FINISHED"})

    def stop_with_savepoint(self, job_id: str, directory: Path, timeout_s: float = 300) -> str:
        """``flink stop --savepointPath DIR``: a savepoint, then the job ends (FINISHED); returns
        the savepoint's path, for ``submit(..., from_checkpoint=path)``."""
        import pyflink

        flink = Path(pyflink.__file__).resolve().parent / "bin" / "flink"
        env = {**child_environment(), "FLINK_CONF_DIR": str(self.run_dir / "flink" / "conf")}
        proc = subprocess.run([str(flink), "stop", "--savepointPath", str(directory), "-m",
                               f"localhost:{self.port}", job_id],
                              env=env, capture_output=True, text=True, timeout=timeout_s)
        match = re.search(r"Savepoint completed\. Path: (\S+)", proc.stdout)
        if proc.returncode != 0 or not match:
            raise RuntimeError(f"flink stop {job_id} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        self.wait_state(job_id, {"FINISHED", "CANCELED", "FAILED"})
        return match.group(1)
