"""Exactly-once under failure, on a standalone Flink cluster: see flink_jobs/tools/chaos.py.

Run alone with `make test-chaos` (about 7 minutes on this machine); the seed can be set
with RECO_CHAOS_SEED.
"""

import os
import subprocess
from pathlib import Path

import pytest

from flink_jobs.tools.chaos import CLUSTER, Scenario, run

pytestmark = pytest.mark.chaos
REST_PORT, RPC_PORT = 18081, 16123


@pytest.fixture(scope="module")
def cluster(stack):
    env = {**stack.env, "RECO_FLINK_REST_PORT": str(REST_PORT), "RECO_FLINK_RPC_PORT": str(RPC_PORT)}
    env.pop("PYFLINK_GATEWAY_DISABLED", None)
    started = subprocess.run([str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        pytest.fail(f"cluster.sh start failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield stack
    finally:
        subprocess.run([str(CLUSTER), "stop"], env=env, capture_output=True, text=True, timeout=300)


def test_outputs_survive_kills_and_a_cancel_resume_exactly_once(cluster):
    stack = cluster
    scenario = Scenario(events=20_000, kills=2, seed=int(os.environ.get("RECO_CHAOS_SEED", "7")),
                        bootstrap=stack.bootstrap, redis_url=stack.redis_url, rest_port=REST_PORT,
                        run_dir=Path(stack.env["RECO_RUN_DIR"]))
    verdict = run(scenario)
    assert len(verdict) == 6
    failed = [name for name, ok in verdict.items() if not ok]
    assert not failed, f"failed: {failed}\n" + "\n".join(scenario.log)
