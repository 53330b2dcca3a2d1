"""Offline quality of recommendation lists: prequential, full-ranking HR@10 and NDCG@10.

    .venv/bin/python bench/quality.py [--events N] [--json out.json] [--plot out.png]
    .venv/bin/python bench/quality.py --model --retrain-every 0.1   # and the job with embeddings

Protocol (one pass over the events in the order given, i.e. event-time order as
``reco_tools.movielens.load_rating_events`` returns them):

- The first ``cut = int(len(events) * warmup)`` events (``warmup`` 0.5 by default, by count)
  are warm-up. Every later event that is a ``RATING`` with ``value >= 4.0`` is a test case.
- A test case is scored against the list its user had JUST BEFORE that event, i.e. after
  every earlier event of that user and of everyone else. From that list the evaluator drops
  the items the user already consumed (any earlier event of theirs; for MovieLens: any
  earlier rating, any stars) and repeated items, then keeps the first ``k`` = 10.
  HR@10 is 1 if the rated item is among them, NDCG@10 is ``1/log2(rank + 1)`` (rank
  1-based), 0 when absent. A user without a list (``None``) is a miss.
- Catalog coverage: distinct items in the scored (filtered, top-10) lists over the number
  of items in the catalog (``movies.csv``).
- For list items that carry a ``reason``, the hits are split by reason class: a reason
  starting with "because you liked" is ``co-occurrence``, "trending now" is ``trending``,
  any other reason is its own class.

A method is a ``lists_for_case(i) -> list[dict] | None`` callable: ``i`` is the index of a
test case in ``events``, the answer is the method's list just before that event, best
first, items as dicts with at least ``item_id`` (``score`` and ``reason`` optional).
``score_lists`` calls it once per test case, in increasing ``i``. The three baselines
(``popularity_lists``, ``itemknn_lists``, ``itemcf_lists``) compute all their lists in one
pass when built and return such a callable (a dictionary lookup). ``lists_from_records``
makes one from the job's emitted recommendation records. To add the job as a row::

    from bench.quality import evaluate_methods, lists_from_records, print_table
    methods = baseline_methods(events, movies) | {"job": lists_from_records(events, records)}
    print_table(evaluate_methods(events, methods, catalog_size=len(movies)))

This module is deliberately independent of ``udfs/`` (the code under evaluation): the
baselines and the version rule are written here from their definitions.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reco_tools import movielens  # noqa: E402

K = 10
POSITIVE = 4.0          # a rating >= 4 stars is a positive (test case after the cut, profile item)
PROFILE_ITEMS = 20      # item-kNN / item-CF: the user's last 20 positively rated items

ListsForCase = Callable[[int], "list[dict] | None"]


# ---------------------------------------------------------------------------------------
# Protocol helpers

def cut_index(n_events: int, warmup: float = 0.5) -> int:
    """Index of the first event after the warm-up: events[:cut] are warm-up."""
    if not 0.0 <= warmup <= 1.0:
        raise ValueError(f"warmup must be in [0, 1], got {warmup}")
    return int(n_events * warmup)


def is_positive(event: dict) -> bool:
    value = event.get("value")
    return event.get("event_type", "RATING") == "RATING" and value is not None and value >= POSITIVE


def case_indices(events: list[dict], warmup: float = 0.5) -> list[int]:
    """Indices of the test cases: positive ratings at or after the cut."""
    cut = cut_index(len(events), warmup)
    return [i for i in range(cut, len(events)) if is_positive(events[i])]


def reason_class(reason: str) -> str:
    if reason.startswith("because you liked"):
        return "co-occurrence"
    if reason.startswith("trending now"):
        return "trending"
    return reason


def ndcg_at(rank: int | None) -> float:
    """Gain of one relevant item at 1-based ``rank`` (None: not in the list)."""
    return 0.0 if rank is None else 1.0 / math.log2(rank + 1)


# ---------------------------------------------------------------------------------------
# Scoring

def score_lists(events: list[dict], lists_for_case: ListsForCase, warmup: float = 0.5, *,
                k: int = K, catalog_size: int | None = None) -> dict:
    """HR@k, NDCG@k, coverage and hits by reason of one method's lists (see module doc).

    ``catalog_size`` is the coverage denominator (default: the number of MovieLens movies).
    Returns a JSON-ready dict: hr, ndcg, coverage, cases, hits, cases_without_list,
    recommended_items, catalog_size, k, warmup, hits_by_reason (class -> share of the hits
    whose item carries a reason), hit_reason_counts (class -> count).
    """
    if catalog_size is None:
        catalog_size = len(movielens.load_movies())
    cut = cut_index(len(events), warmup)
    consumed: dict[int, set] = defaultdict(set)
    cases = hits = without_list = 0
    ndcg_sum = 0.0
    recommended: set = set()
    reason_counts: dict[str, int] = defaultdict(int)
    for i, e in enumerate(events):
        user, item = e["user_id"], e["item_id"]
        if i >= cut and is_positive(e):
            cases += 1
            seen = consumed[user]
            raw = lists_for_case(i)
            if raw is None:
                without_list += 1
            else:
                top, kept = [], set()
                for entry in raw:
                    j = entry["item_id"]
                    if j in seen or j in kept:
                        continue
                    top.append(entry)
                    kept.add(j)
                    if len(top) == k:
                        break
                recommended.update(kept)
                for rank, entry in enumerate(top, start=1):
                    if entry["item_id"] == item:
                        hits += 1
                        ndcg_sum += ndcg_at(rank)
                        if entry.get("reason") is not None:
                            reason_counts[reason_class(entry["reason"])] += 1
                        break
        consumed[user].add(item)
    with_reason = sum(reason_counts.values())
    return {
        "k": k, "warmup": warmup, "cases": cases, "hits": hits,
        "hr": hits / cases if cases else 0.0,
        "ndcg": ndcg_sum / cases if cases else 0.0,
        "cases_without_list": without_list,
        "recommended_items": len(recommended), "catalog_size": catalog_size,
        "coverage": len(recommended) / catalog_size if catalog_size else 0.0,
        "hits_by_reason": {c: n / with_reason for c, n in sorted(reason_counts.items())},
        "hit_reason_counts": dict(sorted(reason_counts.items())),
    }


def evaluate_methods(events: list[dict], methods: Mapping[str, ListsForCase], warmup: float = 0.5, *,
                     k: int = K, catalog_size: int | None = None) -> dict[str, dict]:
    """``score_lists`` for each method; returns {name: result} (result["method"] = name,
    result["score_seconds"] = time spent scoring, including lazy list computation)."""
    if catalog_size is None:
        catalog_size = len(movielens.load_movies())
    results = {}
    for name, lists_for_case in methods.items():
        start = time.perf_counter()
        r = score_lists(events, lists_for_case, warmup, k=k, catalog_size=catalog_size)
        results[name] = {"method": name, **r, "score_seconds": time.perf_counter() - start}
    return results


def print_table(results: Mapping[str, dict] | Iterable[dict], file=None) -> None:
    """One row per method: HR@k, NDCG@k, coverage, test cases; then hits by reason, if any."""
    file = file or sys.stdout
    rows = list(results.values()) if isinstance(results, Mapping) else list(results)
    if not rows:
        print("(no results)", file=file)
        return
    k = rows[0].get("k", K)
    width = max(len("method"), *(len(r["method"]) for r in rows))
    head = f"{'method':<{width}}  {f'HR@{k}':>7}  {f'NDCG@{k}':>7}  {'coverage':>8}  {'test cases':>10}"
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in rows:
        print(f"{r['method']:<{width}}  {r['hr']:>7.4f}  {r['ndcg']:>7.4f}  {r['coverage']:>8.4f}  "
              f"{r['cases']:>10,}", file=file)
    for r in rows:
        if r.get("hits_by_reason"):
            shares = ", ".join(f"{c} {s:.1%}" for c, s in r["hits_by_reason"].items())
            print(f"hits by reason, {r['method']}: {shares}", file=file)


# ---------------------------------------------------------------------------------------
# The job's records

def event_versions(events: list[dict]) -> list[int]:
    """Per event: version = max(event_time * 1024, previous version of that user + 1)."""
    last: dict[int, int] = {}
    out = []
    for e in events:
        user = e["user_id"]
        v = e["event_time"] * 1024
        if user in last and last[user] + 1 > v:
            v = last[user] + 1
        last[user] = v
        out.append(v)
    return out


def lists_from_records(events: list[dict], records: Iterable[dict]) -> ListsForCase:
    """``lists_for_case`` from emitted recommendation records.

    The list just before event ``i`` (user u, version v) is the ``items`` of u's record with
    the largest version strictly below v, or None if u has none. Items come back as emitted;
    ``score_lists`` drops consumed items and keeps the first ``k``. The same (user, version)
    emitted twice must carry the same items (else ValueError: the run was not exactly-once).
    """
    by_user: dict[int, dict[int, list]] = defaultdict(dict)
    for r in records:
        versions = by_user[r["user_id"]]
        v = int(r["version"])
        items = list(r["items"])
        if v in versions and [x["item_id"] for x in versions[v]] != [x["item_id"] for x in items]:
            raise ValueError(f"user {r['user_id']} version {v} emitted twice with different items")
        versions[v] = items
    index = {u: (sorted(vs), vs) for u, vs in by_user.items()}
    versions = event_versions(events)

    def lists_for_case(i: int) -> list[dict] | None:
        entry = index.get(events[i]["user_id"])
        if entry is None:
            return None
        sorted_versions, items = entry
        pos = bisect.bisect_left(sorted_versions, versions[i])
        return items[sorted_versions[pos - 1]] if pos else None

    return lists_for_case


# ---------------------------------------------------------------------------------------
# Baselines. Each builds every test case's list in one pass over the events and returns a
# lists_for_case callable (a lookup in the precomputed lists). Lists hold up to k items
# with a positive score, ties broken by the smaller item id; items the user consumed before
# the event are never in them.

def _as_list(items: Iterable[int], scores: Iterable[float]) -> list[dict]:
    return [{"item_id": int(j), "score": float(s)} for j, s in zip(items, scores)]


def _top_k(scores: np.ndarray, item_ids: np.ndarray, k: int) -> list[dict]:
    """The k best positive scores (ties: smaller item id first). ``item_ids`` ascending."""
    positive = scores > 0
    n_pos = int(np.count_nonzero(positive))
    if n_pos == 0:
        return []
    if n_pos > k:
        kth = np.partition(scores, scores.size - k)[scores.size - k]   # k-th largest
        cand = np.flatnonzero(scores >= kth)                          # all ties included
    else:
        cand = np.flatnonzero(positive)
    order = np.lexsort((item_ids[cand], -scores[cand]))[:k]           # score desc, id asc
    best = cand[order]
    return _as_list(item_ids[best], scores[best])


def _lookup(lists: dict[int, list | None]) -> ListsForCase:
    def lists_for_case(i: int) -> list[dict] | None:
        return lists.get(i)
    lists_for_case.lists = lists   # the precomputed lists, for inspection
    return lists_for_case


def popularity_lists(events: list[dict], movies=None, warmup: float = 0.5, *, k: int = K) -> ListsForCase:
    """Most popular items not yet consumed; popularity = number of ratings >= 4 in the
    warm-up, counted once at the cut and then fixed. ``movies`` is not needed (accepted for
    a uniform signature)."""
    cut = cut_index(len(events), warmup)
    counts: dict[int, int] = defaultdict(int)
    for e in events[:cut]:
        if is_positive(e):
            counts[e["item_id"]] += 1
    ranking = sorted(counts, key=lambda j: (-counts[j], j))
    consumed: dict[int, set] = defaultdict(set)
    lists: dict[int, list | None] = {}
    for i, e in enumerate(events):
        user = e["user_id"]
        if i >= cut and is_positive(e):
            seen, top = consumed[user], []
            for j in ranking:
                if j not in seen:
                    top.append({"item_id": j, "score": float(counts[j])})
                    if len(top) == k:
                        break
            lists[i] = top
        consumed[user].add(e["item_id"])
    return _lookup(lists)


def _push_recent(recent: list[int], item: int, limit: int = PROFILE_ITEMS) -> list[int]:
    """Previous profile (the pair partners), and the profile updated in place."""
    partners = [j for j in recent if j != item]
    recent[:] = (partners + [item])[-limit:]
    return partners


def itemknn_lists(events: list[dict], movies=None, warmup: float = 0.5, *, k: int = K,
                  profile: int = PROFILE_ITEMS) -> ListsForCase:
    """Batch item-kNN: cosine similarities from the warm-up ratings >= 4 (C(i,j) = users who
    rated both, N(i) = users who rated i), computed once at the cut. Score of j for a user =
    sum of sim(i, j) over the user's last ``profile`` positively rated items so far (the
    profile keeps growing after the cut). A user with no positive rating yet has no list."""
    cut = cut_index(len(events), warmup)
    pairs = {(e["user_id"], e["item_id"]) for e in events[:cut] if is_positive(e)}
    item_ids = np.array(sorted({j for _, j in pairs}), dtype=np.int64)
    col = {int(j): c for c, j in enumerate(item_ids)}
    users = sorted({u for u, _ in pairs})
    row = {u: r for r, u in enumerate(users)}
    x = np.zeros((len(users), len(item_ids)), dtype=np.float32)
    for u, j in pairs:
        x[row[u], col[j]] = 1.0
    sim = (x.T @ x).astype(np.float64)                 # C(i, j), exact small integers
    n = np.diag(sim).copy()                            # N(i)
    inv = np.where(n > 0, 1.0 / np.sqrt(np.maximum(n, 1.0)), 0.0)
    sim *= inv[:, None]
    sim *= inv[None, :]
    np.fill_diagonal(sim, 0.0)
    del x

    recent: dict[int, list[int]] = defaultdict(list)
    consumed: dict[int, list[int]] = defaultdict(list)   # columns of consumed items
    lists: dict[int, list | None] = {}
    for i, e in enumerate(events):
        user, item = e["user_id"], e["item_id"]
        pos = is_positive(e)
        if i >= cut and pos:
            seeds = [col[j] for j in recent[user] if j in col]
            if not recent[user]:
                lists[i] = None
            elif not seeds:
                lists[i] = []
            else:
                scores = sim[seeds].sum(axis=0)
                scores[consumed[user]] = 0.0
                lists[i] = _top_k(scores, item_ids, k)
        if pos:
            _push_recent(recent[user], item, profile)
        if item in col:
            consumed[user].append(col[item])
    return _lookup(lists)


def itemcf_lists(events: list[dict], movies=None, warmup: float = 0.5, *, k: int = K,
                 profile: int = PROFILE_ITEMS, interest_above: float | None = None, pair_span_ms: int | None = None,
                 pair_weight: bool = False, stale_ms: int = 0, neighbors: int | None = None,
                 shrinkage: float = 0.0, seed_weights: bool = False, embeddings: Mapping[int, np.ndarray] | None = None,
                 embedding_weight: float = 0.0) -> ListsForCase:
    """Streaming item-CF: the item-kNN scoring, but C and N are updated on every rating >= 4
    in event order (from the first event): N(i) += 1, and C(i, j) += 1 for the user's previous
    (up to ``profile``) positively rated items j. The list before an event uses everything
    before it. A user with no positive rating yet has no list.

    The keywords move it toward the job's definitions one at a time (bench/RESULTS.md "Quality"; all
    off by default): ``interest_above`` profile and pairs from ratings above that many stars
    instead of >= 4 (test cases stay >= 4); ``pair_span_ms`` pairs only within that span;
    ``pair_weight`` each pair weighs 1/log2(2 + partners); ``stale_ms`` lists from the
    counts as of the last multiple of that (the job's bucket end); ``neighbors`` each seed
    gives only its that-many most similar items; ``shrinkage`` similarity x C/(C + lambda);
    ``seed_weights`` a seed weighs 2 x (stars - 2.5). ``embeddings`` (item -> unit vector)
    with ``embedding_weight`` beta: score = (1 - beta) x the above + beta x the cosine of the
    item with the sum of the seeds' vectors (0 when negative or unknown)."""
    takes = (lambda e: e.get("value") is not None and e["value"] > interest_above) if interest_above is not None \
        else is_positive
    plain = (pair_span_ms, stale_ms, neighbors) == (None, 0, None) and not (pair_weight or shrinkage or seed_weights
                                                                          or embedding_weight)
    cut = cut_index(len(events), warmup)
    item_ids = np.array(sorted({e["item_id"] for e in events if takes(e)}), dtype=np.int64)
    col = {int(j): c for c, j in enumerate(item_ids)}   # an index only; counts start at zero
    c = np.zeros((len(item_ids), len(item_ids)), dtype=np.float32)  # exact up to 2**24 (unweighted)
    n = np.zeros(len(item_ids), dtype=np.float64)
    seen_c, seen_n, as_of = c, n, None                   # what lists are ranked from (stale_ms: a copy)
    if embedding_weight:
        dims = len(next(iter(embeddings.values())))
        vectors = np.zeros((len(item_ids), dims))
        for j, v in embeddings.items():
            if j in col:
                vectors[col[j]] = v
    recent: dict[int, list[tuple[int, int, float]]] = defaultdict(list)   # (column, time, stars) of the last positives
    consumed: dict[int, list[int]] = defaultdict(list)
    lists: dict[int, list | None] = {}
    for i, e in enumerate(events):
        user, item, t = e["user_id"], e["item_id"], e["event_time"]
        if stale_ms and as_of != t // stale_ms:
            seen_c, seen_n, as_of = c.copy(), n.copy(), t // stale_ms
        if i >= cut and is_positive(e):
            seeds = [s for s, _, _ in recent[user]]
            if not seeds:
                lists[i] = None
            else:
                inv = np.where(seen_n > 0, 1.0 / np.sqrt(np.maximum(seen_n, 1.0)), 0.0)
                if plain:
                    scores = (inv[seeds] @ seen_c[seeds]) * inv
                else:
                    rows = seen_c[seeds].astype(np.float64)
                    sims = rows * inv[seeds][:, None] * inv[None, :]
                    if shrinkage:
                        sims *= rows / (rows + shrinkage)
                    if neighbors is not None and neighbors < sims.shape[1]:
                        cutoff = -np.partition(-sims, neighbors - 1, axis=1)[:, neighbors - 1:neighbors]
                        sims[sims < cutoff] = 0.0
                    w = np.array([2.0 * (v - 2.5) if seed_weights else 1.0 for _, _, v in recent[user]])
                    scores = w @ sims
                    if embedding_weight:
                        profile_vec = vectors[seeds].sum(axis=0)
                        norm = np.linalg.norm(profile_vec)
                        near = np.maximum(vectors @ (profile_vec / norm), 0.0) if norm > 0 else 0.0
                        scores = (1.0 - embedding_weight) * scores + embedding_weight * near
                scores[seeds] = 0.0
                scores[consumed[user]] = 0.0
                lists[i] = _top_k(scores, item_ids, k)
        if takes(e):
            ci = col[item]
            previous = [r for r in recent[user] if r[0] != ci]
            recent[user] = (previous + [(ci, t, e["value"])])[-profile:]
            partners = [s for s, ts, _ in previous if pair_span_ms is None or abs(t - ts) <= pair_span_ms]
            n[ci] += 1.0
            if partners:
                weight = 1.0 / math.log2(2 + len(partners)) if pair_weight else 1.0
                c[ci, partners] += weight
                c[partners, ci] += weight
        if item in col:
            consumed[user].append(col[item])
    return _lookup(lists)


# Streaming item-CF, moved toward the job one definition at a time (demo.toml's values).
ITEMCF_ABLATION = {
    "as is": {},
    "pairs from ratings above 2.5": {"interest_above": 2.5},
    "pairs only within 1 day": {"pair_span_ms": 86_400_000},
    "pairs weighted 1/log2(2 + partners)": {"pair_weight": True},
    "counts as of the last day boundary": {"stale_ms": 86_400_000},
    "200 best neighbors per seed": {"neighbors": 200},
    "seeds weighted by stars": {"seed_weights": True},
    "shrinkage 1": {"shrinkage": 1.0},
}
ITEMCF_ABLATION["all but shrinkage"] = {k: v for d in list(ITEMCF_ABLATION.values())[1:-1] for k, v in d.items()}
ITEMCF_ABLATION["all"] = {**ITEMCF_ABLATION["all but shrinkage"], "shrinkage": 1.0}


BASELINES = {
    "popularity": popularity_lists,
    "item-knn (batch)": itemknn_lists,
    "item-cf (streaming)": itemcf_lists,
}


def baseline_methods(events: list[dict], movies=None, warmup: float = 0.5, *, k: int = K,
                     timings: dict | None = None) -> dict[str, ListsForCase]:
    """The three baselines built on ``events``: {name: lists_for_case}. Build times in
    seconds go to ``timings`` if given."""
    return built({name: (lambda b=build: b(events, movies, warmup, k=k)) for name, build in BASELINES.items()},
                 timings)


def built(builders: Mapping[str, Callable[[], ListsForCase]], timings: dict | None = None) -> dict[str, ListsForCase]:
    """{name: builder()} in order; each build's seconds go to ``timings`` if given."""
    out = {}
    for name, build in builders.items():
        start = time.perf_counter()
        out[name] = build()
        if timings is not None:
            timings[name] = time.perf_counter() - start
    return out


# ---------------------------------------------------------------------------------------
# The job's own lists

JOB_ENGINES = ("inprocess", "pipeline")


def job_records(events: list[dict], movies, cfg, engine: str = "inprocess",
                models: Iterable[tuple[int, Mapping]] = ()) -> list[dict]:
    """The recommendation records the job emits for ``events`` (ratings) with settings ``cfg``.

    ``inprocess``: the job's step functions driven in one process (``lab.inprocess``),
    seconds; ``pipeline``: the real PyFlink pipeline on in-memory input (minutes, a JVM).
    ``models`` ``(at, {item: vector})``, in process only: each is published in the catalog
    (as reco-embed does; model_version 1, 2, ...) just before event ``at``.
    """
    from reco_tools.movielens import item_records

    catalog = item_records(movies, 0)
    models = sorted(models, key=lambda m: m[0])
    if models and engine != "inprocess":
        raise ValueError("models are published mid-stream in process only")
    if engine == "pipeline":
        from flink_jobs.codec import AvroCodec
        from lab.inmemory import run_pipeline

        codec = AvroCodec("reco.UserEvent")
        return run_pipeline([codec.encode(e) for e in events], catalog, cfg, bundle_size=1000)["recommendations"]
    from itertools import chain

    from reco_tools.embed import with_embeddings
    from lab import inprocess
    from udfs.records import Event, ItemInfo

    parts, done = [], 0
    for version, (at, vectors) in enumerate(models, start=1):
        parts += [map(Event.of, events[done:at]),
                  [ItemInfo.of(r, cfg.embedding_precision) for r in with_embeddings(catalog, vectors, version, 0)]]
        done = at
    stream = chain(*parts, map(Event.of, events[done:]))
    return inprocess.run(stream, map(ItemInfo.of, catalog), cfg)["recommendations"]


# ---------------------------------------------------------------------------------------
# CLI

def plot(results: Mapping[str, dict], path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; skipping the plot", file=sys.stderr)
        return False
    rows = list(results.values())
    k = rows[0]["k"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(rows), 4))
    ax.bar(x - 0.2, [r["hr"] for r in rows], 0.4, label=f"HR@{k}")
    ax.bar(x + 0.2, [r["ndcg"] for r in rows], 0.4, label=f"NDCG@{k}")
    ax.set_xticks(x, [r["method"] for r in rows])
    ax.set_title(f"MovieLens, prequential, {rows[0]['cases']:,} test cases")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=0, help="first N ratings only (default: all)")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up share of the events (0.5)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--plot", metavar="PATH", help="bar plot of HR/NDCG (needs matplotlib)")
    p.add_argument("--job", action="append", choices=JOB_ENGINES,
                   help="add the job's lists, from its steps in one process (inprocess, the default) "
                        "or from the PyFlink pipeline (pipeline); repeat for both")
    p.add_argument("--no-job", action="store_true", help="baselines only")
    p.add_argument("--itemcf-ablation", action="store_true",
                   help="instead: the streaming item-CF moved toward the job one definition at a time")
    p.add_argument("--embedding-probe", action="store_true",
                   help="instead: the streaming item-CF (shrinkage 1) with item vectors trained at the cut "
                        "(reco_tools.embed.train) blended in")
    p.add_argument("--model", action="store_true",
                   help="also the job with item embeddings trained at the cut (reco_tools.embed.train, as "
                        "reco-embed) and published there, in process; --set embedding_weight=... to weigh them")
    p.add_argument("--model-only", action="store_true", help="with --model: the job's row with the model only")
    p.add_argument("--retrain-every", type=float, default=0.0, metavar="SHARE",
                   help="with --model: train again on all events so far every SHARE of the events after the cut "
                        "(e.g. 0.1), each a new model version")
    p.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "deploy/local/demo.toml"),
                   help="the job's settings (TOML; default deploy/local/demo.toml)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override one job setting, e.g. --set seeds=10 (repeatable)")
    args = p.parse_args(argv)

    start = time.perf_counter()
    movies = movielens.load_movies()
    events = movielens.load_rating_events()
    if args.events > 0:
        events = events[:args.events]
    timings: dict[str, float] = {}
    cut = cut_index(len(events), args.warmup)
    args.model |= args.model_only
    if args.embedding_probe or args.model:
        from reco_tools.embed import train

        t0 = time.perf_counter()
        vectors = train(events[:cut])
        print(f"{len(vectors):,} item vectors trained at the cut in {time.perf_counter() - t0:.1f} s")
        models = [(cut, vectors)]
        step = int(len(events) * args.retrain_every)
        for at in range(cut + step, len(events), step) if step > 0 else ():
            models.append((at, train(events[:at])))
    if args.embedding_probe:
        methods = built({f"item-cf, shrinkage 1, beta {beta}": (
            lambda beta=beta: itemcf_lists(events, movies, args.warmup, shrinkage=1.0, embeddings=vectors,
                                           embedding_weight=beta)) for beta in (0.0, 0.05, 0.1, 0.3, 1.0)}, timings)
    elif args.itemcf_ablation:
        methods = built({f"item-cf, {name}": (lambda knobs=knobs: itemcf_lists(events, movies, args.warmup, **knobs))
                         for name, knobs in ITEMCF_ABLATION.items()}, timings)
    else:
        methods = baseline_methods(events, movies, args.warmup, timings=timings)
    if not (args.no_job or args.itemcf_ablation or args.embedding_probe):
        from flink_jobs.config import JobConfig

        overrides = dict(kv.split("=", 1) for kv in args.set)
        cfg = JobConfig.load(args.config, env={}, overrides={
            k: type(getattr(JobConfig, k))(v) for k, v in overrides.items()})
        for engine in [] if args.model_only else args.job or ["inprocess"]:
            t0 = time.perf_counter()
            records = job_records(events, movies, cfg, engine)
            methods[f"job ({engine})"] = lists_from_records(events, records)
            timings[f"job ({engine})"] = time.perf_counter() - t0
        for precision in ("int8", "float32") if args.model else ():   # the state's precision, side by side
            t0 = time.perf_counter()
            records = job_records(events, movies, cfg.replace(embedding_precision=precision), "inprocess", models)
            name = f"job (inprocess) + {len(models)} model{'s' if len(models) > 1 else ''}, {precision}"
            methods[name] = lists_from_records(events, records)
            timings[name] = time.perf_counter() - t0
    results = evaluate_methods(events, methods, args.warmup, catalog_size=len(movies))
    for name, r in results.items():
        r["build_seconds"] = timings.get(name)
    total = time.perf_counter() - start
    print(f"{len(events):,} events, warm-up {cut_index(len(events), args.warmup):,}, "
          f"catalog {len(movies):,} items")
    print_table(results)
    print("seconds (build + score): " + ", ".join(
        f"{n} {r['build_seconds']:.1f}+{r['score_seconds']:.1f}" for n, r in results.items())
        + f"; total {total:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"events": len(events), "warmup": args.warmup,
                                               "seconds": total, "results": results}, indent=2))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
