"""Exactly-once under failure, on a standalone Flink cluster: see lab/chaos.py.

Part of `make test`; alone: `make test-chaos` (three scenarios of about 8 minutes each on
this machine, the third in thread mode: test_thread_mode.py). The seed can be set with
RECO_CHAOS_SEED.
"""

import pytest

from lab.chaos import CHECKS, run

pytestmark = pytest.mark.chaos


def test_outputs_survive_kills_a_cancel_resume_and_broker_and_redis_restarts_exactly_once(scenario):
    s = scenario()
    verdict = run(s)
    assert verdict.keys() == CHECKS.keys()
    failed = [CHECKS[c] for c, ok in verdict.items() if not ok]
    assert not failed, f"failed: {failed}\n" + "\n".join(s.log)


def test_the_checks_catch_a_broken_guarantee(scenario):
    # The same scenario with both halves of the guarantee broken on purpose: a Kafka sink
    # that only promises at-least-once, and Redis writes without the version check.
    s = scenario(delivery_guarantee="at-least-once", redis_write="unconditional", restarts=False)
    verdict = run(s)
    log = "\n".join(s.log)
    assert not verdict["increasing"], "replayed records after a kill must show up as duplicates\n" + log
    assert not verdict["redis-never-back"], "replays written unconditionally must move keys back\n" + log
