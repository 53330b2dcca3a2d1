"""The read API (``reco_api.server``) in a child process, as the demo, the browser test and
the API benchmark run it: on a port of its own, the Redis URL in its environment (never on
its command line), stopped by process id.

    python -m lab.api stop     # the API the demo left running (its pid in $RECO_RUN_DIR/api/pid)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from lab.wait import wait_for

ROOT = Path(__file__).resolve().parents[1]
MOVIES_CSV = ROOT / "data" / "ml-latest-small" / "movies.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Api:
    """A started API: ``url`` (``http://127.0.0.1:PORT``), its process and log."""

    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path):
        self.proc, self.port, self.log_path = proc, port, log_path
        self.url = f"http://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the API exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")

    def answers(self) -> bool:
        """True once it answers HTTP (/healthz: 200, or 503 while Redis is down)."""
        self.check_alive()
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (uvicorn ends open streams and stops within about 2 s), SIGKILL after 10 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_api(redis_url: str, log_path: Path, port: int | None = None, titles: Path | None = MOVIES_CSV,
              flags: tuple[str, ...] = (), env: dict[str, str] | None = None, timeout_s: float = 30) -> Api:
    """``python -m reco_api.server`` on 127.0.0.1:``port`` (a free one when None), in a
    session of its own, output in ``log_path``; returns once it answers."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "reco_api.server", "--host", "127.0.0.1", "--port", str(port), *flags]
    if titles:
        cmd += ["--titles", str(titles)]
    child_env = {**os.environ, **(env or {}), "RECO_REDIS_URL": redis_url}
    child_env.pop("RECO_REDIS_URL_FILE", None)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    api = Api(proc, port, log_path)
    try:
        wait_for(api.answers, timeout_s, f"the API on port {port} (log {log_path})", poll_s=0.2)
    except BaseException:
        api.stop()
        raise
    return api


def stop_recorded(pid_file: Path) -> bool:
    """Stop the API whose pid ``pid_file`` holds, if that process is still an API (a pid
    may have been reused since); True when one was stopped."""
    try:
        pid = int(pid_file.read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            ours = b"reco_api.server" in f.read()
    except (OSError, ValueError):
        ours = False
    if ours:
        os.killpg(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 15, f"the API (pid {pid}) to stop", poll_s=0.1)
    pid_file.unlink(missing_ok=True)
    return ours


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["stop"]:
        print(__doc__, file=sys.stderr)
        return 2
    pid_file = Path(os.environ.get("RECO_RUN_DIR", ROOT / ".run")) / "api" / "pid"
    print("[api] stopped" if stop_recorded(pid_file) else "[api] not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
