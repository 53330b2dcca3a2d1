"""Throughput of the recommendation core, in plain Python and inside the PyFlink pipeline.

    .venv/bin/python bench/throughput.py [--events 3000]

Both run the first N MovieLens ratings in event-time order (heavy raters: ~19 partners per
event with W=20). The plain-Python figure is the same udfs calls the operators make, with
no engine; the pipeline figure is the whole job on a local mini-cluster (parallelism 2,
in-memory source), start-up subtracted by timing a 10-event run first. Compare the two as
a ratio from one run: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flink_jobs.codec import AvroCodec  # noqa: E402
from flink_jobs.config import JobConfig  # noqa: E402
from flink_jobs.tools import movielens  # noqa: E402
from udfs import cooccurrence as co  # noqa: E402
from udfs.ranking import merge_fragments, rank  # noqa: E402
from udfs.recent import add_recent  # noqa: E402
from udfs.signals import InterestVector, add_interest, event_weight, interest_similarity  # noqa: E402


def plain_python(events: list[dict], cfg: JobConfig, tags: dict[int, tuple]) -> float:
    """events/s of the per-event work of all operators, in one Python loop."""
    recent, wins, counts = defaultdict(list), defaultdict(co.ItemWindow), defaultdict(dict)
    owns = defaultdict(co.ItemWindow)
    interest, consumed = defaultdict(InterestVector), defaultdict(set)
    start = time.perf_counter()
    for e in events:
        user, item, t = e["user_id"], e["item_id"], e["event_time"]
        w = event_weight(e["event_type"], e["value"])
        partners = []
        if w > 0:
            recent[user], partners = add_recent(recent[user], item, t, w, cfg.recent_items, cfg.pair_span_ms)
            own = owns[item]
            co.add_own(own, t, 1.0, cfg.bucket_ms)
            counts[item][item] = co.own_count(own)
            pw = co.pair_weight(len(partners)) if partners else 0.0
            for j in partners:
                co.add_pair(wins[item], j, t, pw, cfg.bucket_ms)
                co.add_pair(wins[j], item, t, pw, cfg.bucket_ms)
                counts[j][item] = counts[item][item]
        frags = [(s, sw, co.top_neighbors(co.pair_counts(wins[s]), counts[s].get(s, 0.0), counts[s], cfg.fragment_size))
                 for s, _, sw in recent[user][-cfg.seeds:]]
        interest[user] = add_interest(interest[user], tags.get(item, ()), w, t, cfg.interest_half_life_ms)
        consumed[user].add(item)
        vec = interest[user]
        rank(merge_fragments(frags), lambda i: interest_similarity(vec, tags.get(i, ())), consumed[user],
             cfg.top_n, cfg.interest_weight)
    return len(events) / (time.perf_counter() - start)


def pipeline(events: list[dict], cfg: JobConfig, catalog: list[dict]) -> float:
    from flink_jobs.inmemory import run_pipeline

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
    tags = {m.item_id: m.genres for m in movies.values()}
    print(f"# {time.strftime('%Y-%m-%d')}  {platform.node()}  {os.cpu_count()} cores  Python {platform.python_version()}")
    print(f"# {len(events)} MovieLens ratings, W={cfg.recent_items}, seeds={cfg.seeds}, M={cfg.neighbors_per_item}, N={cfg.top_n}")
    core = plain_python(events, cfg, tags)
    print(f"plain Python core          {core:10,.0f} events/s")
    if not args.skip_flink:
        job = pipeline(events, cfg.replace(parallelism=2), movielens.item_records(movies, 0))
        print(f"PyFlink pipeline (p=2)     {job:10,.0f} events/s")
        print(f"ratio pipeline / core      {job / core:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
