"""Each udfs function against a slow, obviously-right reference on random inputs."""

import math
import random

import pytest

from udfs import cooccurrence as co
import numpy as np

from udfs.ranking import Neighbors, merge, rank
from udfs.recent import add_recent
from udfs.ranker import ItemIndex
from udfs.records import ItemInfo
from udfs.signals import InterestVector, add_interest, decay, event_weight

HALF_LIFE = 3_600_000
TAGS = ["a", "b", "c", "d", "e"]


def test_event_weights():
    assert event_weight("PURCHASE") > event_weight("ADD_TO_CART") > event_weight("CLICK") > event_weight("VIEW") > 0
    assert event_weight("RATING", 5.0) == 5.0 and event_weight("RATING", 2.5) == 0.0
    assert event_weight("RATING", 1.0) == 0.0 and event_weight("RATING", None) == 0.0
    with pytest.raises(KeyError):
        event_weight("LIKE")


def test_decay_halves_per_half_life():
    assert decay(0, 10) == 1.0 and decay(-5, 10) == 1.0
    assert decay(10, 10) == pytest.approx(0.5) and decay(30, 10) == pytest.approx(0.125)


@pytest.mark.parametrize("seed", range(20))
def test_interest_vector_matches_brute_force_in_any_order(seed):
    rng = random.Random(seed)
    events = [(rng.sample(TAGS, rng.randint(1, 3)), rng.uniform(0.5, 5), rng.randrange(0, 5 * HALF_LIFE))
              for _ in range(rng.randint(1, 30))]
    shuffled = events[:]
    rng.shuffle(shuffled)
    vec = InterestVector()
    for tags, w, t in shuffled:
        vec = add_interest(vec, tags, w, t, HALF_LIFE, min_weight=0.0)
    now = max(t for _, _, t in events)
    expected = {}
    for tags, w, t in events:
        for tag in tags:
            expected[tag] = expected.get(tag, 0.0) + w * 0.5 ** ((now - t) / HALF_LIFE) / math.sqrt(len(tags))
    assert vec.as_of == now
    assert vec.weights.keys() == expected.keys()
    for tag in expected:
        assert vec.weights[tag] == pytest.approx(expected[tag], rel=1e-9)
    # cosine against the explicit vectors
    item = rng.sample(TAGS, 2)
    dot = sum(expected.get(t, 0) for t in item) / math.sqrt(2)
    norm = math.sqrt(sum(v * v for v in expected.values()))
    assert interest_similarity(vec, item) == pytest.approx(dot / norm)


def interest_similarity(vec: InterestVector, tags) -> float:
    """The job's interest score of one catalog item with ``tags``."""
    index = ItemIndex(10)
    index.put(ItemInfo(1, "one", tuple(tags), False))
    return float(index.interest(vec)(index.rows(np.array([1])))[0])


@pytest.mark.parametrize("seed", range(20))
def test_interest_of_many_items_matches_brute_force(seed):
    """Every item scored at once (the ranker's way), against the cosine of explicit vectors;
    items the index does not list (unknown, deleted) score 0."""
    rng = random.Random(seed)
    tags = TAGS + ["f", "g", "h", "i", "j", "k"]
    catalog = {i: [rng.choice(tags) for _ in range(rng.randint(0, 9))] for i in rng.sample(range(1, 200), 40)}
    deleted = set(rng.sample(sorted(catalog), 5))
    index = ItemIndex(10)
    for i, item_tags in catalog.items():
        index.put(ItemInfo(i, str(i), tuple(item_tags), i in deleted))
    weights = {t: rng.uniform(0.01, 3) for t in rng.sample(tags + ["not in any item"], rng.randint(0, 8))}
    ids = np.array(sorted(set(catalog) | set(rng.sample(range(1, 300), 20))), dtype=np.int64)
    got = index.interest(InterestVector(weights, 0))(index.rows(ids))
    norm = math.sqrt(sum(w * w for w in weights.values()))
    for i, score in zip(ids.tolist(), got.tolist()):
        unit = set(catalog.get(i, ())) if i not in deleted else set()
        want = sum(weights.get(t, 0.0) for t in unit) / (norm * math.sqrt(len(unit))) if unit and norm else 0.0
        assert score == pytest.approx(want), i


@pytest.mark.parametrize("seed", range(5))
def test_catalog_changes_between_queries_match_a_fresh_reading(seed):
    """Records (new items, new tags, deletes, returns) and queries in turn, as a ranker
    sees them when it starts on a backlog, across the index's rebuilds and compactions:
    each answer equals one from the catalog as it stands."""
    rng = random.Random(seed)
    tags = TAGS + ["f", "g", "h", "i", "j"]
    index, catalog = ItemIndex(10), {}
    weights = {t: rng.uniform(0.1, 2) for t in tags}
    norm = math.sqrt(sum(w * w for w in weights.values()))
    for step in range(3000):
        item = rng.randrange(1, 400)
        record = ItemInfo(item, str(item), tuple(rng.choice(tags) for _ in range(rng.randint(0, 6))),
                          rng.random() < 0.2)
        index.put(record)
        catalog[item] = record
        if step % 7 == 0:
            ids = np.array(rng.sample(range(0, 450), 60), dtype=np.int64)
            listed = [i in catalog and not catalog[i].deleted for i in ids.tolist()]
            rows = index.rows(ids)
            assert (rows >= 0).tolist() == listed
            got = index.interest(InterestVector(weights, 0))(rows).tolist()
            for i, ok, score in zip(ids.tolist(), listed, got):
                unit = set(catalog[i].tags) if ok else set()
                assert score == pytest.approx(sum(weights[t] for t in unit) / (norm * math.sqrt(len(unit)))
                                              if unit else 0.0), (step, i)
    assert index.rebuilds > 10 and index.compactions >= 1   # both paths were taken


def test_interest_similarity_is_zero_without_overlap_or_data():
    vec = add_interest(InterestVector(), ["a"], 1.0, 10, HALF_LIFE)
    assert interest_similarity(vec, ["b"]) == 0.0
    assert interest_similarity(vec, []) == 0.0 and interest_similarity(InterestVector(), ["a"]) == 0.0
    assert interest_similarity(vec, ["a"]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(30))
def test_recent_window_matches_brute_force(seed):
    """Window and partners from the whole history alone, never from the window under test
    (docs/algorithm.md: the last W distinct items, whatever their age; an event pairs with the items
    of the window as it stood before it within T, other than its own item). A window of
    W - 1 items fails, and so does one that drops items older than T."""
    rng = random.Random(seed)
    w_max, span = rng.randint(1, 6), rng.randint(5, 50)
    recent, t, history = [], 0, []

    def newest(events):
        """The w_max most recently consumed distinct items of ``events``, oldest first, with
        their latest time (events in time order; equal times: the later one is newer)."""
        latest = {}
        for n, (i, ti) in enumerate(events):
            latest[i] = (ti, n)
        return [(i, ti) for i, (ti, _) in sorted(latest.items(), key=lambda kv: kv[1])][-w_max:]

    for _ in range(rng.randint(1, 40)):
        t += rng.randint(0, 20)   # in event-time order
        item = rng.randint(1, 10)
        expected_partners = sorted(i for i, ti in newest(history) if i != item and t - ti <= span)
        recent, partners = add_recent(recent, item, t, 1.0, w_max, span)
        history.append((item, t))
        expected_window = [i for i, _ in newest(history)]
        assert sorted(partners) == expected_partners
        assert [i for i, _, _ in recent] == expected_window


@pytest.mark.parametrize("seed", range(30))
def test_window_counts_match_a_batch_recount(seed):
    """Adds and expiries interleaved as a stream would do them; running totals stay exact."""
    rng = random.Random(seed)
    bucket, window = rng.choice([10, 25, 100]), rng.choice([100, 300])
    win, pairs, owns, now = co.ItemWindow(), [], [], 0
    alive = lambda t, at: (t - t % bucket) + bucket > at - window  # noqa: E731
    for step in range(300):
        t = now + rng.randrange(-20, 40)  # mostly forward, a little disorder
        now = max(now, t)
        if rng.random() < 0.7:
            j, w = rng.randint(1, 8), rng.uniform(0.1, 1)
            co.add_pair(win, j, t, w, bucket)
            pairs.append((j, t, w))
        else:
            w = rng.uniform(0.1, 1)
            co.add_own(win, t, w, bucket)
            owns.append((t, w))
        if rng.random() < 0.2:
            expired_at = now - rng.randrange(0, 30)
            co.expire(win, expired_at, window, bucket)
            pairs = [p for p in pairs if alive(p[1], expired_at)]
            owns = [o for o in owns if alive(o[0], expired_at)]
        if step % 50 == 49:
            for before in (None, now - now % bucket):
                expected = {}
                for j, t, w in pairs:
                    if before is None or t - t % bucket < before:
                        expected[j] = expected.get(j, 0.0) + w
                got = co.pair_counts(win, before=before)
                assert got.keys() == expected.keys()
                for j in expected:
                    assert got[j] == pytest.approx(expected[j])
            assert co.own_count(win) == pytest.approx(sum(w for _, w in owns))


def test_similarity_and_heavy_user_weight():
    assert co.similarity(2, 4, 9) == pytest.approx(2 / 6)
    assert co.similarity(2, 4, 9, shrinkage=2.0) == pytest.approx(2 / 6 * 2 / 4)
    assert co.similarity(1, 0, 3) == 0.0
    assert co.pair_weight(0) == 1.0 and co.pair_weight(2) == 0.5
    assert co.pair_weight(20) < co.pair_weight(5)


@pytest.mark.parametrize("seed", range(20))
def test_top_neighbors_matches_sorting_everything(seed):
    rng = random.Random(seed)
    counts = {j: float(rng.randint(0, 9)) for j in rng.sample(range(1, 100), 40)}
    n_other = {j: float(rng.randint(1, 30)) for j in counts if rng.random() < 0.7}
    n_i, k = float(rng.randint(5, 40)), rng.randint(1, 15)
    brute = sorted(((j, c / math.sqrt(n_i * max(n_other.get(j, 0), c)), c) for j, c in counts.items() if c > 0),
                   key=lambda r: (-r[1], r[0]))[:k]
    ids, scores, cs = co.top_neighbors(counts, n_i, n_other, k)
    assert list(zip(ids.tolist(), scores.tolist(), cs.tolist())) == brute


def test_prune_keeps_only_the_given_neighbors():
    win = co.ItemWindow()
    for j in range(1, 6):
        co.add_pair(win, j, j * 10, 1.0, 10)
    co.prune(win, {2, 4}, before=45)        # buckets 10..40; bucket 50 (item 5) stays
    assert co.pair_counts(win) == {2: 1.0, 4: 1.0, 5: 1.0}
    assert co.pair_counts(win, before=35) == {2: 1.0}
    assert sorted(win.pairs) == [20, 40, 50]


@pytest.mark.parametrize("seed", range(20))
def test_merge_and_rank_match_brute_force(seed):
    rng = random.Random(seed)
    fragments = [(seed_item, rng.uniform(0.1, 2),
                  [(j, rng.choice([0.25, 0.5, rng.uniform(0, 1)]), 1.0) for j in rng.sample(range(1, 60), rng.randint(0, 10))])
                 for seed_item in rng.sample(range(100, 110), rng.randint(1, 5))]
    merged = merge((s, w, Neighbors.of(rows)) for s, w, rows in fragments)
    best_seeds = merged.best_seed(np.arange(len(merged.ids)))
    expected = {}
    for s, w, nbrs in fragments:
        for j, sim, _ in nbrs:
            expected[j] = expected.get(j, 0.0) + w * sim
    assert sorted(merged.ids.tolist()) == sorted(expected)
    for j, score, best_seed in zip(merged.ids.tolist(), merged.scores.tolist(), best_seeds.tolist()):
        assert score == pytest.approx(expected[j])
        parts = {s: w * sim for s, w, nbrs in fragments for jj, sim, _ in nbrs if jj == j}
        top = max(parts.values())
        assert best_seed == min(s for s, p in parts.items() if p == top)  # ties: the lowest seed id

    interest = {j: rng.random() for j in range(1, 60)}
    exclude = set(rng.sample(range(1, 60), 10))
    trending = [(j, 1.0) for j in rng.sample(range(1, 80), 30)]
    n, alpha = rng.randint(1, 20), rng.choice([0.0, 0.3])
    interest_of = lambda ids: np.array([interest[j] for j in ids.tolist()])  # noqa: E731
    out = rank(merged, interest_of, np.array(sorted(exclude)), n, alpha, trending, pool=None)
    brute = sorted(((1 - alpha) * expected[j] + alpha * interest[j], j) for j in expected if j not in exclude)
    brute.sort(key=lambda r: (-r[0], r[1]))
    head = [j for _, j in brute[:n]]
    assert [j for j, _, _ in out[:len(head)]] == head
    assert len(out) == min(n, len(head) + len({j for j, _ in trending} - exclude - set(head)))
    assert not {j for j, _, _ in out} & exclude
    assert len({j for j, _, _ in out}) == len(out)
    tail = out[len(head):]
    assert all(reason == "trending now" for _, _, reason in tail)
    order = [j for j, _ in trending if j not in exclude and j not in head]
    assert [j for j, _, _ in tail] == order[:len(tail)]
    # without interest, reading only the pool of the best candidates changes nothing
    if alpha == 0.0:
        assert rank(merged, interest_of, np.array(sorted(exclude)), n, 0.0, trending, pool=1) == out


def test_cold_start_gets_only_trending():
    empty = merge([])
    out = rank(empty, lambda ids: np.zeros(len(ids)), np.array([3]), 3, 0.2, [(3, 9.0), (5, 8.0), (7, 7.0), (9, 1.0)])
    assert out == [(5, 0.0, "trending now"), (7, 0.0, "trending now"), (9, 0.0, "trending now")]
    assert merge([(1, 1.0, Neighbors.of([]))]).ids.size == 0


def test_pair_counts_before_a_time_uses_only_earlier_buckets():
    win = co.ItemWindow()
    co.add_pair(win, 1, 5, 1.0, 10)
    co.add_pair(win, 1, 15, 2.0, 10)
    co.add_pair(win, 2, 25, 4.0, 10)
    assert co.pair_counts(win, before=20) == {1: 3.0}
    assert co.pair_counts(win, before=10) == {1: 1.0}
    assert co.pair_counts(win) == {1: 3.0, 2: 4.0}


def test_versions_increase_strictly_and_survive_a_reset():
    from udfs.versioning import next_version

    v1 = next_version(None, 1000)
    v2 = next_version(v1, 1000)      # same millisecond
    v3 = next_version(v2, 999)       # late event
    v4 = next_version(None, 5000)    # state expired in between
    assert v1 < v2 < v3 < v4
    assert v4 == next_version(v3, 5000)  # with or without the old state: the same version


@pytest.mark.parametrize("seed", range(30))
def test_debounce_flushes_the_last_event_of_each_burst(seed):
    from udfs.debounce import add_event

    rng = random.Random(seed)
    window = rng.choice([5, 20, 60])
    t, events = 0, []
    for v in range(rng.randint(1, 40)):
        t += rng.choice([0, 1, 3, 10, 30, 100])
        events.append((v, t))
    # reference: bursts start at an event and take every event before start + window
    expected, start = [], None
    for n, (v, t) in enumerate(events):
        if start is None or t >= start + window:
            if n:
                expected.append(events[n - 1][0])
            start = t
    expected.append(events[-1][0])

    flushed, burst, timers = [], None, []
    for v, t in events:
        burst, done, new = add_event(burst, v, t, item=v, weight=1.0, seeds=[], window_ms=window)
        if done is not None:
            due, version, _, _, done_events = done
            flushed.append(version)
            assert [e[0] for e in done_events] == [x for x, tt in events if due - window <= tt < due]
        if new:
            timers.append(burst[0])
    flushed.append(burst[1])  # the last burst's timer
    assert flushed == expected
    assert timers == sorted(set(timers))  # one timer per burst
