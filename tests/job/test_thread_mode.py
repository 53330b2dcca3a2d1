"""Thread mode (python_execution_mode = "thread"): the pipeline's Python operators run inside
the TaskManager's JVM, not in worker processes, and the pipeline computes every list."""

import pytest
from pyflink.java_gateway import get_gateway

from flink_jobs import internals
from flink_jobs.codec import AvroCodec
from flink_jobs.config import JobConfig
from lab.inmemory import run_pipeline
from reco_tools import movielens

pytestmark = pytest.mark.job


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_python_operators_run_where_the_mode_says(mode):
    events = movielens.load_rating_events()[:60]
    codec = AvroCodec("reco.UserEvent")
    pids: set[int] = set()
    out = run_pipeline([codec.encode(e) for e in events], movielens.item_records(movielens.load_movies(), 0),
                       JobConfig(parallelism=2, python_execution_mode=mode, max_out_of_orderness_ms=0),
                       writer_pids=pids)
    assert len(out["recommendations"]) == len(events)
    jvm = get_gateway().jvm.ProcessHandle.current().pid()   # the local mini-cluster's JVM
    assert pids and (pids == {jvm}) == (mode == "thread"), (mode, pids, jvm)


def test_thread_mode_puts_this_venv_on_the_embedded_interpreters_path():
    options = internals.python_execution_options("thread", local=True)
    assert options["python.execution-mode"] == "thread"
    paths = options["python.pythonpath"].split(":")
    assert str(internals.ROOT) in paths and any(p.endswith("site-packages") for p in paths)
    assert internals.python_execution_options("process", local=True) == {"python.execution-mode": "process"}
    assert "python.pythonpath" not in internals.python_execution_options("thread", local=False)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="python_execution_mode must be process or thread"):
        JobConfig(python_execution_mode="fiber")
