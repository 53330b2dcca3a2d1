"""Latency and throughput of the read API (reco_api) over HTTP, measured by its clients.

    .venv/bin/python bench/api.py [--users 10000] [--rate 1000] [--duration 20] [--connections 16]
                                  [--workers 1] [--http auto] [--loop auto]

It starts its own redis-server on a free port (no persistence; stopped at the end), writes
``--users`` users' lists as the job writes them (20 items with MovieLens titles in the
reasons, built by flink_jobs.documents) and a trending list, and runs the API in a child
process: ``uvicorn --factory reco_api.server:app_from_env`` (the application ``reco-api``
serves, with uvicorn's own options: ``--workers``, ``--http``, ``--loop``), titles loaded.
Every request is ``GET /v1/users/{a random one of the users}/recommendations?n=10``.

The clients run in this process, on asyncio with persistent HTTP/1.1 connections and a
minimal HTTP reader (an HTTP library would cost the client more CPU than the server):
- fixed rate: an open loop at ``--rate`` requests/s over ``--connections`` connections.
  Request i is due at start + i/rate; its latency counts from when it was due, not from
  when a connection was free to send it, so a server stall is not hidden by the clients
  waiting for it. ``client lag`` is the share of that which the clients themselves added
  (due -> sent, p99).
- max rate: a closed loop, each connection sending its next request when the last answer
  arrived; requests/s = answers / elapsed; latency from send to answer.
Each phase runs ``--duration`` seconds after a warm-up of 2 s that is not counted. The
server and the clients share this machine's cores, as a sidecar would.

Prints a table and writes bench/results/api.json (``--json`` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from flink_jobs import documents  # noqa: E402
from lab.api import Api, free_port  # noqa: E402
from lab.wait import wait_for  # noqa: E402
from reco_tools import movielens  # noqa: E402

WARMUP_S = 2.0


# --- the server side ----------------------------------------------------------------------------

def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    if shutil.which("redis-server") is None:
        sys.exit("redis-server not found: run deploy/setup.sh (make setup)")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=open(workdir / "redis.log", "w"), stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def up():
        if proc.poll() is not None:
            sys.exit(f"redis-server exited; see {workdir / 'redis.log'}")
        try:
            return client.ping()
        except redis.ConnectionError:
            return False
    wait_for(up, 20, "redis-server", poll_s=0.1)
    return proc, url


def write_lists(url: str, users: int, seed: int = 1) -> int:
    """``users`` lists of 20 items as the job writes them, and trending; returns a list's size in bytes."""
    rng = random.Random(seed)
    movies = sorted(movielens.load_movies().values(), key=lambda m: m.item_id)
    store = redis.Redis.from_url(url)
    size = 0
    for start in range(1, users + 1, 1000):
        pipe = store.pipeline(transaction=False)
        for user in range(start, min(start + 1000, users + 1)):
            picks = rng.sample(movies, 21)
            items = [{"item_id": m.item_id, "score": round(1 / (rank + 1.5), 10),
                      "reason": f"because you liked {picks[-1].title}"} for rank, m in enumerate(picks[:20])]
            key, doc = documents.user_document({
                "user_id": user, "items": items, "version": 1_700_000_000_000 * 1024, "event_time": 1_700_000_000_000,
                "generated_at": int(time.time() * 1000), "model_version": 0})
            raw = json.dumps(doc, sort_keys=True, separators=(",", ":"))
            size = len(raw)
            pipe.set(key, raw)
        pipe.execute()

    class Top:
        t, top = 1_700_000_000_000, tuple((m.item_id, 100 - i) for i, m in enumerate(movies[:50]))
    key, doc = documents.trending_document(Top())
    store.set(key, json.dumps(doc))
    return size


def start_api(url: str, workdir: Path, workers: int, http: str, loop: str) -> Api:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "reco_api.server:app_from_env", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--http", http, "--loop", loop, "--no-access-log",
           "--log-level", "warning"]
    env = {**os.environ, "RECO_REDIS_URL": url, "RECO_API_TITLES": str(ROOT / "data/ml-latest-small/movies.csv")}
    env.pop("RECO_REDIS_URL_FILE", None)
    log = workdir / "api.log"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    api = Api(proc, port, log)
    wait_for(api.answers, 30, f"the API (log {log})", poll_s=0.2)
    return api


# --- the clients ----------------------------------------------------------------------------------

class Connection:
    """One keep-alive HTTP/1.1 connection that GETs a path and reads the whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def summary(latencies: list[float], errors: int, elapsed: float, lags: list[float] | None = None) -> dict:
    values = sorted(latencies)
    row = {"requests": len(values), "errors": errors, "requests_per_s": round(len(values) / elapsed, 1),
           "p50_ms": round(percentile(values, 50) * 1e3, 3), "p99_ms": round(percentile(values, 99) * 1e3, 3),
           "max_ms": round(values[-1] * 1e3, 3)}
    if lags:
        row["client_lag_p99_ms"] = round(percentile(sorted(lags), 99) * 1e3, 3)
    return row


async def fixed_rate(port: int, paths: list[str], rate: float, duration: float, connections: int) -> dict:
    """Open loop: request i due at start + i/rate; latency from due to answered."""
    conns = [await Connection.open(port) for _ in range(connections)]
    due_queue: asyncio.Queue = asyncio.Queue()
    latencies, lags, errors = [], [], 0
    measure_from = 0.0

    async def client(conn: Connection) -> None:
        nonlocal errors
        while True:
            due, path = await due_queue.get()
            if due is None:
                return
            sent = time.perf_counter()
            status = await conn.get(path)
            done = time.perf_counter()
            if due >= measure_from:
                latencies.append(done - due)
                lags.append(sent - due)
                errors += status != 200

    tasks = [asyncio.create_task(client(c)) for c in conns]
    start = time.perf_counter() + 0.05
    measure_from = start + WARMUP_S
    total = int(rate * (WARMUP_S + duration))
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due_queue.put_nowait((due, random.choice(paths)))
    for _ in conns:
        due_queue.put_nowait((None, None))
    await asyncio.gather(*tasks)
    for c in conns:
        c.close()
    return summary(latencies, errors, duration, lags)


async def max_rate(port: int, paths: list[str], duration: float, connections: int) -> dict:
    """Closed loop: each connection sends its next request when the last answer arrived."""
    conns = [await Connection.open(port) for _ in range(connections)]
    latencies, errors = [], 0
    start = time.perf_counter()
    measure_from, end = start + WARMUP_S, start + WARMUP_S + duration

    async def client(conn: Connection) -> None:
        nonlocal errors
        while True:
            sent = time.perf_counter()
            if sent >= end:
                return
            status = await conn.get(random.choice(paths))
            if sent >= measure_from:
                latencies.append(time.perf_counter() - sent)
                errors += status != 200

    await asyncio.gather(*(client(c) for c in conns))
    for c in conns:
        c.close()
    return summary(latencies, errors, duration)


def resolved(choice: str, fast: str, fallback: str) -> str:
    """What uvicorn's "auto" picks: the C implementation when installed (uvicorn[standard])."""
    if choice != "auto":
        return choice
    return f"{fast} (auto)" if importlib.util.find_spec(fast) else f"{fallback} (auto)"


# --- the run ------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=1_000.0, help="offered requests/s of the fixed-rate phase")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds measured per phase (after 2 s of warm-up)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"), help="uvicorn's HTTP parser")
    ap.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"), help="uvicorn's event loop")
    ap.add_argument("--label", default="", help="a name for this configuration in the table and the JSON")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "api.json"))
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="reco-bench-api-"))
    redis_proc, url = start_redis(workdir)
    api = None
    try:
        size = write_lists(url, args.users)
        api = start_api(url, workdir, args.workers, args.http, args.loop)
        paths = [f"/v1/users/{u}/recommendations?n=10" for u in range(1, args.users + 1)]
        config = (args.label or f"{args.workers} worker{'s' if args.workers > 1 else ''}, "
                  f"http {resolved(args.http, 'httptools', 'h11')}, loop {resolved(args.loop, 'uvloop', 'asyncio')}")
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  {os.cpu_count()} cores  "
              f"Python {platform.python_version()}")
        print(f"# {args.users:,} users' lists of 20 items ({size:,} bytes each in Redis), GET "
              f"/v1/users/{{id}}/recommendations?n=10, {args.connections} connections, {args.duration:.0f} s per "
              f"phase; server: {config}")
        rows = [{"phase": f"fixed {args.rate:,.0f}/s",
                 **asyncio.run(fixed_rate(api.port, paths, args.rate, args.duration, args.connections))}]
        rows.append({"phase": "max rate", **asyncio.run(max_rate(api.port, paths, args.duration, args.connections))})
        api.check_alive()
    finally:
        if api is not None:
            api.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{'phase':<14}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}  client lag p99")
    for r in rows:
        lag = f"{r['client_lag_p99_ms']:.2f} ms" if "client_lag_p99_ms" in r else "-"
        print(f"{r['phase']:<14}{r['requests_per_s']:>12,.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}"
              f"{r['errors']:>8}  {lag}")
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.node()}, {os.cpu_count()} cores",
              "python": platform.python_version(), "command": " ".join(["bench/api.py", *sys.argv[1:]]),
              "users": args.users, "document_bytes": size, "connections": args.connections,
              "duration_s": args.duration, "server": config, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"# written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
