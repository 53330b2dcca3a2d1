"""Exactly-once under failure, on a standalone Flink cluster: see lab/chaos.py.

Part of `make test`; alone: `make test-chaos` (two scenarios of about 8 minutes each on
this machine). The seed can be set with RECO_CHAOS_SEED.
"""

import os
from pathlib import Path

import pytest

from lab.chaos import CHECKS, Scenario, run
from lab.flinkcluster import FlinkCluster

pytestmark = pytest.mark.chaos
REST_PORT, RPC_PORT = 18081, 16123


@pytest.fixture(scope="module")
def cluster(stack):
    with FlinkCluster(REST_PORT, Path(stack.env["RECO_RUN_DIR"]),
                      env={**stack.env, "RECO_FLINK_RPC_PORT": str(RPC_PORT)}).running():
        yield stack


def _scenario(stack, **changes) -> Scenario:
    return Scenario(events=20_000, kills=2, seed=int(os.environ.get("RECO_CHAOS_SEED", "7")),
                    bootstrap=stack.bootstrap, redis_url=stack.redis_url, rest_port=REST_PORT,
                    run_dir=Path(stack.env["RECO_RUN_DIR"]), stack_env=stack.env, **changes)


def test_outputs_survive_kills_a_cancel_resume_and_broker_and_redis_restarts_exactly_once(cluster):
    scenario = _scenario(cluster)
    verdict = run(scenario)
    assert verdict.keys() == CHECKS.keys()
    failed = [CHECKS[c] for c, ok in verdict.items() if not ok]
    assert not failed, f"failed: {failed}\n" + "\n".join(scenario.log)


def test_the_checks_catch_a_broken_guarantee(cluster):
    # The same scenario with both halves of the guarantee broken on purpose: a Kafka sink
    # that only promises at-least-once, and Redis writes without the version check.
    scenario = _scenario(cluster, delivery_guarantee="at-least-once", redis_write="unconditional", restarts=False)
    verdict = run(scenario)
    log = "\n".join(scenario.log)
    assert not verdict["increasing"], "replayed records after a kill must show up as duplicates\n" + log
    assert not verdict["redis-never-back"], "replays written unconditionally must move keys back\n" + log
