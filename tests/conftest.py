"""Shared fixtures. ``stack``: real Kafka and Redis for the integration and chaos tests,
started by the project's own script on their own ports and data folder (.run/test), apart
from a developer's demo stack, and stopped when the session ends. If they cannot start,
every test that needs them fails with the script's message: nothing is skipped silently.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import os
import subprocess
from dataclasses import dataclass

import pytest

STACK = ROOT / "deploy" / "local" / "stack.sh"


@dataclass(frozen=True)
class Stack:
    env: dict
    bootstrap: str
    redis_url: str

    def run(self, *args, check=True, timeout=180, env_overrides=None):
        env = {**self.env, **(env_overrides or {})}
        proc = subprocess.run([str(STACK), *args], env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"stack.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def stack():
    kafka_port = int(os.environ.get("RECO_TEST_KAFKA_PORT", "19092"))
    redis_port = int(os.environ.get("RECO_TEST_REDIS_PORT", "16379"))
    env = {**os.environ,
           "RECO_KAFKA_PORT": str(kafka_port),
           "RECO_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
           "RECO_REDIS_PORT": str(redis_port),
           "RECO_RUN_DIR": os.environ.get("RECO_TEST_RUN_DIR", str(ROOT / ".run" / "test"))}
    s = Stack(env, f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0")
    try:   # a start that fails halfway (Redis up, Kafka not) stops what it started too
        s.run("start")
        yield s
    finally:
        s.run("stop", check=False)
