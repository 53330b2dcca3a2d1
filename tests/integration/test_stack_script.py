"""The stack script's promises: idempotent start, clean stop, clear errors."""

import os
import signal
import socket
import time

import pytest

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_starting_twice_is_harmless(stack):
    before = {n: (stack.env["RECO_RUN_DIR"] + f"/{n}/pid") for n in ("kafka", "redis")}
    pids = {n: open(p).read().strip() for n, p in before.items()}
    out = stack.run("start").stdout
    assert f"kafka already running (pid {pids['kafka']}" in out
    assert f"redis already running (pid {pids['redis']}" in out
    assert stack.run("status").returncode == 0


def test_port_taken_gives_a_clear_message_not_a_hang(stack, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        started = time.monotonic()
        proc = stack.run("start", "redis", check=False, timeout=30,
                         env_overrides={"RECO_REDIS_PORT": str(port), "RECO_RUN_DIR": str(tmp_path)})
        assert proc.returncode != 0
        assert f"port {port}" in proc.stderr and "RECO_REDIS_PORT" in proc.stderr
        assert time.monotonic() - started < 10
    finally:
        sock.close()


def test_stop_leaves_no_process_behind(stack, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {"RECO_REDIS_PORT": str(port), "RECO_RUN_DIR": str(tmp_path)}
    stack.run("start", "redis", env_overrides=env)
    pid = int((tmp_path / "redis" / "pid").read_text())
    assert _alive(pid)
    try:
        out = stack.run("stop", "redis", env_overrides=env).stdout
        assert f"redis stopped (pid {pid})" in out
        assert not _alive(pid)
        assert not (tmp_path / "redis" / "pid").exists()
        assert "redis not running" in stack.run("stop", "redis", env_overrides=env).stdout
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_bad_port_setting_is_refused(stack):
    proc = stack.run("status", check=False, env_overrides={"RECO_KAFKA_PORT": "99999"})
    assert proc.returncode != 0 and "not a port number" in proc.stderr
