"""The whole pipeline on a local Flink environment (keyed operators at parallelism 2),
from in-memory input. One run serves every assertion (about a minute on this machine).
"""

from collections import defaultdict

import pytest

from flink_jobs.codec import AvroCodec
from flink_jobs.config import MINUTE, JobConfig
from lab.oracle import batch_pairs, expected_lists, expected_versions, window_counts
from reco_tools.synth import Synth, SynthConfig, malformed_payloads

pytestmark = pytest.mark.job

CFG = JobConfig(parallelism=2, top_n=5, recent_items=5, seeds=3, pair_span_ms=30 * MINUTE,
                neighbors_per_item=500, fragment_size=500, bucket_ms=10 * MINUTE,
                cooccurrence_window_ms=60 * MINUTE, user_ttl_ms=120 * MINUTE,
                trending_window_ms=60 * MINUTE, max_out_of_orderness_ms=0,
                idle_source_timeout_ms=60_000,  # on, so the test covers how the strategy is composed
                trending_size=10)
COLD_USER, TTL_USER, NEW_ITEM = 9_001, 9_002, 7_777
# ids no catalog record lists, each viewed more often than any listed item: they must not
# reach any published list, nor crowd listed items out of trending
MADE_UP = range(50_000, 50_012)


def make_events():
    synth = Synth(SynthConfig(events=400, users=25, items=60, clusters=3, seed=5,
                              session_gap_ms=240_000.0, click_gap_ms=20_000.0))
    events = sorted(synth.events(), key=lambda e: e["event_time"])  # in order: no late events
    t0, t_end = events[0]["event_time"], events[-1]["event_time"]
    ev = lambda user, item, t: {"event_id": f"x-{user}-{t}", "user_id": user, "item_id": item,  # noqa: E731
                                "event_type": "PURCHASE", "value": None, "event_time": t}
    # the TTL user: one event at the start, one long after its state should be gone
    events.insert(1, ev(TTL_USER, events[0]["item_id"], t0 + 1))
    late = t0 + 1 + CFG.user_ttl_ms + 30 * MINUTE
    assert late < t_end, "the stream must outlast the TTL"
    events.append(ev(TTL_USER, events[0]["item_id"], t_end + 1))
    # a flood on made-up ids by users of their own, through the stream's last hour
    flood_start = t_end - 60 * MINUTE
    flood = [ev(9_100 + k % 12, item, flood_start + k * 20_000 + n) for k in range(12)
             for n, item in enumerate(MADE_UP)]
    events = sorted(events + flood, key=lambda e: e["event_time"])
    # the cold-start user: first event on an item nobody else has, near the end
    events.insert(len(events) - 5, ev(COLD_USER, NEW_ITEM, events[-6]["event_time"]))
    return synth, events


@pytest.fixture(scope="module", params=[0, 10 * MINUTE], ids=["list-per-event", "debounced"])
def run(request):
    from lab.inmemory import run_pipeline

    synth, events = make_events()
    codec = AvroCodec("reco.UserEvent")
    raw = [codec.encode(e) for e in events]
    good = raw[0]
    bad = [malformed_payloads(codec, good, k) for k in range(6)]
    raw = raw[:50] + bad + raw[50:]
    cfg = CFG.replace(debounce_ms=request.param)
    # the cold user's event waits until every ranking subtask holds the trending list of the
    # last bucket end before it (in-memory input otherwise arrives all at once, before any list)
    cold = next(i for i, e in enumerate(events) if e["user_id"] == COLD_USER)
    last_end_after = events[cold]["event_time"] - CFG.bucket_ms

    def rankers_have_trending(run):
        held = run.gauge("Ranker", "trendingTime")
        return held is not None and min(held) > last_end_after
    out = run_pipeline(raw, synth.catalog(), cfg, watermark_interval_ms=1,
                       holds={cold + len(bad): rankers_have_trending})
    return events, bad, out, cfg


def test_malformed_records_go_to_dead_letters_and_valid_ones_all_count(run):
    events, bad, out, cfg = run
    assert sorted(d["payload"] for d in out["dead_letters"]) == sorted(bad)
    assert all(d["reason"] for d in out["dead_letters"])
    emitted = defaultdict(list)
    for r in out["recommendations"]:
        emitted[r["user_id"]].append(r["version"])
    # every valid event counted and answered: a list per event (or per burst), in order
    assert dict(emitted) == dict(expected_lists(events, cfg.debounce_ms))


def test_published_cooccurrence_counts_equal_a_batch_recount(run):
    events, _, out, cfg = run
    pairs = batch_pairs(events, CFG)
    assert out["item_neighbors"], "no neighbor lists were published"
    checked = 0
    for nb in out["item_neighbors"]:
        expected = {j: c for j, c in window_counts(pairs[nb["item_id"]], nb["event_time"], CFG).items()
                    if j not in MADE_UP}
        got = {n["item_id"]: n["co_count"] for n in nb["neighbors"]}
        assert got.keys() == expected.keys(), (nb["item_id"], nb["event_time"])
        for j in expected:
            assert got[j] == pytest.approx(expected[j]), (nb["item_id"], j, nb["event_time"])
        checked += 1
    assert checked > 20


def test_recommendations_never_contain_consumed_items(run):
    events, _, out, cfg = run
    consumed = defaultdict(list)
    for e in events:
        consumed[e["user_id"]].append(e["item_id"])
    versions = expected_versions(events)
    assert len(out["recommendations"]) == sum(map(len, expected_lists(events, cfg.debounce_ms).values())) > 50
    for r in out["recommendations"]:
        if r["user_id"] == TTL_USER:
            continue
        seen = set(consumed[r["user_id"]][: versions[r["user_id"]].index(r["version"]) + 1])
        assert not seen & {i["item_id"] for i in r["items"]}, r
        assert len(r["items"]) <= CFG.top_n
        scores = [i["score"] for i in r["items"]]
        assert scores == sorted(scores, reverse=True)


def test_user_without_history_gets_trending_items(run):
    _, _, out, cfg = run
    cold = [r for r in out["recommendations"] if r["user_id"] == COLD_USER]
    assert len(cold) == 1
    items = cold[0]["items"]
    assert len(items) == CFG.top_n
    assert all(i["reason"] == "trending now" for i in items)
    assert NEW_ITEM not in {i["item_id"] for i in items}
    assert out["trending"], "trending lists were never published"


def test_published_lists_hold_listed_items_only(run):
    _, _, out, _ = run
    trending = {item for t in out["trending"] for item, _ in t.top}
    assert trending and not trending & set(MADE_UP)
    assert not {nb["item_id"] for nb in out["item_neighbors"]} & set(MADE_UP)
    assert not {n["item_id"] for nb in out["item_neighbors"] for n in nb["neighbors"]} & set(MADE_UP)


def test_user_state_is_gone_after_ttl(run):
    events, _, out, cfg = run
    first = next(e["event_time"] for e in events if e["user_id"] == TTL_USER)
    expired = [(u, t) for u, t in out["expired_users"] if u == TTL_USER]
    assert expired[0] == (TTL_USER, first + CFG.user_ttl_ms)
    # a user whose events never pause for a whole TTL is never expired before the end (the
    # converse need not hold: a timer fires only once the periodic watermark passes it,
    # which may be after the user's next event)
    by_user = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e["event_time"])
    end = events[-1]["event_time"]
    for user, times in by_user.items():
        gaps = [b - a for a, b in zip(times, times[1:])] + [end - times[-1]]
        expired_early = [t for u, t in out["expired_users"] if u == user and t <= end]
        if expired_early:
            assert max(gaps) >= CFG.user_ttl_ms, user
    # the second life of the TTL user starts over: its list is answered for the new event
    assert max(r["version"] for r in out["recommendations"] if r["user_id"] == TTL_USER) == \
        expected_versions(events)[TTL_USER][-1]


def _agrees_with_one_process(events, catalog, cfg, out) -> None:
    """What lab.inprocess computes for ``events`` equals the pipeline's ``out`` where the
    result does not depend on timing: the versions emitted and the counts of every published
    neighbor list."""
    from lab import inprocess
    from udfs.records import Event, ItemInfo

    got = inprocess.run(map(Event.of, events), map(ItemInfo.of, catalog), cfg)
    versions = lambda recs: sorted((r["user_id"], r["version"]) for r in recs)  # noqa: E731
    assert versions(got["recommendations"]) == versions(out["recommendations"])
    # counts, not scores: a score reads each neighbor's own count as the ranker knows it then
    lists = lambda recs: {(r["item_id"], r["event_time"]): (r["item_count"], {  # noqa: E731
        n["item_id"]: round(n["co_count"], 9) for n in r["neighbors"]}) for r in recs}
    assert lists(got["item_neighbors"]) == lists(out["item_neighbors"])
    assert len(got["item_neighbors"]) == len(out["item_neighbors"]) > 20


def test_the_dataflow_in_one_process_agrees_with_the_pipeline(run):
    """The benchmark's core and the quality evaluator run lab.inprocess: it must compute what
    the pipeline computes where the result does not depend on timing. (A list's items depend
    on which bucket ends have reached the rankers when it is computed: in one process event
    time follows each event, in the pipeline watermarks trail the records, by a lot when
    input is replayed fast.)"""
    events, _, out, cfg = run
    synth, _ = make_events()
    _agrees_with_one_process(events, synth.catalog(), cfg, out)


def test_state_stays_right_though_the_cache_pushes_keys_out_within_bundles():
    """Bundles of 50 records over a state cache of 3 keys: every bundle pushes keys out of
    the worker's cache and brings them back, through the job's state commit
    (internals.commit_touched_keys_only); a key's later events must see its earlier writes,
    or counts and versions go astray. (That each write reaches the TaskManager by its
    bundle's end, which only a restore would show, is tests/unit/test_state_commit.py's.)"""
    from lab.inmemory import run_pipeline

    synth, events = make_events()
    codec = AvroCodec("reco.UserEvent")
    cfg = CFG.replace(state_cache_keys=3)
    out = run_pipeline([codec.encode(e) for e in events], synth.catalog(), cfg, bundle_size=50,
                       watermark_interval_ms=1)
    _agrees_with_one_process(events, synth.catalog(), cfg, out)
