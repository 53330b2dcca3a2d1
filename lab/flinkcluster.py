"""The standalone cluster of ``deploy/flink/cluster.sh``, driven from Python: submit the job,
follow it through the REST API, find its checkpoints. Used by the chaos scenario and the
end-to-end benchmark.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
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

    def taskmanagers_running(self) -> int:
        """How many TaskManager processes of this cluster run (the JobManager notices a dead
        one only after its heartbeat timeout)."""
        running = 0
        for pid_file in (self.run_dir / "flink").glob("flink-*-taskexecutor.pid"):
            for line in pid_file.read_text().split():
                try:
                    args = Path(f"/proc/{int(line)}/cmdline").read_bytes()
                except (OSError, ValueError):
                    continue
                if b"TaskManagerRunner" in args and str(self.run_dir / "flink" / "conf").encode() in args:
                    running += 1
        return running

    def taskmanagers_wanted(self) -> int:
        """The cluster's TaskManagers (cluster.sh writes one line per TaskManager to its workers file)."""
        workers = self.run_dir / "flink" / "conf" / "workers"
        return len(workers.read_text().split()) if workers.is_file() else 1

    def ensure_taskmanager(self) -> None:
        """Start the TaskManagers missing (one can also die of a cancel)."""
        if self.taskmanagers_running() < self.taskmanagers_wanted():
            self.say("a TaskManager is missing: starting it")
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


# --- a cluster that is not this project's ------------------------------------------------------

# What StockCluster changes in the distribution's conf/config.yaml (flattened keys); the rest stays stock.
STOCK_CHANGES = ("jobmanager.rpc.port", "rest.port", "taskmanager.numberOfTaskSlots",
                 "execution.checkpointing.dir", "execution.checkpointing.savepoint-dir")


def flatten(conf: dict, prefix: str = "") -> dict[str, object]:
    """A Flink config.yaml as flat keys (``{"rest": {"port": 1}}`` -> ``{"rest.port": 1}``)."""
    flat: dict[str, object] = {}
    for key, value in conf.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _descendants(roots: list[int]) -> list[int]:
    """Every process below ``roots`` (not the roots), from /proc."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], set(roots)
    while frontier:
        children = {p for p, pp in parent.items() if pp in frontier and p not in found}
        found.extend(sorted(children))
        frontier = children
    return found


class StockCluster(FlinkCluster):
    """A standalone cluster as someone else's: the Flink distribution that PyFlink installs,
    copied into ``directory`` (as an operator unpacks a Flink release), its stock
    ``conf/config.yaml`` with only the ports, the task slots and the checkpoint and savepoint
    directories changed (``STOCK_CHANGES``), and ``opt/flink-python`` copied into ``lib/`` (the
    one prerequisite of a cluster running Python jobs). Its processes run with an environment
    of their own (``env -i``: a PATH of /usr/bin and /bin, JAVA_HOME, HOME in ``directory``), so
    that they never see the project's .venv: a Python worker has only what the job ships.

    Jobs go to it the documented way, ``cluster.sh submit`` with RECO_FLINK_JOBMANAGER (and
    RECO_FLINK_ARCHIVE: ``archive``); ``env``: the rest of the client's environment."""

    def __init__(self, directory: Path, rest_port: int, rpc_port: int, slots: int = 2,
                 archive: Path | None = None, say=print, env: dict[str, str] | None = None):
        import pyflink

        self.directory = Path(directory).resolve()
        self.distribution = Path(pyflink.__file__).resolve().parent
        self.home = self.directory / f"flink-{pyflink.version.__version__}"
        self.rpc_port, self.slots = rpc_port, slots
        client = {**(os.environ if env is None else env), "RECO_FLINK_JOBMANAGER": f"localhost:{rest_port}"}
        if archive is not None:
            client["RECO_FLINK_ARCHIVE"] = str(archive)
        super().__init__(rest_port, run_dir=self.directory / "client", say=say, env=client)

    # -- installation and processes --
    def install(self) -> None:
        """The distribution copied (jars hard-linked when the file system allows), the
        conf written. A former installation in ``directory`` is replaced."""
        import yaml

        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)

        def link_or_copy(src, dst):
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        for part in ("lib", "opt", "plugins"):   # read only: links
            shutil.copytree(self.distribution / part, self.home / part, copy_function=link_or_copy)
        for part in ("bin", "conf"):             # conf is edited: copies
            shutil.copytree(self.distribution / part, self.home / part)
        (self.home / "log").mkdir()
        for jar in (self.home / "opt").glob("flink-python-*.jar"):
            shutil.copy2(jar, self.home / "lib" / jar.name)
        conf_file = self.home / "conf" / "config.yaml"
        conf = yaml.safe_load(conf_file.read_text())
        conf["jobmanager"]["rpc"]["port"] = self.rpc_port
        conf["rest"]["port"] = self.port
        conf["taskmanager"]["numberOfTaskSlots"] = self.slots
        conf.setdefault("execution", {})["checkpointing"] = {
            "dir": (self.directory / "checkpoints").as_uri(),
            "savepoint-dir": (self.directory / "savepoints").as_uri()}
        conf_file.write_text(yaml.safe_dump(conf, sort_keys=False, width=100_000))

    def daemon_environment(self) -> dict[str, str]:
        """All the environment the cluster's processes get."""
        java = shutil.which("java")
        if not java:
            raise RuntimeError("no java on PATH")
        return {"PATH": "/usr/bin:/bin", "JAVA_HOME": str(Path(java).resolve().parents[1]),
                "HOME": str(self.directory), "USER": os.environ.get("USER") or "flink", "LANG": "C.UTF-8",
                "FLINK_PID_DIR": str(self.directory)}

    def _daemon(self, script: str, *args: str) -> None:
        proc = subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in self.daemon_environment().items()),
                               "bash", str(self.home / "bin" / script), *args],
                              cwd=self.directory, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")

    def pids(self, kind: str) -> list[int]:
        """The live daemons of this cluster of one kind (taskexecutor | standalonesession): a pid
        of its pid file counts only while that process still runs from this installation."""
        found = []
        for pid_file in self.directory.glob(f"flink-*-{kind}.pid"):
            for line in pid_file.read_text().split():
                try:
                    args = Path(f"/proc/{int(line)}/cmdline").read_bytes().split(b"\0")
                except (OSError, ValueError):
                    continue
                if str(self.home / "conf").encode() in args:
                    found.append(int(line))
        return found

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for pid_file in self.directory.glob("flink-*.pid"):
            pid_file.unlink()
        self.install()
        self._daemon("jobmanager.sh", "start")
        wait_for(lambda: self._overview() is not None, 120, f"the stock cluster's JobManager on {self.port}", poll_s=0.5)
        self.start_taskmanager()
        self.say(f"stock cluster up in {self.home} (REST localhost:{self.port})")

    def start_taskmanager(self) -> None:
        before = (self._overview() or {}).get("taskmanagers", 0)
        self._daemon("taskmanager.sh", "start")
        wait_for(lambda: (self._overview() or {}).get("taskmanagers", 0) > before, 120,
                 "a TaskManager of the stock cluster to register", poll_s=0.5)

    def _overview(self):
        try:
            return self.rest("/overview")
        except OSError:
            return None

    def stop(self) -> None:
        """Every daemon of this cluster by pid (TERM, then KILL), then whatever they started
        that outlived them (Python workers)."""
        daemons = self.pids("taskexecutor") + self.pids("standalonesession")
        below = _descendants(daemons)
        for pid in daemons:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for pid in daemons + below:
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                if Path(f"/proc/{pid}").exists():
                    os.kill(pid, signal.SIGKILL)
        self.say(f"stock cluster stopped (pids {' '.join(map(str, daemons + below)) or 'none'})")

    @contextlib.contextmanager
    def running(self):
        try:
            self.start()
            yield self
        finally:
            self.stop()

    def python_workers(self) -> list[int]:
        """The Python processes below this cluster's TaskManagers."""
        workers = []
        for pid in _descendants(self.pids("taskexecutor")):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/exe").resolve().name.startswith("python"):
                    workers.append(pid)
        return workers

    # -- FlinkCluster's operations, for this cluster --
    def ensure_taskmanager(self) -> None:
        if not self.pids("taskexecutor"):
            self.say("no TaskManager running: starting one")
            self.start_taskmanager()

    def latest_checkpoint(self, job_id: str) -> str:
        base = self.directory / "checkpoints" / job_id
        done = [p for p in base.glob("chk-*") if (p / "_metadata").is_file()]
        if not done:
            raise RuntimeError(f"no completed checkpoint in {base}")
        return str(max(done, key=lambda p: int(p.name.split("-")[1])))

    def stop_with_savepoint(self, job_id: str, directory: Path, timeout_s: float = 300) -> str:
        """``cluster.sh flink stop --savepointPath DIR JOB`` at this cluster; the savepoint's path."""
        out = self.script("flink", "stop", "--savepointPath", Path(directory).as_uri(), job_id)
        match = re.search(r"Savepoint completed\. Path: (\S+)", out)
        if not match:
            raise RuntimeError(f"flink stop {job_id}: no savepoint path in:\n{out}")
        self.wait_state(job_id, {"FINISHED", "CANCELED", "FAILED"}, timeout_s)
        return match.group(1)
