"""Python timers that survive a restore.

PyFlink 2.2.1 receives a timer that a Python function registers on a gRPC thread and
registers it later, from the task's mailbox; only a watermark drains the pending ones
first. At a checkpoint barrier the operator finishes its bundle (the bundle's keyed state
is written to the backend) and snapshots before those mails run. A restore from that
checkpoint then brings back state whose timer was never registered: a user's bucket of
pairs that no timer flushes, so it reaches the item side after its list was published
(the chaos test saw 600 to 1,400 of about 5,100 co-occurrence lists short, after a cancel
and resume).

``deploy/jars/timer-fix`` subclasses PyFlink's keyed operators to register the pending
timers between the bundle's end and the snapshot; ``install`` makes PyFlink build every
keyed Python operator of this job from them. deploy/setup.sh compiles the jar against the
installed PyFlink, so the two always match.
"""

from __future__ import annotations

from pathlib import Path

from py4j.java_gateway import java_import
from pyflink.java_gateway import get_gateway

JAR = Path(__file__).resolve().parent.parent / ".cache" / "jars" / "flink" / "reco-pyflink-timers.jar"
PATCHED = ("ExternalPythonKeyedProcessOperator", "ExternalPythonKeyedCoProcessOperator")


def install(env) -> None:
    """Ship the jar with the job and resolve PyFlink's keyed operator classes to the patched
    ones (a single-class import takes precedence over PyFlink's package import). Call
    before building the pipeline."""
    if not JAR.is_file():
        raise SystemExit(f"{JAR} is missing: run deploy/setup.sh")
    env.add_jars(JAR.as_uri())
    jvm = get_gateway().jvm
    for name in PATCHED:
        java_import(jvm, f"reco.pyflink.{name}")
        resolved = getattr(jvm, name)._fqn
        if resolved != f"reco.pyflink.{name}":
            raise RuntimeError(f"PyFlink would build {name} from {resolved}: the timer fix is not in effect")
