"""Throughput of the recommendation core, in plain Python and inside the PyFlink pipeline.

    .venv/bin/python bench/throughput.py [--events 3000]

Both run the first N MovieLens ratings in event-time order (heavy raters: ~19 partners per
event with W=20). The plain-Python figure is the job's own step functions driven in one
process (udfs.inprocess), with no engine; the pipeline figure is the whole job on a local mini-cluster (parallelism 2,
in-memory source), start-up subtracted by timing a 10-event run first. Compare the two as
a ratio from one run: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flink_jobs.codec import AvroCodec  # noqa: E402
from flink_jobs.config import JobConfig  # noqa: E402
from reco_tools import movielens  # noqa: E402
from udfs import inprocess  # noqa: E402
from udfs.records import Event, ItemInfo  # noqa: E402


def plain_python(events: list[dict], cfg: JobConfig, catalog: list[dict]) -> float:
    """events/s of the job's own step functions in one process (udfs.inprocess), no engine."""
    typed, items = [Event.of(e) for e in events], [ItemInfo.of(r) for r in catalog]
    start = time.perf_counter()
    inprocess.run(typed, items, cfg, keep=())
    return len(events) / (time.perf_counter() - start)


def pipeline(events: list[dict], cfg: JobConfig, catalog: list[dict]) -> float:
    from reco_tools.inmemory import run_pipeline

    os.environ.setdefault("_python_worker_execution_mode", "process")
    codec = AvroCodec("reco.UserEvent")
    raw = [codec.encode(e) for e in events]

    def timed(n):
        start = time.perf_counter()
        out = run_pipeline(raw[:n], catalog, cfg, bundle_size=1000)
        assert len(out["recommendations"]) == n, "every event must produce a list"
        return time.perf_counter() - start

    startup = timed(10)
    whole = timed(len(raw))
    return (len(raw) - 10) / max(whole - startup, 1e-9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--skip-flink", action="store_true")
    args = ap.parse_args()
    cfg = JobConfig(max_out_of_orderness_ms=0)
    events = movielens.load_rating_events()[: args.events]
    movies = movielens.load_movies()
    catalog = movielens.item_records(movies, 0)
    print(f"# {time.strftime('%Y-%m-%d')}  {platform.node()}  {os.cpu_count()} cores  Python {platform.python_version()}")
    print(f"# {len(events)} MovieLens ratings, W={cfg.recent_items}, seeds={cfg.seeds}, M={cfg.neighbors_per_item}, N={cfg.top_n}")
    core = plain_python(events, cfg, catalog)
    print(f"plain Python core          {core:10,.0f} events/s")
    if not args.skip_flink:
        job = pipeline(events, cfg.replace(parallelism=2), catalog)
        print(f"PyFlink pipeline (p=2)     {job:10,.0f} events/s")
        print(f"ratio pipeline / core      {job / core:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
