"""The in-memory harness fails loudly, naming where it stood, instead of hanging."""

import time

import pytest

from flink_jobs.codec import AvroCodec
from flink_jobs.config import MINUTE, JobConfig
from reco_tools.synth import Synth, SynthConfig

pytestmark = pytest.mark.job


def test_a_hold_that_never_opens_fails_the_run_within_its_stall_time():
    from lab.inmemory import run_pipeline

    synth = Synth(SynthConfig(events=60, users=5, items=20, clusters=2, seed=3))
    codec = AvroCodec("reco.UserEvent")
    raw = [codec.encode(e) for e in sorted(synth.events(), key=lambda e: e["event_time"])]
    cfg = JobConfig(parallelism=2, bucket_ms=10 * MINUTE, max_out_of_orderness_ms=0)
    started = time.monotonic()
    with pytest.raises(Exception, match=r"position 30 on was held|held at \[30\]") as failure:
        run_pipeline(raw, synth.catalog(), cfg, holds={30: lambda run: False}, stall_s=15)
    # the start-up of the mini-cluster and its Python workers, then at most the stall time
    assert time.monotonic() - started < 120, f"took {time.monotonic() - started:.0f} s: {failure.value}"
