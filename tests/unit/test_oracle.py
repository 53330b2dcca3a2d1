"""The oracle (``lab/oracle.py``, written from docs/algorithm.md without the job's code)
against the job's own steps driven in one process (``lab.inprocess``), and both against
small cases whose numbers are worked out by hand in the comments.

Pruning off: versions, every published list (which ones, N(i), C(i,j), scores), trending
and every user's lists must be equal. Production settings with pruning on: versions, N(i),
trending and the users' lists still are; a published count is at most the true one.
"""

import ast
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from flink_jobs.config import HOUR, MINUTE, JobConfig
from lab import oracle as V
from reco_tools.synth import Synth, SynthConfig
from udfs import cooccurrence as co
from lab.inprocess import Dataflow
from udfs.records import Event, ItemInfo, NeighborCounts, Trending

ROOT = Path(__file__).resolve().parents[2]
A = 0.6309297535714575     # 1/log2(3): the weight of a pair from an event with 1 partner
B = 0.5                    # 1/log2(4): 2 partners


def ev(user, item, t, kind="VIEW", value=None):
    return {"event_id": f"{user}-{item}-{t}", "user_id": user, "item_id": item, "event_type": kind,
            "value": value, "event_time": t}


def item(i, tags, deleted=False):
    return {"item_id": i, "title": f"Item {i}", "tags": list(tags), "embedding": None, "updated_at": 0,
            "deleted": deleted}


def drive(events, catalog, cfg, index=()):
    """The job's steps in one process; every output in the order it was emitted."""
    stream = []
    flow = Dataflow(cfg, map(ItemInfo.of, catalog), lambda kind, rec: stream.append((kind, rec)))
    for msg in index:
        flow.index.put(msg)
    for e in events:
        flow.push(Event.of(e))
    flow.finish()
    return stream


def listing(events):
    """A catalog that lists every item of ``events`` (published lists hold listed items only)."""
    return [item(i, ("t",)) for i in sorted({e["item_id"] for e in events})]


def of_kind(stream, kind):
    return [rec for k, rec in stream if k == kind]


# ---------------------------------------------------------------- hand-computed cases

HAND = JobConfig(recent_items=2, pair_span_ms=10 * MINUTE, bucket_ms=10 * MINUTE, cooccurrence_window_ms=30 * MINUTE,
                 trending_window_ms=10 * MINUTE, trending_size=2, neighbors_per_item=1000, fragment_size=1000,
                 max_out_of_orderness_ms=0, user_ttl_ms=24 * HOUR, seeds=2, top_n=3,
                 similarity_shrinkage=0.0)   # worked out with the plain cosine; shrinkage: its own case
S = 1_000  # ms

# W = 2, T = 10 min (inclusive), buckets of 10 min, L = 30 min.
HAND_EVENTS = [
    ev(1, 1, 0),                        # window [1]; no partner
    ev(2, 1, 1 * S, "RATING", 2.0),     # weight 0: consumed, no window, no pair, no N
    ev(2, 3, 1 * S, "RATING", 1.5),     # same ms: version + 1
    ev(1, 2, 60 * S, "CLICK"),          # partners {1}: 2-1 += A; window [1, 2]
    ev(1, 3, 120 * S, "PURCHASE"),      # partners {1, 2}: 3-1, 3-2 += B; window [2, 3] (W = 2)
    ev(1, 2, 180 * S),                  # re-consumed: partners {3} (not itself): 2-3 += A; window [3, 2]
    ev(1, 4, 200 * S, "RATING", 2.5),   # weight 0
    ev(1, 5, 720 * S),                  # partners {3 (720-120 = 600 s = T, inclusive), 2}: 5-3, 5-2 += B; bucket 600 s
]


def test_hand_case_versions():
    # max(t x 1024, previous + 1); user 1's first event at t = 0 gets 1
    want = {1: [1, 61_440_000, 122_880_000, 184_320_000, 204_800_000, 737_280_000], 2: [1_024_000, 1_024_001]}
    assert V.expected_versions(HAND_EVENTS) == want
    got = defaultdict(list)
    for r in of_kind(drive(HAND_EVENTS, [], HAND), "recommendations"):
        got[r["user_id"]].append(r["version"])
    assert dict(got) == want


# (item, end) -> (N(i), {j: C(i,j)}). Bucket 0 holds 1-2: A, 1-3: B, 2-3: B + A, N = {1: 1, 2: 2, 3: 1};
# bucket 600 s holds 5-3: B, 5-2: B, N = {5: 1}. A list at end e counts the buckets that start
# before e and end after e - 30 min. Items publish at the end of their buckets and 30 min later.
HAND_WINDOWS = {
    (1, 600 * S): (1.0, {2: A, 3: B}),
    (2, 600 * S): (2.0, {1: A, 3: B + A}),
    (3, 600 * S): (1.0, {1: B, 2: B + A}),
    (2, 1200 * S): (2.0, {1: A, 3: B + A, 5: B}),      # item 1 had nothing in bucket 600 s: no list
    (3, 1200 * S): (1.0, {1: B, 2: B + A, 5: B}),
    (5, 1200 * S): (1.0, {2: B, 3: B}),
    (2, 2400 * S): (0.0, {5: B}),    # bucket 0 left; item 2's own events with it: N = 0
    (3, 2400 * S): (0.0, {5: B}),    # (item 1 has no pair left at 2400 s: no list; nothing at 3000 s)
}


def test_hand_case_cooccurrence_oracle():
    got = V.expected_windows(HAND_EVENTS, HAND)
    assert got.keys() == HAND_WINDOWS.keys()
    for key, (n, counts) in HAND_WINDOWS.items():
        assert got[key][0] == n, key
        assert got[key][1] == pytest.approx(counts), key
    assert V.batch_own(HAND_EVENTS, HAND) == {1: [0], 2: [60 * S, 180 * S], 3: [120 * S], 5: [720 * S]}


def test_hand_case_cooccurrence_job():
    published = of_kind(drive(HAND_EVENTS, listing(HAND_EVENTS), HAND), "item_neighbors")
    got = {(r["item_id"], r["event_time"]): (r["item_count"], {n["item_id"]: n["co_count"] for n in r["neighbors"]})
           for r in published}
    assert len(published) == len(got) == len(HAND_WINDOWS)
    assert got.keys() == HAND_WINDOWS.keys()
    for key, (n, counts) in HAND_WINDOWS.items():
        assert got[key][0] == n, key
        assert got[key][1] == pytest.approx(counts), key
    # the first list (item 1 at 600 s; in one process items fire in id order) knows no N(j):
    # N(j) falls back to C(1,j), so score = C / sqrt(1 x C) = sqrt(C): sqrt(A) = 0.79431, sqrt(0.5) = 0.70711
    first = published[0]
    assert (first["item_id"], first["event_time"]) == (1, 600 * S)
    assert [(n["item_id"], n["score"]) for n in first["neighbors"]] == [
        (2, pytest.approx(0.7943109)), (3, pytest.approx(0.7071068))]
    # N(i) = 0: every score 0
    assert [n["score"] for r in published if r["item_count"] == 0 for n in r["neighbors"]] == [0.0, 0.0]


def test_hand_case_trending():
    # trending window 10 min = one bucket, 2 items. At 600 s: bucket 0: 2 x2, 1 and 3 x1 (tie: lower id);
    # at 1200 s: bucket 600 s only: item 5. Weight-0 ratings count nothing.
    want = {600 * S: [(2, 2.0), (1, 1.0)], 1200 * S: [(5, 1.0)]}
    assert V.expected_trending(HAND_EVENTS, HAND) == want
    got = of_kind(drive(HAND_EVENTS, listing(HAND_EVENTS), HAND), "trending")
    assert {t.t: list(t.top) for t in got} == want


def test_hand_case_shrinkage():
    # lambda = 1: 7: 2 / sqrt(4 x 2) x 2 / 3 = 0.47140; 8: 3 / sqrt(4 x 9) x 3 / 4 = 0.375;
    # 9: 1.2 / sqrt(4 x 1.2) x 1.2 / 2.2 = 0.29876, though its plain cosine (0.54772) is the highest
    counts, known = {7: 2.0, 8: 3.0, 9: 1.2}, {7: 1.0, 8: 9.0, 9: 1.2}
    want = {7: 0.4714045, 8: 0.375, 9: 0.2987578}
    assert V.expected_scores(counts, 4.0, known, 1.0) == pytest.approx(want)
    assert V.expected_scores(counts, 4.0, known)[9] == pytest.approx(0.5477226)
    cfg = HAND.replace(similarity_shrinkage=1.0)
    assert V.expected_neighbor_list(counts, 4.0, known, cfg) == [
        (7, pytest.approx(want[7]), 2.0), (8, 0.375, 3.0), (9, pytest.approx(want[9]), 1.2)]
    # the job's own scoring, against the numbers above
    assert [(j, pytest.approx(s), c) for j, s, c in zip(*(a.tolist() for a in co.top_neighbors(counts, 4.0, known, 3, 1.0)))] == [
        (7, want[7], 2.0), (8, want[8], 3.0), (9, want[9], 1.2)]
    record = {"item_count": 4.0, "neighbors": [{"item_id": 8, "score": 0.375, "co_count": 3.0}]}
    assert V.unexplained_scores(record, {8: [9.0]}, 1.0, tol=1e-6) == []
    assert V.unexplained_scores(record, {8: [9.0]}, 0.0, tol=1e-6) == [8]


def test_hand_case_scores():
    # N(7) = 1 is below C = 2: falls back to C; N(9) unknown: falls back to C
    # 7: 2 / sqrt(4 x 2) = 0.70711; 8: 3 / sqrt(4 x 9) = 0.5; 9: 1 / sqrt(4 x 1) = 0.5
    got = V.expected_scores({7: 2.0, 8: 3.0, 9: 1.0}, 4.0, {7: 1.0, 8: 9.0})
    assert got == pytest.approx({7: 0.7071068, 8: 0.5, 9: 0.5})
    assert V.expected_scores({7: 2.0}, 0.0, {7: 4.0}) == {7: 0.0}
    # the published list: M = 2 largest counts (8, 7), then by score: 7 (0.707) before 8 (0.5)
    cfg = HAND.replace(neighbors_per_item=2, fragment_size=2)
    assert V.expected_neighbor_list({7: 2.0, 8: 3.0, 9: 1.0}, 4.0, {7: 1.0, 8: 9.0}, cfg) == [
        (7, pytest.approx(0.7071068), 2.0), (8, 0.5, 3.0)]
    record = {"item_count": 4.0, "neighbors": [{"item_id": 7, "score": 0.7071068, "co_count": 2.0},
                                               {"item_id": 8, "score": 0.4, "co_count": 3.0}]}
    assert V.unexplained_scores(record, {8: [9.0]}, tol=1e-6) == [8]
    # 0.4 = 3 / sqrt(4 N) for N(8) = 56.25 / 4 = 14.0625: explained once the ranker may have had that N(8)
    assert V.unexplained_scores(record, {8: [9.0, 14.0625]}, tol=1e-6) == []


# Ranking: every neighbor count is 4 (N = 4 for all), so similarity = C / 4.
#   item 1's list: 2 (C 3.6 -> 0.9), 3 (2.0 -> 0.5), 4 (1.6 -> 0.4)
#   item 2's list: 6 (4.0 -> 1.0), 5 (3.2 -> 0.8), 4 (2.0 -> 0.5)
RANK_CATALOG = [item(1, "a"), item(2, "b"), item(3, "a"), item(4, "ab"), item(5, "b"), item(6, "c", deleted=True),
                item(7, "c"), item(8, "c")]
RANK_INDEX = [NeighborCounts(1, 0, 4.0, ((2, 3.6), (3, 2.0), (4, 1.6))),
              NeighborCounts(2, 0, 4.0, ((6, 4.0), (5, 3.2), (4, 2.0))),
              NeighborCounts(3, 0, 4.0, ((1, 2.0),)), NeighborCounts(4, 0, 4.0, ((1, 1.6), (2, 2.0))),
              NeighborCounts(5, 0, 4.0, ((2, 3.2),)), NeighborCounts(6, 0, 4.0, ((2, 4.0),)),
              Trending(0, ((6, 10.0), (1, 9.0), (7, 8.0), (8, 7.0)))]
RANK_LISTS = {1: [(2, 0.9), (3, 0.5), (4, 0.4)], 2: [(6, 1.0), (5, 0.8), (4, 0.5)]}
RANK_TRENDING = [(6, 10.0), (1, 9.0), (7, 8.0), (8, 7.0)]
T0 = 1_700_000_000_000
RANK_EVENTS = [ev(9, 1, T0, "PURCHASE"), ev(9, 2, T0)]    # same time: no decay
RANK_CFG = HAND.replace(top_n=5, interest_weight=0.2, recent_items=5, pair_span_ms=HOUR)
# After the PURCHASE of 1 (seed 1, weight 5; interest a: 5):
#   co: 2: 4.5, 3: 2.5, 4: 2.0; interest cosine: 2 (b) 0, 3 (a) 1, 4 (a, b) 5 / (5 sqrt 2) = 0.70711
#   final 0.8 co + 0.2 cos: 2: 3.6, 3: 2.2, 4: 1.6 + 0.14142 = 1.74142; then trending without
#   6 (deleted) and 1 (consumed): 7, 8
FIRST = [(2, 3.6, "because you liked Item 1"), (3, 2.2, "because you liked Item 1"),
         (4, 1.7414214, "because you liked Item 1"), (7, 0.0, "trending now"), (8, 0.0, "trending now")]
# After the VIEW of 2 (seeds 1 (5) and 2 (1); interest a: 5, b: 1, norm sqrt 26):
#   co: 3: 5 x 0.5 = 2.5; 4: 5 x 0.4 + 1 x 0.5 = 2.5 (seed 1 gave most); 5: 0.8; 2 consumed, 6 deleted
#   cosine: 3: 5 / sqrt 26 = 0.98058; 4: 6 / sqrt 52 = 0.83205; 5: 1 / sqrt 26 = 0.19612
#   final: 3: 2 + 0.19612 = 2.19612; 4: 2 + 0.16641 = 2.16641; 5: 0.64 + 0.03922 = 0.67922
SECOND = [(3, 2.1961161, "because you liked Item 1"), (4, 2.1664101, "because you liked Item 1"),
          (5, 0.6792232, "because you liked Item 2"), (7, 0.0, "trending now"), (8, 0.0, "trending now")]


def test_hand_case_ranking_oracle():
    for events, want in ((RANK_EVENTS[:1], FIRST), (RANK_EVENTS, SECOND)):
        got = V.expected_top(events, RANK_LISTS, RANK_CATALOG, RANK_TRENDING, RANK_CFG)
        assert [(i, r) for i, _, r in got] == [(i, r) for i, _, r in want]
        assert [s for _, s, _ in got] == pytest.approx([s for _, s, _ in want])


def test_hand_case_ranking_job():
    recs = of_kind(drive(RANK_EVENTS, RANK_CATALOG, RANK_CFG, RANK_INDEX), "recommendations")
    for rec, want in zip(recs, (FIRST, SECOND)):
        assert [(i["item_id"], i["reason"]) for i in rec["items"]] == [(i, r) for i, _, r in want]
        assert [i["score"] for i in rec["items"]] == pytest.approx([s for _, s, _ in want])


def test_hand_case_only_the_pool_gets_the_interest_term():
    # top_n 1, alpha 1: the score is the interest cosine alone (interest: tag x only), read
    # for the 4 x 1 best by co-occurrence only: 11, 12, 13 (tag y: cosine 0) and 14 (tags x,
    # y: 1 / sqrt 2 = 0.70711). 15 (co 0.1, tag x: cosine 1) would win without the pool, and
    # 11 (lowest id among zeros) with a pool of 3.
    catalog = [item(1, "x"), item(11, "y"), item(12, "y"), item(13, "y"), item(14, "xy"), item(15, "x")]
    cfg = RANK_CFG.replace(top_n=1, interest_weight=1.0)
    lists = {1: [(11, 0.5), (12, 0.4), (13, 0.3), (14, 0.2), (15, 0.1)]}
    want = [(14, pytest.approx(0.7071068), "because you liked Item 1")]
    assert V.expected_top([ev(9, 1, T0)], lists, catalog, [], cfg) == want
    index = [NeighborCounts(1, 0, 4.0, ((11, 2.0), (12, 1.6), (13, 1.2), (14, 0.8), (15, 0.4)))]
    index += [NeighborCounts(j, 0, 4.0, ((1, 1.0),)) for j in (11, 12, 13, 14, 15)]
    rec = of_kind(drive([ev(9, 1, T0)], catalog, cfg, index), "recommendations")[0]
    assert [(i["item_id"], i["score"], i["reason"]) for i in rec["items"]] == want


def test_hand_case_window_out_of_order():
    # W = 2, T = 10 min. Item 2 comes 9 min *before* item 1 in event time: still a partner
    # (|t - t_j| <= T). Item 3 at 12 min pairs with 1 (2 min away) but not 2 (12 min); the
    # window is ordered by event time, so the W = 2 newest after it are 1 and 3, and 4 at
    # 12 min pairs with both; item 2 was pushed out by them.
    events = [ev(1, 1, 10 * MINUTE), ev(1, 2, 1 * MINUTE), ev(1, 3, 12 * MINUTE), ev(1, 4, 12 * MINUTE)]
    cfg = HAND.replace(max_out_of_orderness_ms=20 * MINUTE)
    pairs = V.batch_pairs(events, cfg)
    assert sorted(pairs[2]) == [(1, 1 * MINUTE, A)]
    assert sorted(pairs[3]) == [(1, 12 * MINUTE, A), (4, 12 * MINUTE, B)]
    assert sorted(pairs[4]) == [(1, 12 * MINUTE, B), (3, 12 * MINUTE, B)]
    job = defaultdict(dict)
    for r in of_kind(drive(events, listing(events), cfg), "item_neighbors"):
        if r["event_time"] == 20 * MINUTE:    # the end of bucket 10-20 min
            job[r["item_id"]] = {n["item_id"]: n["co_count"] for n in r["neighbors"]}
    assert job[3] == pytest.approx({1: A, 4: B}) and job[4] == pytest.approx({1: B, 3: B})


def test_hand_case_debounce():
    # debounce 10 min: bursts start at 0 (events at 0, 5 min, 9 min) and at 10 min (10, 30 s later)
    events = [ev(1, 1, 0), ev(1, 2, 5 * MINUTE), ev(1, 3, 9 * MINUTE), ev(1, 4, 10 * MINUTE),
              ev(1, 5, 10 * MINUTE + 30 * S)]
    want = {1: [9 * MINUTE * 1024, (10 * MINUTE + 30 * S) * 1024]}
    assert V.expected_lists(events, 10 * MINUTE) == want
    got = [r["version"] for r in of_kind(drive(events, [], HAND.replace(debounce_ms=10 * MINUTE)), "recommendations")]
    assert got == want[1]


# ---------------------------------------------------------------- oracle vs the job, synthetic streams


def synthetic(seed, jitter_ms=0):
    synth = Synth(SynthConfig(events=1_200, users=40, items=60, clusters=3, seed=seed,
                              session_gap_ms=240_000.0, click_gap_ms=20_000.0))
    events = list(synth.events())
    if jitter_ms:   # per-user disorder within the out-of-orderness bound (no late events)
        rng = random.Random(seed)
        events = [{**e, "event_time": e["event_time"] + rng.randint(-jitter_ms, jitter_ms)} for e in events]
    return events, synth.catalog()


def check_lists_of_users(stream, events, catalog, cfg, last_only=False):
    """Every list (or each user's last) equals ``expected_top`` given the neighbor lists and
    trending the ranker held then (those emitted before it). Returns how many were compared."""
    versions = V.expected_versions(events)
    mine = defaultdict(list)
    for e in events:
        mine[e["user_id"]].append(e)
    gap = max(abs(b["event_time"] - a["event_time"]) for a, b in zip(events, events[1:]))
    last = {u: v[-1] for u, v in versions.items()}
    lists, trending, compared = {}, (), 0
    for kind, rec in stream:
        if kind == "item_neighbors":
            lists[rec["item_id"]] = [(n["item_id"], n["score"]) for n in rec["neighbors"]]
        elif kind == "trending":
            trending = rec.top
        elif kind == "recommendations" and (not last_only or rec["version"] == last[rec["user_id"]]):
            user = rec["user_id"]
            upto = mine[user][: versions[user].index(rec["version"]) + 1]
            if V.ttl_ambiguous(upto, cfg, gap):
                continue
            every = {}
            want = V.expected_top(upto, lists, catalog, trending, cfg, every)
            assert V.top_differences(rec["items"], want, every) == [], (user, rec["version"])
            compared += 1
    return compared


PRUNING_OFF = JobConfig(top_n=5, recent_items=5, seeds=3, pair_span_ms=30 * MINUTE, neighbors_per_item=1000,
                        fragment_size=1000, bucket_ms=10 * MINUTE, cooccurrence_window_ms=60 * MINUTE,
                        user_ttl_ms=120 * MINUTE, trending_window_ms=60 * MINUTE, trending_size=10,
                        max_out_of_orderness_ms=60 * MINUTE)


@pytest.mark.parametrize("seed,debounce_ms", [(5, 0), (7, 0), (6, 10 * MINUTE)])
def test_oracle_equals_the_job_with_pruning_off(seed, debounce_ms):
    cfg = PRUNING_OFF.replace(debounce_ms=debounce_ms)
    events, catalog = synthetic(seed, jitter_ms=3 * MINUTE)
    by_user = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e["event_time"])
    assert sum(b < a for ts in by_user.values() for a, b in zip(ts, ts[1:])) > 50, "no per-user disorder"
    stream = drive(events, catalog, cfg)

    got = defaultdict(list)
    for r in of_kind(stream, "recommendations"):
        got[r["user_id"]].append(r["version"])
    assert dict(got) == V.expected_lists(events, debounce_ms)

    want = V.expected_windows(events, cfg)
    published = of_kind(stream, "item_neighbors")
    keys = [(r["item_id"], r["event_time"]) for r in published]
    assert len(keys) == len(set(keys)) and set(keys) == set(want) and len(want) > 500
    known = {}   # N(j) of the last list of j emitted: what the ranker had when it scored
    for r in published:
        n, counts = want[(r["item_id"], r["event_time"])]
        assert r["item_count"] == n, r
        got_counts = {x["item_id"]: x["co_count"] for x in r["neighbors"]}
        assert got_counts == pytest.approx(counts), r
        every = {}
        expected = V.expected_neighbor_list(counts, n, known, cfg, every)
        rows = [(x["item_id"], x["score"], x["co_count"]) for x in r["neighbors"]]
        assert V.list_differences(rows, expected, every) == [], r
        assert V.unexplained_scores(r, {j: [m] for j, m in known.items()}, cfg.similarity_shrinkage) == []
        known[r["item_id"]] = r["item_count"]

    trending = {t.t: list(t.top) for t in of_kind(stream, "trending")}
    assert trending == V.expected_trending(events, cfg) and len(trending) > 30

    assert check_lists_of_users(stream, events, catalog, cfg) > 100


def test_oracle_bounds_the_job_on_production_settings_with_pruning_on():
    cfg = JobConfig(neighbors_per_item=16, fragment_size=16)   # the defaults, but M = K = 16
    events, catalog = synthetic(11)
    events.sort(key=lambda e: e["event_time"])   # 5 s out-of-orderness: no late events
    lag = max(b["event_time"] - a["event_time"] for a, b in zip(events, events[1:])) + cfg.bucket_ms
    stream = drive(events, catalog, cfg)

    got = defaultdict(list)
    for r in of_kind(stream, "recommendations"):
        got[r["user_id"]].append(r["version"])
    assert dict(got) == V.expected_versions(events)

    want = V.expected_windows(events, cfg)
    pairs = V.batch_pairs(events, cfg)
    published = of_kind(stream, "item_neighbors")
    keys = [(r["item_id"], r["event_time"]) for r in published]
    assert len(keys) == len(set(keys)) and set(keys) <= set(want) and len(keys) > 200
    pruned = exact = 0
    known = {}
    for r in published:
        n, counts = want[(r["item_id"], r["event_time"])]
        assert r["item_count"] == n, r              # pruning never touches N(i)
        got_counts = {x["item_id"]: x["co_count"] for x in r["neighbors"]}
        assert len(got_counts) <= cfg.neighbors_per_item
        assert all(j in counts and c <= counts[j] + 1e-9 for j, c in got_counts.items()), r
        if V.surely_unpruned(pairs[r["item_id"]], r["event_time"], cfg, lag):
            assert got_counts == pytest.approx(counts), r
            exact += 1
        else:
            pruned += got_counts != pytest.approx({j: counts[j] for j in got_counts}) or len(counts) > len(got_counts)
        every = {}
        expected = V.expected_neighbor_list(got_counts, n, known, cfg, every)
        rows = [(x["item_id"], x["score"], x["co_count"]) for x in r["neighbors"]]
        assert V.list_differences(rows, expected, every) == [], r
        known[r["item_id"]] = r["item_count"]
    assert pruned > 100 and exact > 50, (pruned, exact)

    trending = {t.t: list(t.top) for t in of_kind(stream, "trending")}
    assert trending == V.expected_trending(events, cfg)

    assert check_lists_of_users(stream, events, catalog, cfg, last_only=True) == len(got)
    assert check_lists_of_users(stream, events, catalog, cfg) > 1000


def test_until_keeps_what_a_live_job_has_published_by_its_last_watermark():
    want = V.expected_windows(HAND_EVENTS, HAND, until=1200 * S)
    assert set(want) == {k for k in HAND_WINDOWS if k[1] <= 1200 * S}
    assert V.expected_trending(HAND_EVENTS, HAND, until=600 * S) == {600 * S: [(2, 2.0), (1, 1.0)]}


# ---------------------------------------------------------------- the oracle shares no code


def test_the_oracle_imports_nothing_from_the_job():
    tree = ast.parse((ROOT / "lab" / "oracle.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "__import__", "import_module"):
            pytest.fail("dynamic import in lab/oracle.py")
    assert imported, "no import found: the parse is wrong"
    tops = {name.split(".")[0] for name in imported}
    assert not tops & {"udfs", "flink_jobs", "reco_tools", "bench", "lab"}, imported
    assert tops <= set(sys.stdlib_module_names) | {"__future__"}, tops - set(sys.stdlib_module_names)
    # and at run time: importing it loads no module of the job
    probe = ("import sys, lab.oracle; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('udfs', 'flink_jobs')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
