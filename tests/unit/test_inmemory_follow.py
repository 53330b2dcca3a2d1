"""The in-memory harness's follow loop, with a stand-in for the job client (no JVM): a stalled
run raises ``PipelineStalled`` naming where the input is held, also when the job fails on its
own in the moment between the check and the cancel (a local job's mini-cluster closes before
its result is delivered, and cancelling it then refuses)."""

import dataclasses

import pytest

from flink_jobs.pipeline import Outputs
from lab.inmemory import KINDS, PipelineStalled, _follow, _Reader


class _Result:
    def __init__(self):
        self.ended = False

    def done(self):
        return self.ended

    def result(self):
        raise AssertionError("a stalled run's result is not read")


class _ClientWhoseClusterClosed:
    """The job fails as the harness cancels it: cancel refuses, the result arrives after."""

    def __init__(self):
        self.result = _Result()
        self.cancels = 0

    def get_job_id(self):
        return "0" * 32

    def get_job_execution_result(self):
        return self.result

    def cancel(self):
        self.cancels += 1
        self.result.ended = True
        raise RuntimeError("MiniCluster is not yet running or has already been shut down.")


def test_a_stall_is_reported_when_the_job_ends_as_it_is_cancelled(tmp_path):
    client = _ClientWhoseClusterClosed()
    with pytest.raises(PipelineStalled, match=r"held at \[30\]"):
        _follow(client, rest=None, reader=_Reader(tmp_path), gates=tmp_path,
                holds={30: lambda run: False}, stall_s=0.3)
    assert client.cancels == 1


def test_the_harness_gathers_every_output_of_the_pipeline():
    # a kind missing from KINDS would be dropped by the harness's writers and reader
    assert set(KINDS) == {f.name for f in dataclasses.fields(Outputs)}
