"""The operators' pure steps (udfs.user_activity, item_side, ranker), one key at a time, and
the whole dataflow in one process (lab.inprocess), against references written here from
the definitions in docs/algorithm.md. Operator level of the test pyramid: each key's state is gone
when its life ends.
"""

import math
import random
from collections import defaultdict

import pytest

from flink_jobs.config import MINUTE, JobConfig
from udfs import item_side, ranker, user_activity
from lab.inprocess import Dataflow
from udfs.records import BucketCount, Event, Expired, ItemDelta, ItemInfo, NeighborCounts, Request, Trending
from udfs.user_activity import UserState

CFG = JobConfig(recent_items=4, seeds=2, pair_span_ms=30 * MINUTE, bucket_ms=10 * MINUTE,
                cooccurrence_window_ms=30 * MINUTE, user_ttl_ms=60 * MINUTE, trending_window_ms=20 * MINUTE,
                neighbors_per_item=1000, fragment_size=1000, top_n=5, max_out_of_orderness_ms=0)


def reference_pairs(events, cfg):
    """Every (i, j, t, w) docs/algorithm.md defines: an item pairs with the user's earlier items
    among their last W (distinct, newest kept) within T of it, weighted 1/log2(2 + partners)."""
    history = defaultdict(list)   # user -> [(item, t)] of interest events, in order
    out = []
    for ev in events:
        if ev.weight <= 0:
            continue
        latest = {}   # item -> (time, order) of its latest consumption: ties go by order
        for n, (item, t) in enumerate(history[ev.user]):
            latest[item] = (t, n)
        window = sorted(latest.items(), key=lambda kv: kv[1])[-cfg.recent_items:]
        partners = [i for i, (t, _) in window if i != ev.item and ev.t - t <= cfg.pair_span_ms]
        w = 1 / math.log2(2 + len(partners))
        for j in partners:
            out += [(ev.item, j, ev.t, w), (j, ev.item, ev.t, w)]
        history[ev.user].append((ev.item, ev.t))
    return out


def random_events(seed, n=300, users=6, items=15, start=0):
    rng = random.Random(seed)
    t, out = start, []
    for _ in range(n):
        t += rng.choice([0, 1_000, 30_000, 120_000, 600_000])
        out.append(Event(rng.randint(1, users), rng.randint(1, items), t, rng.choice([0.0, 1.0, 2.0, 5.0])))
    return out


def drive_users(events, cfg, states=None, timers=None, finish=True):
    """UserActivity per key, timers fired as the watermark (= event time) passes them, and
    all of them at the end of input (``finish``). ``states`` and ``timers`` (user -> state,
    {(time, user)}) are where it starts and are updated in place."""
    states = {} if states is None else states
    timers = set() if timers is None else timers
    out = []

    def fire(watermark):
        while timers and min(timers)[0] <= watermark:
            ts, user = min(timers)
            timers.remove((ts, user))
            states[user], o, new = user_activity.on_timer(states.get(user), user, ts, cfg)
            out.extend(o)
            timers.update((x, user) for x in new)

    for ev in events:
        fire(ev.t - 1)
        states[ev.user], o, new = user_activity.on_event(states.get(ev.user), ev, cfg)
        out.extend(o)
        timers.update((x, ev.user) for x in new)
    if finish:
        fire(2**62)
    return states, out


def defined_deltas(deltas):
    """{(item, partner, bucket): weight} and {(item, bucket): own count} of ItemDeltas."""
    pairs, own = defaultdict(float), defaultdict(float)
    for d in deltas:
        if isinstance(d, ItemDelta):
            for j, w in d.pairs.items():
                pairs[(d.item, j, d.bucket)] += w
            own[(d.item, d.bucket)] += d.own
    return pairs, {k: v for k, v in own.items() if v}


def reference_deltas(events, cfg):
    """What docs/algorithm.md defines for the same: the pairs of reference_pairs and one count per
    interest event, each in the bucket of its event."""
    pairs, own = defaultdict(float), defaultdict(float)
    for i, j, t, w in reference_pairs(events, cfg):
        pairs[(i, j, t - t % cfg.bucket_ms)] += w
    for ev in events:
        if ev.weight > 0:
            own[(ev.item, ev.t - ev.t % cfg.bucket_ms)] += 1
    return pairs, dict(own)


@pytest.mark.parametrize("seed", range(10))
def test_item_deltas_sum_to_the_defined_pairs_per_bucket(seed):
    events = random_events(seed)
    states, out = drive_users(events, CFG)
    got, own = defined_deltas(out)
    want, want_own = reference_deltas(events, CFG)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k])
    assert own == want_own
    # every user outlived by the final timers is gone, and said so
    assert all(s is None for s in states.values())
    assert {x.user for x in out if isinstance(x, Expired)} == {e.user for e in events}


@pytest.mark.parametrize("seed", range(4))
def test_open_buckets_stored_as_pair_sums_by_the_earlier_version_are_still_read(seed):
    """State written before the buckets were kept as event logs held the sums themselves,
    {bucket: {item: [own count, {partner: weight}]}}: a restore from such a savepoint goes
    on adding to them, and every bucket still sums to the defined pairs."""
    events = random_events(seed, n=400)
    cut = next(n for n in range(len(events) // 2, len(events)) if events[n - 1].weight > 0)   # a bucket is open
    timers = set()
    states, out = drive_users(events[:cut], CFG, timers=timers, finish=False)
    earlier = [e for e in events[:cut] if e.weight > 0]
    rewritten = 0
    for user, state in states.items():
        pending = None if state is None else UserState.of(state).pending
        if not pending:
            continue
        mine = [e for e in earlier if e.user == user]
        sums = {b: {} for b in pending}      # the earlier layout, from the definition
        for i, j, t, w in reference_pairs(mine, CFG):
            if t - t % CFG.bucket_ms in sums:
                pair = sums[t - t % CFG.bucket_ms].setdefault(i, [0.0, {}])[1]
                pair[j] = pair.get(j, 0.0) + w
        for e in mine:
            if e.t - e.t % CFG.bucket_ms in sums:
                sums[e.t - e.t % CFG.bucket_ms].setdefault(e.item, [0.0, {}])[0] += 1.0
        recent, last_seen, ttl_timer, _ = UserState.of(state)   # layout 1: untagged, with version and burst
        states[user] = (7, recent, last_seen, ttl_timer, None, sums)
        rewritten += 1
    assert rewritten >= 1
    _, rest = drive_users(events[cut:], CFG, states=states, timers=timers)
    got, own = defined_deltas(out + rest)
    want, want_own = reference_deltas(events, CFG)
    assert got.keys() == want.keys()
    assert all(got[k] == pytest.approx(want[k]) for k in want)
    assert own == want_own


def test_a_user_with_thousands_of_events_in_one_bucket_keeps_a_bounded_log_and_the_defined_sums():
    rng = random.Random(5)
    events = [Event(1, rng.randint(1, 12), 1_000 * n, 1.0) for n in range(3_000)]   # 50 minutes: 5 buckets
    states, timers = {}, set()
    longest, out = 0, []
    for chunk in range(0, len(events), 100):
        out += drive_users(events[chunk:chunk + 100], CFG, states=states, timers=timers, finish=False)[1]
        longest = max([longest] + [len(log) for log in UserState.of(states[1]).pending.values()])
    assert longest <= user_activity.LOG_MAX
    out += drive_users([], CFG, states=states, timers=timers)[1]
    got, own = defined_deltas(out)
    want, want_own = reference_deltas(events, CFG)
    assert got.keys() == want.keys()
    assert all(got[k] == pytest.approx(want[k]) for k in want)
    assert own == want_own and sum(own.values()) == len(events)


def test_a_user_with_a_break_longer_than_the_ttl_is_expired_then_starts_over():
    events = [Event(1, 10, 0, 1.0), Event(1, 11, 1_000, 1.0), Event(1, 12, 3 * CFG.user_ttl_ms, 1.0)]
    timers = set()
    states, out = drive_users(events[:2], CFG, timers=timers, finish=False)
    assert (CFG.user_ttl_ms, 1) in timers   # the TTL, moved on when it fires
    states, out = drive_users(events[2:], CFG, states=states, timers=timers)
    assert [x for x in out if isinstance(x, Expired)][0] == Expired(1, 1_000 + CFG.user_ttl_ms)
    # the event after the break pairs with nothing: the window was dropped with the state
    late = [d for d in out if isinstance(d, ItemDelta) and d.item == 12]
    assert late == [ItemDelta(12, 3 * CFG.user_ttl_ms - 3 * CFG.user_ttl_ms % CFG.bucket_ms, 1.0, {})]


def test_item_window_publishes_at_bucket_ends_and_is_gone_after_its_last_bucket_expires():
    b = CFG.bucket_ms
    state, timers = None, []
    for d in (ItemDelta(1, 0, 2.0, {2: 1.0, 3: 0.5}), ItemDelta(1, 0, 1.0, {2: 0.5}), ItemDelta(1, b, 1.0, {3: 1.0})):
        state, out, new = item_side.on_delta(state, d, CFG)
        assert out == []
        timers += new
    assert sorted(timers) == [b, 2 * b, b + CFG.cooccurrence_window_ms, 2 * b + CFG.cooccurrence_window_ms]
    published = []
    for ts in sorted(timers):
        state, out, _ = item_side.on_item_timer(state, 1, ts, CFG)
        published += out
    counts = {(x.t): (x.n, dict(x.counts)) for x in published if isinstance(x, NeighborCounts)}
    # at b: bucket 0 only; at 2b: both; at b+L: bucket 0 expired; at 2b+L: nothing left
    assert counts[b] == (3.0, {2: 1.5, 3: 0.5})
    assert counts[2 * b] == (4.0, {2: 1.5, 3: 1.5})
    assert counts[b + CFG.cooccurrence_window_ms] == (1.0, {3: 1.0})
    assert 2 * b + CFG.cooccurrence_window_ms not in counts
    assert state is None
    assert [x for x in published if isinstance(x, BucketCount)] == [BucketCount(1, 0, 3.0), BucketCount(1, b, 1.0)]


def test_item_window_keeps_the_m_it_published_and_prunes_only_buckets_before_the_end():
    # docs/algorithm.md: at a bucket end an item with more than M neighbors keeps the M it published
    # (largest counts, ties: lower id) in the buckets before that end; later ones untouched
    cfg = CFG.replace(neighbors_per_item=4, fragment_size=4)
    b = cfg.bucket_ms
    state = None
    for j in range(1, 7):
        state, _, _ = item_side.on_delta(state, ItemDelta(1, 0, 1.0, {j: float(j)}), cfg)
    state, _, _ = item_side.on_delta(state, ItemDelta(1, b, 1.0, {1: 10.0}), cfg)   # arrived early
    state, out, _ = item_side.on_item_timer(state, 1, b, cfg)
    nc = next(x for x in out if isinstance(x, NeighborCounts))
    assert nc.counts == ((6, 6.0), (5, 5.0), (4, 4.0), (3, 3.0))   # 1 and 2 beyond M at b
    state, out, _ = item_side.on_item_timer(state, 1, 2 * b, cfg)
    nc = next(x for x in out if isinstance(x, NeighborCounts))
    # bucket 0 lost 1 and 2; bucket b kept 1's 10
    assert nc.counts == ((1, 10.0), (6, 6.0), (5, 5.0), (4, 4.0))


def test_trending_counts_the_window_and_ends_empty():
    b = CFG.bucket_ms
    state, timers = None, []
    for c in (BucketCount(1, 0, 3.0), BucketCount(2, 0, 1.0), BucketCount(2, b, 5.0), BucketCount(3, 3 * b, 1.0)):
        state, _, new = item_side.on_bucket_count(state, c, CFG)
        timers += new
    assert timers == [b, 2 * b, 4 * b]
    tops = []
    for ts in timers:
        state, out, _ = item_side.on_trending_timer(state, ts, CFG, lambda item: True)
        tops += out
    # window 2 buckets: at 2b buckets 0 and b count; at 4b only 3b
    assert tops == [Trending(b, ((1, 3.0), (2, 1.0))), Trending(2 * b, ((2, 6.0), (1, 3.0))),
                    Trending(4 * b, ((3, 1.0),))]
    state, out, _ = item_side.on_trending_timer(state, 6 * b, CFG, lambda item: True)
    assert state is None and out == []


def test_trending_holds_listed_items_only_however_many_others_there_are():
    cfg = CFG.replace(trending_size=2)
    state = None
    counts = [BucketCount(1, 0, 1.0), BucketCount(2, 0, 2.0)] + [BucketCount(1000 + j, 0, 50.0) for j in range(100)]
    for c in counts:
        state, _, _ = item_side.on_bucket_count(state, c, cfg)
    _, out, _ = item_side.on_trending_timer(state, cfg.bucket_ms, cfg, lambda item: item < 1000)
    assert out == [Trending(cfg.bucket_ms, ((2, 2.0), (1, 1.0)))]


def _index():
    index = ranker.ItemIndex(fragment_size=10)
    for i in range(1, 8):
        index.put(ItemInfo(i, f"t{i}", ("a",) if i % 2 else ("b",), i == 6))
    # item 1's neighbors: 2 (C=4), 3 (C=3), 6 (deleted, C=9); N: 1->4, 2->16, 3->4, 6->9
    index.put(NeighborCounts(1, 100, 4.0, ((6, 9.0), (2, 4.0), (3, 3.0))))
    index.put(NeighborCounts(2, 100, 16.0, ((1, 4.0),)))
    index.put(NeighborCounts(3, 100, 4.0, ((1, 3.0),)))
    index.put(NeighborCounts(6, 100, 9.0, ((1, 9.0),)))
    index.put(Trending(100, ((6, 50.0), (5, 9.0), (1, 8.0), (7, 7.0))))
    return index


def test_neighbors_are_cosine_with_each_neighbors_own_count_and_refresh_when_counts_change():
    index = _index()
    # cosine = C / sqrt(N(i) N(j)): 6 -> 9/6 = 1.5, 3 -> 3/4 = 0.75, 2 -> 4/8 = 0.5
    rows = lambda nb: list(zip(nb.ids.tolist(), nb.sims.tolist(), nb.counts.tolist()))  # noqa: E731
    assert rows(index.neighbors(1)) == [(6, 1.5, 9.0), (3, 0.75, 3.0), (2, 0.5, 4.0)]
    index.put(NeighborCounts(1, 200, 4.0, ((2, 8.0),)))
    assert rows(index.neighbors(1)) == [(2, 1.0, 8.0)]
    assert index.neighbor_record(1)["neighbors"] == [{"item_id": 2, "score": 1.0, "co_count": 8.0}]


def test_published_neighbor_lists_hold_listed_items_only_however_many_others_there_are():
    index = ranker.ItemIndex(fragment_size=2)
    for i in range(1, 5):
        index.put(ItemInfo(i, f"t{i}", ("a",), i == 4))
    # item 1: listed 2 (C=3) and 3 (C=1), deleted 4 (C=9), never listed 100.. (C=5)
    index.put(NeighborCounts(1, 100, 10.0, ((4, 9.0), (2, 3.0), (3, 1.0), *((100 + j, 5.0) for j in range(20)))))
    assert [n["item_id"] for n in index.neighbor_record(1)["neighbors"]] == [2, 3]
    assert len(index.neighbors(1).ids) == 2 and 2 not in index.neighbors(1).ids   # ranking keeps them all
    index.put(NeighborCounts(4, 100, 9.0, ((1, 9.0),)))
    index.put(NeighborCounts(7, 100, 9.0, ((1, 9.0),)))
    assert index.neighbor_record(4) is None and index.neighbor_record(7) is None   # deleted, never listed


def test_ranker_never_recommends_consumed_or_deleted_items_even_as_trending():
    index = _index()
    cfg = CFG.replace(top_n=4, interest_weight=0.0)
    state, out, timers = ranker.on_event(None, Event(9, 1, 1_000, 5.0), index, cfg, 0)
    assert out[0]["version"] == 1_000 * 1024 and out[0]["event_time"] == 1_000
    items = [(x["item_id"], x["reason"]) for x in out[0]["items"]]
    # candidates 3 then 2 (6 is deleted), then trending without 6 (deleted) and 1 (consumed)
    assert items == [(3, "because you liked t1"), (2, "because you liked t1"), (5, "trending now"),
                     (7, "trending now")]
    assert timers == [1_000 + cfg.user_ttl_ms]
    state, out, _ = ranker.on_timer(state, 9, 1_000 + cfg.user_ttl_ms, index, cfg, 0)
    assert state is None and out == []


@pytest.mark.parametrize("debounce_ms", [600_000, 2 * CFG.user_ttl_ms])
def test_with_debounce_a_burst_gets_one_list_at_its_end_or_at_the_ttl_whichever_comes_first(debounce_ms):
    cfg, index = CFG.replace(debounce_ms=debounce_ms), _index()
    state, out, timers = ranker.on_event(None, Event(9, 1, 1_000, 5.0), index, cfg, 0)
    state, more, later = ranker.on_event(state, Event(9, 3, 2_000, 1.0), index, cfg, 0)
    assert out == more == [] and later == []
    timers, lists = set(timers), []
    while state is not None:
        ts = min(timers)
        timers.discard(ts)
        state, out, new = ranker.on_timer(state, 9, ts, index, cfg, 0)
        lists += [(ts, x) for x in out if isinstance(x, dict)]
        timers.update(new)
    assert ts == 2_000 + cfg.user_ttl_ms   # the TTL, where the state went
    [(ts, listed)] = lists
    assert ts == min(1_000 + debounce_ms, 2_000 + cfg.user_ttl_ms)
    assert listed["version"] == 2_000 * 1024 and listed["event_time"] == 2_000
    # both events count: neither is recommended
    assert not {1, 3} & {x["item_id"] for x in listed["items"]}


def test_an_item_the_catalog_does_not_know_is_recommended_only_once_it_does():
    # docs/algorithm.md: events of an unknown item count (it becomes others' neighbor), but it is
    # recommended, as a candidate or as trending, only once its catalog record arrives.
    index = _index()
    index.put(NeighborCounts(1, 200, 4.0, ((8, 9.0), (2, 4.0), (3, 3.0))))   # 8: no catalog record
    index.put(NeighborCounts(8, 200, 9.0, ((1, 9.0),)))
    index.put(Trending(200, ((8, 60.0), (5, 9.0), (7, 7.0))))
    cfg = CFG.replace(top_n=4, interest_weight=0.0)
    request = Request(9, 1, 1_000, ((1, 5.0, 1_000),), ((1, 5.0),))
    _, out = ranker.on_request(None, request, index, cfg, 0)
    assert [x["item_id"] for x in out[0]["items"]] == [3, 2, 5, 7]
    index.put(ItemInfo(8, "t8", ("a",), False))
    _, out = ranker.on_request(None, request, index, cfg, 0)
    # cosine 9 / sqrt(4 x 9) = 1.5 leads; a tombstone (deleted) takes it out again
    assert [x["item_id"] for x in out[0]["items"]] == [8, 3, 2, 5]
    index.put(ItemInfo(8, "", (), True))
    _, out = ranker.on_request(None, request, index, cfg, 0)
    assert [x["item_id"] for x in out[0]["items"]] == [3, 2, 5, 7]


def test_dataflow_in_one_process_publishes_what_a_batch_recount_says():
    events = random_events(3, n=400, users=8, items=20)
    published = []
    listed = [ItemInfo(i, f"t{i}", ("a",), False) for i in sorted({ev.item for ev in events})]
    flow = Dataflow(CFG, listed, lambda kind, rec: published.append(rec) if kind == "item_neighbors" else None)
    for ev in events:
        flow.push(ev)
    flow.finish()
    pairs = reference_pairs(events, CFG)
    assert len(published) > 20
    for rec in published:
        end = rec["event_time"]
        want = defaultdict(float)
        for i, j, t, w in pairs:
            if i == rec["item_id"] and t < end and t - t % CFG.bucket_ms + CFG.bucket_ms > end - CFG.cooccurrence_window_ms:
                want[j] += w
        got = {n["item_id"]: n["co_count"] for n in rec["neighbors"]}
        assert got.keys() == want.keys(), rec
        for j in want:
            assert got[j] == pytest.approx(want[j])


# --- state layouts: a savepoint of an earlier layout is migrated on restore ----------------

def _earlier_layouts(flow, tagged: bool) -> None:
    """Rewrite ``flow``'s states as the job before this layout wrote them: the list's version
    and debounce burst in UserActivity's state ("user/2"), the Ranker's without them and its
    recent items ("ranker/2"); untagged (layout 1) unless ``tagged``, and then trending as
    the bare dict of buckets and the item states untagged too."""
    for user in set(flow.users) | set(flow.rankers):
        r = ranker.RankerState.of(flow.rankers[user]) if flow.rankers.get(user) else None
        if flow.users.get(user):
            recent, last_seen, ttl_timer, pending = UserState.of(flow.users[user])
            old = (r.version if r else 0, recent, last_seen, ttl_timer, r.burst if r else None, pending)
            flow.users[user] = ("user/2", *old) if tagged else old
        if r is not None:
            flow.rankers[user] = ("ranker/2", *r[:6]) if tagged else tuple(r[:6])
    if not tagged:
        flow.items = {key: state[1:] for key, state in flow.items.items()}
        flow.trending = flow.trending and flow.trending[1]


@pytest.mark.parametrize("seed,debounce_ms,tagged", [(0, 0, True), (1, 0, False), (2, 10 * MINUTE, True)])
def test_states_of_earlier_layouts_are_migrated_and_only_the_versions_and_seeds_restart(seed, debounce_ms, tagged):
    events = random_events(seed, n=400)
    cut = len(events) // 2
    # right after the upgrade, each user's next event in the same millisecond as its last
    last = {ev.user: ev for ev in events[:cut]}
    events = events[:cut] + [ev._replace(item=ev.item % 15 + 1) for ev in last.values()] + events[cut:]
    catalog = [ItemInfo.of({"item_id": i, "title": f"t{i}", "tags": [f"g{i % 3}"], "updated_at": 0,
                            "deleted": False}) for i in range(1, 16)]
    cfg = CFG.replace(debounce_ms=debounce_ms)

    def run(restore_old: bool) -> dict:
        out = defaultdict(list)
        flow = Dataflow(cfg, catalog, lambda kind, record: out[kind].append(record))
        for ev in events[:cut]:
            flow.push(ev)
        if restore_old:
            _earlier_layouts(flow, tagged)
        for ev in events[cut:]:
            flow.push(ev)
        flow.finish()
        return out

    old, new = run(restore_old=True), run(restore_old=False)
    for kind in ("item_neighbors", "trending", "expired_users"):
        assert old[kind] == new[kind], kind
    lists = lambda out: [(r["user_id"], r["event_time"]) for r in out["recommendations"]]  # noqa: E731
    if debounce_ms == 0:
        assert lists(old) == lists(new) and len(lists(new)) == len(events)
    else:   # a burst open at the upgrade is lost (seed 2 has three): its list comes only if a later event joined it
        assert set(lists(old)) <= set(lists(new)) and len(lists(old)) >= len(lists(new)) - 3
    for user in {ev.user for ev in events}:
        versions = [r["version"] for r in old["recommendations"] if r["user_id"] == user]
        assert versions == sorted(set(versions)), user   # still increasing across the upgrade

def test_the_ranker_state_of_the_earlier_layout_restarts_versions_above_its_lists_and_seeds_from_consumed():
    consumed = {5: 3_000, 2: 1_000, 7: 3_000}
    earlier = ("ranker/2", {"a": 1.0}, 3_000, consumed, 3_000, 3_000 + CFG.user_ttl_ms, None)
    migrated = ranker.RankerState.of(earlier)
    assert migrated[:6] == earlier[1:]
    # lists up to then had versions of at most 3,000 x 1024 plus one per event in that ms
    assert migrated.version == 3_001 * 1024 - 1
    assert migrated.recent == [(2, 1_000, 1.0), (5, 3_000, 1.0), (7, 3_000, 1.0)] and migrated.burst is None
    state, [listed], _ = ranker.on_event(earlier, Event(9, 1, 3_000, 0.0), _index(), CFG, 0)
    assert listed["version"] == 3_001 * 1024
    assert UserState.of(("user/2", 7, [(1, 0, 1.0)], 0, 9, (5, 7, 0, (), ()), {})) == ([(1, 0, 1.0)], 0, 9, {})


@pytest.mark.parametrize("read", [
    lambda: UserState.of(("user/9", 1)),
    lambda: ranker.RankerState.of(("ranker/9",)),
    lambda: item_side.on_delta(("item/3",), ItemDelta(1, 0, 1.0, {}), CFG),
    lambda: item_side.on_bucket_count(("trending/3", {}), BucketCount(1, 0, 1.0), CFG),
], ids=["user", "ranker", "item", "trending"])
def test_a_state_of_an_unknown_layout_is_refused_not_guessed(read):
    with pytest.raises(ValueError, match="layout"):
        read()
