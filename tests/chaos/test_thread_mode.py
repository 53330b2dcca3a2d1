"""The exactly-once scenario of lab/chaos.py with the Python operators inside the TaskManagers
(``python_execution_mode = thread``), on a cluster of two TaskManagers of one slot each; and
a cancel while the job's metrics are read.

Thread mode builds other keyed operators than process mode (PyFlink's Embedded* classes,
which the timer fix does not patch: a timer is registered in the task's thread when the
function asks for it). The scenario's checks on co-occurrence lists ("every list due was
published", "equal a batch recount, once each") fail when a restore loses a timer.
"""

import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from lab.chaos import CHECKS, run
from lab.wait import wait_for
from reco_tools.topics import ensure_topics

pytestmark = pytest.mark.chaos

PROM_PORT = 18249   # each process of this module's cluster serves /metrics on the first free port of ten


@pytest.fixture(scope="module")
def topology() -> dict[str, str]:
    return {"RECO_FLINK_TASKMANAGERS": "2", "RECO_FLINK_SLOTS": "1",   # one interpreter per slot
            "RECO_FLINK_PROM_PORT": str(PROM_PORT)}


def test_thread_mode_survives_kills_and_restores_exactly_once_without_python_workers(cluster, scenario):
    slots = sorted(tm["slotsNumber"] for tm in cluster.rest("/taskmanagers")["taskmanagers"])
    assert slots == [1, 1], slots
    s = scenario(python_execution_mode="thread")
    verdict = run(s)
    log = "\n".join(s.log)
    assert verdict.keys() == CHECKS.keys()
    failed = [CHECKS[c] for c, ok in verdict.items() if not ok]
    assert not failed, f"failed: {failed}\n" + log
    # A kill -9 takes each TaskManager's process tree: in thread mode nothing runs below
    # them (in process mode the Python workers do).
    kills = re.findall(r"kill -9 TaskManager\(s\) ([\d ]+) and (\d+) process\(es\) below them", log)
    assert len(kills) == s.kills, log
    assert all(len(tms.split()) == 2 and below == "0" for tms, below in kills), kills


def test_a_cancel_while_the_job_s_metrics_are_read_leaves_the_taskmanagers_running(cluster, stack):
    """A Python gauge read by a metrics thread (Prometheus scrapes, the REST API's fetcher) as
    the task closes its interpreter crashed the TaskManager (``internals.Tally``)."""
    crash_reports = Path(stack.env["RECO_RUN_DIR"]) / "flink" / "log"
    before = set(crash_reports.glob("hs_err_pid*.log"))

    def new_crash_reports() -> list[str]:
        return sorted(str(p) for p in set(crash_reports.glob("hs_err_pid*.log")) - before)

    ensure_topics(stack.bootstrap)
    run_id = f"metrics-{int(time.time())}"
    job = cluster.submit(["--kafka-bootstrap", stack.bootstrap, "--redis-url", stack.redis_url,
                          "--consumer-group", run_id, "--transactional-id-prefix", run_id,
                          "--python-execution-mode", "thread", "--parallelism", "2"])
    seen, stop = {}, threading.Event()   # Prometheus port -> scrapes that carried the Ranker's catalogItems

    def scrape():
        while not stop.is_set():
            for port in range(PROM_PORT, PROM_PORT + 10):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                        if b"catalogItems" in resp.read():
                            seen[port] = seen.get(port, 0) + 1
                except OSError:
                    pass

    scrapers = [threading.Thread(target=scrape, daemon=True) for _ in range(2)]
    try:
        cluster.wait_running(job)
        for t in scrapers:
            t.start()
        wait_for(lambda: len(seen) == 2, 60, "the Ranker's catalogItems on both TaskManagers' endpoints")
        cluster.rest(f"/jobs/{job}?mode=cancel", method="PATCH")
        cluster.wait_state(job, {"CANCELED"}, timeout_s=60)

        def closed():   # the tasks have let go of their slots, or a TaskManager died closing them
            if new_crash_reports() or cluster.taskmanagers_running() < 2:
                return True
            return all(tm["freeSlots"] == tm["slotsNumber"] for tm in cluster.rest("/taskmanagers")["taskmanagers"])
        wait_for(closed, 60, "both TaskManagers to free their slots after the cancel")
    finally:
        stop.set()
        for t in scrapers:
            if t.ident is not None:   # started
                t.join(timeout=10)
    crashed = new_crash_reports()
    running = cluster.taskmanagers_running()
    cluster.ensure_taskmanager()   # for the next test, whatever happened
    assert not crashed and running == 2, f"{running} of 2 TaskManagers running after the cancel; JVM crash reports: {crashed}"
