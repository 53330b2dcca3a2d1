"""The chaos scenarios' cluster (fixed ports: one chaos session at a time) and scenario."""

import os
from pathlib import Path

import pytest

from lab.chaos import Scenario
from lab.flinkcluster import FlinkCluster

REST_PORT, RPC_PORT = 18081, 16123


@pytest.fixture(scope="module")
def topology() -> dict[str, str]:
    """cluster.sh settings of the module's cluster (default: one TaskManager of two slots)."""
    return {}


@pytest.fixture(scope="module")
def cluster(stack, topology):
    env = {**stack.env, "RECO_FLINK_RPC_PORT": str(RPC_PORT), **topology}
    with FlinkCluster(REST_PORT, Path(stack.env["RECO_RUN_DIR"]), env=env).running() as flink:
        yield flink


@pytest.fixture
def scenario(stack, cluster):
    """Scenario(**changes) on the test stack and cluster; seed from RECO_CHAOS_SEED (7)."""
    def make(**changes) -> Scenario:
        return Scenario(events=20_000, kills=2, seed=int(os.environ.get("RECO_CHAOS_SEED", "7")),
                        bootstrap=stack.bootstrap, redis_url=stack.redis_url, rest_port=REST_PORT,
                        run_dir=Path(stack.env["RECO_RUN_DIR"]), stack_env=stack.env, **changes)
    return make
