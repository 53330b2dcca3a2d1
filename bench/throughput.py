"""Throughput of the recommendation core, in plain Python and inside the PyFlink pipeline.

    .venv/bin/python bench/throughput.py [--events 20000]

Both run the first N MovieLens ratings in event-time order (heavy raters: ~19 partners per
event with W=20). The plain-Python figure is the job's own step functions driven in one
process (lab.inprocess), with no engine; the pipeline figure is the whole job on a local
mini-cluster (parallelism 2, in-memory source), start-up subtracted by timing a 10-event run
twice after a warm-up run; a run whose work past start-up is under 5 s or under five times the start-up's
spread is an error (exit 1), not a figure. Compare the two as a ratio from one run: this
machine is shared and noisy.

``--model``: also both with item embeddings (trained on the same ratings by reco-embed's
``train``, in the catalog from the start) and ``embedding_weight`` > 0, the cost of
embeddings in one run beside the figures without. ``--nearest``: instead, the time of one
brute-force nearest-items query of the ranker by catalog size (where an ANN index would
start to pay).
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
from lab import inprocess  # noqa: E402
from udfs.records import Event, ItemInfo  # noqa: E402


def plain_python(events: list[dict], cfg: JobConfig, catalog: list[dict]) -> float:
    """events/s of the job's own step functions in one process (lab.inprocess), no engine."""
    typed, items = [Event.of(e) for e in events], [ItemInfo.of(r, cfg.embedding_precision) for r in catalog]
    start = time.perf_counter()
    inprocess.run(typed, items, cfg, keep=())
    return len(events) / (time.perf_counter() - start)


def pipeline(events: list[dict], cfg: JobConfig, catalog: list[dict]) -> float:
    from lab.inmemory import run_pipeline

    codec = AvroCodec("reco.UserEvent")
    raw = [codec.encode(e) for e in events]

    def timed(n):
        start = time.perf_counter()
        out = run_pipeline(raw[:n], catalog, cfg, bundle_size=1000)
        assert len(out["recommendations"]) == n, "every event must produce a list"
        return time.perf_counter() - start

    # Start-up (JVM, mini-cluster, Python workers) is most of a short run and varies by a
    # second or more between runs: timed twice after a first, colder one, and their spread
    # bounds what a run can resolve.
    timed(10)
    startups = [timed(10), timed(10)]
    startup, spread = min(startups), abs(startups[0] - startups[1])
    whole = timed(len(raw))
    work = whole - startup
    if work < max(MIN_WORK_S, 5 * spread):
        raise Unmeasurable(f"{len(raw)} events ran {work:.1f}s past a start-up of {startup:.1f}s (runs differing by "
                           f"{spread:.1f}s): too short to measure; use more --events")
    return (len(raw) - 10) / work


class Unmeasurable(RuntimeError):
    """A run too short for its figure to mean anything: reported as an error, not a number."""


MIN_WORK_S = 5.0


def state_bytes(record: dict, dims: int) -> None:
    """Pickled bytes of what state holds per item (its catalog record, broadcast state) and
    per user (the taste field of the Ranker's state), by precision."""
    import pickle

    import numpy as np

    from udfs import embedding

    taste = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
    print(f"# no model: {len(pickle.dumps(tuple(ItemInfo.of({**record, 'embedding': None})))):,} bytes per catalog "
          f"record")
    for precision in ("int8", "float32"):
        item = len(pickle.dumps(tuple(ItemInfo.of(record, precision))))
        user = len(pickle.dumps((1, embedding.pack(taste, precision))))
        print(f"# {precision}: {item:,} bytes per catalog record with its embedding, {user:,} per user taste")


def nearest_cost(sizes=(2_000, 10_000, 100_000, 1_000_000), dims: int = 48, queries: int = 50) -> None:
    """ms per ``ItemIndex.nearest`` query (top 20, with the taste product it reads) over random
    unit vectors, by catalog size: in a loop (the catalog's vectors stay in the CPU caches)
    and with the caches emptied before each query, as in the job, where every other record
    of a bundle runs between two of a ranker's requests."""
    import numpy as np

    from udfs.ranker import ItemIndex

    rng = np.random.default_rng(0)
    evict = np.zeros(16 << 20, dtype=np.float32)   # 64 MB: more than this VM's caches
    for size in sizes:
        index = ItemIndex(10)
        vectors = rng.standard_normal((size, dims)).astype(np.float32)
        for i in range(size):
            index.put(ItemInfo.of({"item_id": i, "title": "", "tags": [], "deleted": False,
                                   "embedding": vectors[i], "model_version": 1}))
        users = rng.standard_normal((queries, dims)).astype(np.float32)
        exclude = np.arange(0, size, max(1, size // 200), dtype=np.int64)   # 200 consumed items

        def ms_per_query(emptied: bool) -> float:
            total = 0.0
            for u in users:
                if emptied:
                    evict[::16] += 1.0   # a write to every cache line
                start = time.perf_counter()
                index.nearest(index.taste(u), 20, exclude)
                total += time.perf_counter() - start
            return total / queries * 1e3

        print(f"nearest 20 of {size:>9,} items x {dims} dims  {ms_per_query(False):8.3f} ms/query in a loop, "
              f"{ms_per_query(True):8.3f} from emptied caches")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--skip-flink", action="store_true")
    ap.add_argument("--modes", default="process",
                    help="Python execution modes of the pipeline runs, comma-separated (process,thread: "
                         "alternating, --repeats times each)")
    ap.add_argument("--repeats", type=int, default=1, help="pipeline runs per mode (alternating between modes)")
    ap.add_argument("--model", action="store_true", help="also with item embeddings (see above)")
    ap.add_argument("--embedding-weight", type=float, default=0.1, help="beta with --model (0.1)")
    ap.add_argument("--nearest", action="store_true", help="instead: brute-force nearest-items cost by catalog size")
    args = ap.parse_args()
    if args.nearest:
        nearest_cost()
        return 0
    cfg = JobConfig(max_out_of_orderness_ms=0)
    events = movielens.load_rating_events()[: args.events]
    movies = movielens.load_movies()
    catalog = movielens.item_records(movies, 0)
    print(f"# {time.strftime('%Y-%m-%d')}  {platform.node()}  {os.cpu_count()} cores  Python {platform.python_version()}")
    print(f"# {len(events)} MovieLens ratings, W={cfg.recent_items}, seeds={cfg.seeds}, M={cfg.neighbors_per_item}, N={cfg.top_n}")
    runs = [("", cfg, catalog)]
    if args.model:
        from reco_tools.embed import catalog_with_model, train

        vectors = train(events)
        with_model = catalog_with_model(catalog, vectors, 1, 0)
        print(f"# model: {len(vectors):,} item vectors of {len(next(iter(vectors.values()))):,} dimensions, "
              f"beta {args.embedding_weight}")
        runs += [(f" + model, {p}", cfg.replace(embedding_weight=args.embedding_weight, embedding_precision=p),
                  with_model) for p in ("int8", "float32")]
        state_bytes(next(r for r in with_model if r["embedding"]), len(next(iter(vectors.values()))))
    for label, run_cfg, run_catalog in runs:
        core = plain_python(events, run_cfg, run_catalog)
        print(f"{'plain Python core' + label:<34} {core:10,.0f} events/s")
        if not args.skip_flink:
            modes = args.modes.split(",")
            figures: dict[str, list[float]] = {m: [] for m in modes}
            for _ in range(args.repeats):
                for mode in modes:   # alternating: a slow spell of the machine hits both
                    try:
                        figures[mode].append(pipeline(events, run_cfg.replace(parallelism=2, python_execution_mode=mode),
                                                      run_catalog))
                    except Unmeasurable as exc:
                        print(f"error: PyFlink pipeline ({mode}){label}: {exc}", file=sys.stderr)
                        return 1
            for mode, runs in figures.items():
                shown = ", ".join(f"{r:,.0f}" for r in runs)
                print(f"{f'PyFlink pipeline (p=2, {mode})' + label:<34} {sorted(runs)[len(runs) // 2]:10,.0f} events/s"
                      f"  (runs: {shown})")
                print(f"{f'ratio pipeline / core ({mode})' + label:<34} {sorted(runs)[len(runs) // 2] / core:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
