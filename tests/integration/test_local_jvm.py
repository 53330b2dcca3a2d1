"""On the local mini-cluster the job's client runs Flink in a JVM of its own. When that JVM
dies under it (a native crash, the OOM killer), the client must end at once, non-zero, with
one line that says what happened and where a crash report would be, instead of py4j's
retries of the dead gateway (a traceback per try, for as long as objects are finalized).
"""

import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from reco_tools.kafka_io import event_message, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics
from lab.flinkcluster import _descendants
from lab.jobs import start_job, wait_until_consuming
from lab.wait import wait_for

pytestmark = pytest.mark.integration


def _jvms_below(pid: int) -> list[int]:
    jvms = []
    for child in _descendants([pid]):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/exe").resolve().name == "java":
                jvms.append(child)
    return jvms


def test_the_client_says_so_and_ends_when_its_jvm_dies(stack, tmp_path):
    ensure_topics(stack.bootstrap, recreate=True)
    producer = make_producer(stack.bootstrap)   # events, so that the job commits offsets once up
    synth = Synth(SynthConfig(events=20, users=5, items=10, clusters=2, seed=3))
    produce_catalog(producer, synth.catalog(), progress=False)
    produce(producer, contracts.USER_EVENTS_TOPIC,
            (event_message(AvroCodec("reco.UserEvent"), e) for e in synth.events()), progress=False)
    producer.close()
    job = start_job(stack.bootstrap, stack.redis_url, uuid.uuid4().hex[:8], tmp_path, "--parallelism", "1")
    try:
        wait_until_consuming(stack.bootstrap, job, 240)
        jvms = _jvms_below(job.pid)
        assert len(jvms) == 1, f"expected the client's one JVM below it, found {jvms}"
        os.kill(jvms[0], signal.SIGKILL)
        wait_for(lambda: job.poll() is not None, 60, "the job's client to end after its JVM", poll_s=0.5)
    finally:
        job.stop()
        with contextlib.suppress(ProcessLookupError):   # Python workers the dead JVM left behind
            os.killpg(job.pid, signal.SIGKILL)
    logs = job.logs()
    assert job.poll() == 1, job.tail()
    assert "this process's JVM, which runs the local mini-cluster ended while the job ran" in logs, job.tail()
    assert "hs_err_pid" in logs
    assert f"process {jvms[0]} killed by SIGKILL" in logs, job.tail()       # how it ended, from its exit status
    assert "trying to connect to the Java server" not in logs, job.tail()
