"""bench/quality.py: the protocol's arithmetic and the three baselines, on hand-made events.

Every expected value below is worked out by hand from the definitions (the comments show
how), never copied from the evaluator's output.
"""

import json
import math
import random
from collections import defaultdict

import numpy as np
import pytest

from bench import quality as q


def ev(user, item, stars, t):
    return {"user_id": user, "item_id": item, "event_type": "RATING", "value": stars,
            "event_time": t, "event_id": f"{user}-{item}-{t}"}


def events_from(rows):
    """rows: (user, item, stars); event_time = 1000 * (position + 1)."""
    return [ev(u, i, s, 1000 * (n + 1)) for n, (u, i, s) in enumerate(rows)]


def fixed(lists):
    """lists_for_case from {event index: [item ids] | None}; records the calls."""
    calls = []

    def lists_for_case(i):
        calls.append(i)
        items = lists.get(i)
        return None if items is None else [{"item_id": j, "score": 1.0} for j in items]

    lists_for_case.calls = calls
    return lists_for_case


def ids(lst):
    return None if lst is None else [x["item_id"] for x in lst]


# ---------------------------------------------------------------------------------------
# Protocol arithmetic

def test_hr_and_ndcg_by_hand():
    events = events_from([
        (1, 100, 3.0), (2, 200, 5.0), (3, 300, 4.0),      # warm-up (cut = 6 * 0.5 = 3)
        (1, 10, 5.0),                                     # case: 10 at rank 3 -> 1/log2(4) = 0.5
        (2, 20, 4.0),                                     # case: 20 at rank 1 -> 1
        (3, 30, 4.5),                                     # case: 30 absent -> 0
    ])
    r = q.score_lists(events, fixed({3: [11, 12, 10], 4: [20, 21], 5: [31, 32]}), catalog_size=100)
    assert r["cases"] == 3
    assert r["hits"] == 2
    assert r["hr"] == pytest.approx(2 / 3)
    assert r["ndcg"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_ndcg_gain_values():
    assert q.ndcg_at(1) == 1.0
    assert q.ndcg_at(3) == pytest.approx(0.5)
    assert q.ndcg_at(2) == pytest.approx(1 / math.log2(3))
    assert q.ndcg_at(None) == 0.0


def test_consumed_items_are_dropped_before_taking_the_top_10():
    events = events_from([
        (1, 5, 1.0), (1, 6, 4.0),              # warm-up: user 1 consumed 5 (1 star) and 6
        (2, 7, 3.0), (1, 50, 4.0),             # user 2 consumed 7; case for user 1: item 50
    ])
    # user 1's raw list: 5 and 6 are consumed, so 50 (raw position 12) moves to rank 10.
    raw = [5, 1, 2, 3, 6, 4, 7, 8, 9, 10, 11, 50]
    r = q.score_lists(events, fixed({3: raw}), catalog_size=100)
    assert r["hits"] == 1
    assert r["ndcg"] == pytest.approx(1 / math.log2(11))
    # without the consumed items to drop, 50 stays at raw position 12: a miss
    fresh = events_from([(9, 5, 1.0), (9, 6, 4.0), (2, 7, 3.0), (1, 50, 4.0)])
    assert q.score_lists(fresh, fixed({3: raw}), catalog_size=100)["hits"] == 0
    # the consumed item itself is never scored, even first in the list
    again = events_from([(1, 50, 2.0), (3, 3, 3.0), (2, 2, 2.0), (1, 50, 4.0)])
    assert q.score_lists(again, fixed({3: [50]}), catalog_size=100)["hits"] == 0


def test_only_the_first_10_count():
    events = events_from([(9, 1, 4.0), (9, 2, 4.0), (1, 50, 4.0), (2, 60, 4.0)])
    eleventh = list(range(1, 11)) + [50]          # user 1's target at rank 11: a miss
    tenth = list(range(11, 20)) + [60, 61]        # user 2's target at rank 10: a hit
    r = q.score_lists(events, fixed({2: eleventh, 3: tenth}), catalog_size=100)
    assert r["hits"] == 1
    assert r["ndcg"] == pytest.approx(1 / math.log2(11) / 2)
    assert r["recommended_items"] == 20           # 1..10 and 11..19, 60; never 50 or 61


def test_user_without_list_is_a_miss():
    events = events_from([(1, 1, 4.0), (2, 2, 4.0), (1, 3, 4.0), (2, 4, 5.0)])
    r = q.score_lists(events, fixed({2: [3]}), catalog_size=10)   # user 2's case gets None
    assert r["cases"] == 2
    assert r["cases_without_list"] == 1
    assert r["hr"] == pytest.approx(0.5)
    assert r["ndcg"] == pytest.approx(0.5)


def test_warmup_cut_and_case_selection():
    events = events_from([
        (1, 1, 5.0), (2, 2, 5.0), (3, 3, 5.0), (1, 4, 5.0),   # warm-up at 0.5: indices 0..3
        (2, 5, 3.5),                                         # after the cut but < 4 stars: no case
        (3, 6, 4.0), (1, 7, 5.0),                            # cases
        (2, 8, 0.5),                                         # no case
    ])
    f = fixed({})
    r = q.score_lists(events, f, catalog_size=10)
    assert f.calls == [5, 6]
    assert r["cases"] == 2
    assert q.case_indices(events) == [5, 6]
    assert q.cut_index(8, 0.5) == 4
    g = fixed({})
    assert q.score_lists(events, g, warmup=0.75, catalog_size=10)["cases"] == 1   # cut 6
    assert g.calls == [6]


def test_coverage_counts_distinct_scored_items():
    events = events_from([(1, 1, 4.0), (2, 2, 4.0), (1, 9, 4.0), (2, 8, 4.0)])
    # user 1 consumed 1, so its list [1, 2, 3] is scored as [2, 3]; user 2's as [3, 4]
    r = q.score_lists(events, fixed({2: [1, 2, 3], 3: [3, 4]}), catalog_size=20)
    assert r["recommended_items"] == 3          # {2, 3, 4}
    assert r["coverage"] == pytest.approx(3 / 20)


def test_hits_by_reason_class():
    events = events_from([(9, 99, 4.0)] * 4 + [(1, 1, 4.0), (2, 2, 4.0), (3, 3, 4.0), (4, 4, 4.0)])
    lists = {
        4: [{"item_id": 1, "reason": "because you liked Heat (1995)"}],
        5: [{"item_id": 2, "reason": "trending now"}],
        6: [{"item_id": 3, "reason": "because you liked Up (2009)"}],
        7: [{"item_id": 4, "reason": "new in your genres"}],
    }
    r = q.score_lists(events, lists.get, catalog_size=10)
    assert r["hits"] == 4
    assert r["hits_by_reason"] == {"co-occurrence": pytest.approx(0.5), "trending": pytest.approx(0.25),
                                   "new in your genres": pytest.approx(0.25)}
    assert q.reason_class("because you liked X") == "co-occurrence"
    assert q.reason_class("trending now") == "trending"
    assert q.reason_class("other") == "other"


# ---------------------------------------------------------------------------------------
# The job's records

def test_event_versions_rule():
    events = [ev(1, 1, 4.0, 5), ev(1, 2, 4.0, 5), ev(2, 3, 4.0, 5), ev(1, 4, 4.0, 4), ev(1, 5, 4.0, 6)]
    # user 1: 5*1024, then max(5120, 5121), then max(4096, 5122), then max(6144, 5123)
    assert q.event_versions(events) == [5120, 5121, 5120, 5122, 6144]


def test_lists_from_records_takes_the_latest_strictly_earlier_version():
    events = [ev(1, 1, 4.0, 1), ev(1, 2, 4.0, 1), ev(1, 3, 4.0, 2), ev(2, 4, 4.0, 3)]
    # versions: user 1 -> 1024, 1025, 2048; user 2 -> 3072
    records = [
        {"user_id": 1, "version": 2048, "event_time": 2, "items": [{"item_id": 30, "score": 1, "reason": "x"}]},
        {"user_id": 1, "version": 1024, "event_time": 1, "items": [{"item_id": 10, "score": 1, "reason": "x"}]},
        {"user_id": 1, "version": 1025, "event_time": 1, "items": [{"item_id": 20, "score": 1, "reason": "x"}]},
        {"user_id": 3, "version": 1, "event_time": 0, "items": [{"item_id": 40, "score": 1, "reason": "x"}]},
    ]
    f = q.lists_from_records(events, records)
    assert f(0) is None                   # no record of user 1 below 1024
    assert ids(f(1)) == [10]              # below 1025: 1024
    assert ids(f(2)) == [20]              # below 2048: 1025, not 2048 itself
    assert f(3) is None                   # user 2 has no records; user 3's do not leak


def test_lists_from_records_skips_versions_that_were_not_emitted():
    events = [ev(7, 1, 4.0, 10), ev(7, 2, 4.0, 20), ev(7, 3, 4.0, 30)]
    records = [{"user_id": 7, "version": 10 * 1024, "event_time": 10, "items": [{"item_id": 9}]},
               {"user_id": 7, "version": 30 * 1024, "event_time": 30, "items": [{"item_id": 8}]}]
    f = q.lists_from_records(events, records)   # 20*1024 was debounced away: 10*1024 stays
    assert ids(f(2)) == [9]


def test_lists_from_records_scored_end_to_end():
    events = [ev(1, 1, 4.0, 1), ev(1, 2, 4.0, 2), ev(1, 3, 5.0, 3), ev(1, 4, 4.0, 4)]
    records = [
        # emitted after event 1 (version 2048): hit on 3 at rank 2 after dropping consumed 1
        {"user_id": 1, "version": 2048, "event_time": 2,
         "items": [{"item_id": 1, "reason": "trending now"}, {"item_id": 5, "reason": "trending now"},
                   {"item_id": 3, "reason": "because you liked A"}]},
        # emitted after event 2 (3072): item 4 absent
        {"user_id": 1, "version": 3072, "event_time": 3, "items": [{"item_id": 6, "reason": "trending now"}]},
        # emitted after event 3 (4096) would hold 4 but comes too late for event 3
        {"user_id": 1, "version": 4096, "event_time": 4, "items": [{"item_id": 4, "reason": "trending now"}]},
    ]
    r = q.score_lists(events, q.lists_from_records(events, records), catalog_size=10)
    assert r["cases"] == 2 and r["hits"] == 1
    assert r["ndcg"] == pytest.approx((1 / math.log2(3)) / 2)
    assert r["hits_by_reason"] == {"co-occurrence": 1.0}


def test_lists_from_records_refuses_a_version_emitted_twice_with_other_items():
    events = [ev(1, 1, 4.0, 1)]
    same = [{"user_id": 1, "version": 5, "items": [{"item_id": 2}]}] * 2
    q.lists_from_records(events, same)
    with pytest.raises(ValueError):
        q.lists_from_records(events, same + [{"user_id": 1, "version": 5, "items": [{"item_id": 3}]}])


# ---------------------------------------------------------------------------------------
# Baselines

A, B, C, D, E, F, G, Q, X, Y, Z = 1, 2, 3, 4, 5, 6, 7, 8, 24, 25, 26


def test_popularity_counts_positives_once_at_the_cut():
    events = events_from([
        # warm-up (9): A three positives, B two positives and three low ratings, C one
        (1, A, 5.0), (2, A, 4.0), (3, A, 4.5), (1, B, 4.0), (2, B, 5.0),
        (4, B, 1.0), (5, B, 2.0), (6, B, 2.0), (4, C, 4.0),
        # after the cut (9): C gets four more positives, which must not move it up
        (7, C, 5.0), (8, C, 5.0), (9, C, 5.0), (10, C, 4.0),
        (1, D, 4.0), (11, E, 4.0), (4, F, 4.0), (12, C, 1.0), (13, G, 3.0),
    ])
    f = q.popularity_lists(events, None)
    assert ids(f(9)) == [A, B, C]
    assert [x["score"] for x in f(9)] == [3, 2, 1]
    assert ids(f(13)) == [C]            # user 1 consumed A and B
    assert ids(f(14)) == [A, B, C]      # still fixed at the cut
    assert ids(f(15)) == [A]            # user 4 consumed B (1 star) and C
    assert f(16) is None                # not a test case


def test_itemknn_similarities_fixed_at_the_cut():
    events = events_from([
        # warm-up (8): X&Y liked by users 1, 2; X&Z by user 3; user 7's low ratings don't count
        (1, X, 5.0), (1, Y, 4.0), (2, X, 4.0), (2, Y, 5.0), (3, X, 4.0), (3, Z, 4.0),
        (7, X, 2.0), (7, Z, 2.0),
        # after the cut (8): user 6 likes X and Q (not in the batch model)
        (6, X, 4.0), (6, Q, 4.0), (5, X, 5.0), (5, Q, 4.0),
        (8, 90, 1.0), (8, 91, 1.0), (8, 92, 1.0), (8, 93, 1.0),
    ])
    # N(X)=3, N(Y)=2, N(Z)=1, C(X,Y)=2, C(X,Z)=1: sim(X,Y)=2/sqrt(6), sim(X,Z)=1/sqrt(3)
    f = q.itemknn_lists(events, None)
    assert ids(f(9)) == [Y, Z]          # user 6: profile [X]; Q itself unknown to the model
    assert [x["score"] for x in f(9)] == pytest.approx([2 / math.sqrt(6), 1 / math.sqrt(3)])
    assert f(10) is None                # user 5 has no positive rating yet
    assert ids(f(11)) == [Y, Z]         # profile [X]; no Q although user 6 liked X and Q
    assert [x["score"] for x in f(11)] == pytest.approx([2 / math.sqrt(6), 1 / math.sqrt(3)])


def test_itemknn_profile_grows_after_the_cut_and_sums_similarities():
    W = 23
    events = events_from([
        # warm-up (6): user 1 likes X, Y, W; user 2 likes Y, Z; user 3 likes X
        (1, X, 5.0), (1, Y, 5.0), (1, W, 4.0), (2, Y, 5.0), (2, Z, 4.0), (3, X, 4.0),
        (4, X, 4.0),        # index 6: user 4 has no positive rating yet
        (4, Y, 5.0),        # index 7: profile [X]
        (4, Q, 4.0),        # index 8: profile [X, Y] (both rated after the cut)
        (9, 99, 1.0), (9, 98, 1.0), (9, 97, 1.0),
    ])
    # N(X)=2, N(Y)=2, N(W)=1, N(Z)=1; C(X,Y)=C(X,W)=C(Y,W)=C(Y,Z)=1
    # sim(X,Y)=1/2, sim(X,W)=sim(Y,W)=sim(Y,Z)=1/sqrt(2), sim(X,Z)=0
    f = q.itemknn_lists(events, None)
    assert f(6) is None
    assert ids(f(7)) == [W, Y]
    assert [x["score"] for x in f(7)] == pytest.approx([1 / math.sqrt(2), 0.5])
    # X, Y consumed; W = sim(X,W) + sim(Y,W), Z = sim(Y,Z) (reachable only through Y)
    assert ids(f(8)) == [W, Z]
    assert [x["score"] for x in f(8)] == pytest.approx([2 / math.sqrt(2), 1 / math.sqrt(2)])


def test_itemcf_streams_counts_in_event_order():
    events = events_from([
        (1, A, 4.0), (1, B, 4.0), (3, A, 2.0), (3, C, 2.0),    # warm-up; user 3's ratings are low
        (2, A, 5.0),        # index 4: user 2 has no positive rating yet -> None
        (4, C, 4.0),        # index 5: None
        (4, A, 4.0),        # index 6: profile [C], C has no partner yet -> empty list
        (2, E, 4.0),        # index 7: profile [A]
    ])
    f = q.itemcf_lists(events, None)
    assert f(4) is None and f(5) is None
    assert f(6) == []
    # before index 7: N(A)=3 (users 1, 2, 4), N(B)=1, N(C)=1, C(A,B)=1 (user 1),
    # C(A,C)=1 (user 4 at index 6, after the cut): both 1/sqrt(3), B first (smaller id).
    # Had the low ratings counted: N(A)=4, N(C)=2, C(A,C)=2 -> C first with 1/sqrt(2).
    assert ids(f(7)) == [B, C]
    assert [x["score"] for x in f(7)] == pytest.approx([1 / math.sqrt(3)] * 2)


def test_itemcf_pairs_only_with_the_previous_20_items():
    rows = [(1, item, 5.0) for item in range(101, 123)]   # user 1 likes 101..122 in order
    rows += [(2, 101, 4.0), (2, 500, 4.0)]                # user 2: profile [101], then a case
    rows = [(9, 900 + n, 1.0) for n in range(len(rows))] + rows   # low-rated warm-up padding
    events = events_from(rows)
    case = len(events) - 1
    f = q.itemcf_lists(events, None, k=30)
    got = ids(f(case))
    # 101 paired with 102..121 (each pairs with up to 20 earlier items); 122's previous 20
    # are 102..121, so no pair (101, 122).
    assert sorted(got) == list(range(102, 122))
    assert 122 not in got


def _brute_scores(sim_counts, n_counts, profile):
    scores = defaultdict(float)
    for i in profile:
        for j, cij in sim_counts[i].items():
            scores[j] += cij / math.sqrt(n_counts[i] * n_counts[j])
    return scores


def _check_topk(lst, scores, consumed, k):
    ranked = {j: s for j, s in scores.items() if j not in consumed and s > 0}
    got = ids(lst)
    assert len(got) == min(k, len(ranked))
    assert not set(got) & consumed
    for x in lst:
        assert x["score"] == pytest.approx(ranked[x["item_id"]])
    if got:
        floor = min(ranked[j] for j in got)
        assert all(s <= floor + 1e-9 for j, s in ranked.items() if j not in got)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_itemcf_and_itemknn_agree_with_a_dictionary_reference(seed):
    rng = random.Random(seed)
    events = [ev(rng.randrange(12), rng.randrange(40), rng.choice([1.0, 2.5, 4.0, 4.5, 5.0]), t)
              for t in range(1, 601)]
    cut = q.cut_index(len(events))
    cf, knn = q.itemcf_lists(events, None, k=5), q.itemknn_lists(events, None, k=5)
    # batch: users who liked both in the warm-up
    liked = defaultdict(set)
    for e in events[:cut]:
        if e["value"] >= 4:
            liked[e["user_id"]].add(e["item_id"])
    bc, bn = defaultdict(lambda: defaultdict(int)), defaultdict(int)
    for items in liked.values():
        for i in items:
            bn[i] += 1
            for j in items:
                if i != j:
                    bc[i][j] += 1
    sc, sn = defaultdict(lambda: defaultdict(int)), defaultdict(int)
    recent, consumed = defaultdict(list), defaultdict(set)
    checked = 0
    for idx, e in enumerate(events):
        u, i = e["user_id"], e["item_id"]
        pos = e["value"] >= 4
        if idx >= cut and pos:
            if recent[u]:
                _check_topk(cf(idx), _brute_scores(sc, sn, recent[u]), consumed[u], 5)
                _check_topk(knn(idx), _brute_scores(bc, bn, [j for j in recent[u] if j in bn]),
                            consumed[u], 5)
                checked += 1
            else:
                assert cf(idx) is None and knn(idx) is None
        if pos:
            prev = [j for j in recent[u] if j != i][-20:]
            sn[i] += 1
            for j in prev:
                sc[i][j] += 1
                sc[j][i] += 1
            recent[u] = (prev + [i])[-20:]
        consumed[u].add(i)
    assert checked > 50


def test_cli_on_a_prefix_writes_json(tmp_path, capsys):
    out = tmp_path / "q.json"
    assert q.main(["--events", "2000", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["events"] == 2000
    assert set(data["results"]) == {"popularity", "item-knn (batch)", "item-cf (streaming)", "job (inprocess)"}
    cases = {r["cases"] for r in data["results"].values()}
    assert len(cases) == 1 and cases.pop() > 0
    assert "HR@10" in capsys.readouterr().out


def _shrinkage_case():
    rows = [(1, A, 4.0), (1, B, 4.0)]                                   # C(A,B) = 1
    rows += [(u, A, 4.0) for u in (3, 4)] + [(u, C, 4.0) for u in (3, 4)]   # C(A,C) = 2 (users 3, 4 pair C with A)
    rows += [(u, C, 4.0) for u in (5, 6, 7)]                            # N(C) = 5
    rows += [(2, A, 5.0), (2, E, 4.0)]                                  # user 2: profile [A], then a case
    rows = [(9, 900 + n, 1.0) for n in range(len(rows))] + rows        # low-rated warm-up padding
    return events_from(rows)


def test_itemcf_knobs_shrinkage_and_neighbors_per_seed():
    events = _shrinkage_case()
    case = len(events) - 1
    # before the case: N(A) = 4 (users 1, 3, 4, 2), N(B) = 1, N(C) = 5.
    # plain: B 1 / sqrt(4 x 1) = 0.5, C 2 / sqrt(4 x 5) = 0.44721 -> B first
    assert ids(q.itemcf_lists(events, None)(case)) == [B, C]
    # shrinkage 1: B 0.5 x 1/2 = 0.25, C 0.44721 x 2/3 = 0.29814 -> C first
    shrunk = q.itemcf_lists(events, None, shrinkage=1.0)(case)
    assert ids(shrunk) == [C, B]
    assert [x["score"] for x in shrunk] == pytest.approx([2 / math.sqrt(20) * 2 / 3, 0.25])
    # one neighbor per seed: A gives only its most similar item, B
    assert ids(q.itemcf_lists(events, None, neighbors=1)(case)) == [B]


def test_itemcf_knobs_interest_threshold_span_and_stale_counts():
    events = events_from([(9, 900 + n, 1.0) for n in range(6)]
                         + [(1, A, 3.0), (1, B, 4.0), (2, A, 4.0), (2, E, 4.0)])
    case = len(events) - 1
    # >= 4 only: user 1's 3-star A is no positive, no pair (A, B): user 2's list is empty
    assert q.itemcf_lists(events, None)(case) == []
    # above 2.5: A and B pair (1000 ms apart), so A's neighbor B is listed
    assert ids(q.itemcf_lists(events, None, interest_above=2.5)(case)) == [B]
    # pairs only within 500 ms: none
    assert q.itemcf_lists(events, None, interest_above=2.5, pair_span_ms=500)(case) == []
    # counts as of the last multiple of 100 s: the pair at 8 s is not yet seen at 10 s
    assert q.itemcf_lists(events, None, interest_above=2.5, stale_ms=100_000)(case) == []


def test_itemcf_embedding_weight_one_ranks_by_the_seeds_vector():
    events = _shrinkage_case()
    case = len(events) - 1
    # A is the only seed; C points the same way as A, B at 60 degrees: cosines 1 and 0.5
    vectors = {A: np.array([1.0, 0.0]), B: np.array([0.5, math.sqrt(0.75)]), C: np.array([1.0, 0.0]),
               E: np.array([0.0, 1.0])}
    got = q.itemcf_lists(events, None, embeddings=vectors, embedding_weight=1.0)(case)
    assert ids(got) == [C, B]       # E: cosine 0 -> not listed (only positive scores are)
    assert [x["score"] for x in got] == pytest.approx([1.0, 0.5])
