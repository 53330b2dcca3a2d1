"""The exactly-once scenario of lab/chaos.py with the Python operators inside the TaskManagers
(``python_execution_mode = thread``), on a cluster of two TaskManagers of one slot each.

Thread mode builds other keyed operators than process mode (PyFlink's Embedded* classes,
which the timer fix does not patch: a timer is registered in the task's thread when the
function asks for it). The scenario's checks on co-occurrence lists ("every list due was
published", "equal a batch recount, once each") fail when a restore loses a timer.
"""

import re

import pytest

from lab.chaos import CHECKS, run

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def topology() -> dict[str, str]:
    return {"RECO_FLINK_TASKMANAGERS": "2", "RECO_FLINK_SLOTS": "1"}   # one interpreter per slot


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
