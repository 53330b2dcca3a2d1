from collections import Counter

import pytest

from flink_jobs.codec import AvroCodec, AvroError
from reco_tools import movielens
from reco_tools.synth import MAX_SESSION, Synth, SynthConfig, encoded_stream


def test_movielens_sample_as_records():
    movies = movielens.load_movies()
    events = movielens.load_rating_events()
    # sizes from the dataset's README
    assert len(movies) == 9_125 and len(events) == 100_004
    assert len({e["user_id"] for e in events}) == 671
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
    assert all(e["event_type"] == "RATING" and 0.5 <= e["value"] <= 5.0 for e in events)
    assert movies[1].title == "Toy Story (1995)"
    assert movies[1].genres == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    no_genre = [m for m in movies.values() if not m.genres]
    assert no_genre and all(movielens.NO_GENRES not in m.genres for m in movies.values())
    codec = AvroCodec("reco.UserEvent")
    assert codec.decode(codec.encode(events[0])) == events[0]
    items = movielens.item_records(movies, updated_at=5)
    assert len(items) == len(movies) and AvroCodec("reco.ItemFeatures").encode(items[0])


def _events(**kw):
    return list(Synth(SynthConfig(**kw)).events())


def test_synth_is_deterministic_per_seed():
    assert _events(events=3000, seed=3) == _events(events=3000, seed=3)
    assert _events(events=3000, seed=3) != _events(events=3000, seed=4)


def test_synth_shape():
    cfg = SynthConfig(events=30_000, users=500, items=400, clusters=8, seed=1)
    synth = Synth(cfg)
    events = list(synth.events())
    assert len(events) == cfg.events
    assert {e["item_id"] for e in events} <= set(range(1, cfg.items + 1))
    # Zipf: the most popular item of the stream is far above the median item
    counts = sorted(Counter(e["item_id"] for e in events).values(), reverse=True)
    assert counts[0] > 10 * counts[len(counts) // 2]
    # users stay inside their clusters of interest
    for e in events[:2000]:
        assert synth.item_cluster[e["item_id"] - 1] in synth.user_clusters[e["user_id"] - 1]
    # event time is ordered up to bounded disorder (the chunk border, within a session)
    high, worst = 0, 0
    for e in events:
        high = max(high, e["event_time"])
        worst = max(worst, high - e["event_time"])
    assert 0 < worst < MAX_SESSION * cfg.click_gap_ms * 4
    kinds = Counter(e["event_type"] for e in events)
    assert kinds["VIEW"] > kinds["CLICK"] > kinds["ADD_TO_CART"] > kinds["PURCHASE"] > 0


@pytest.mark.parametrize("bad", [dict(events=0), dict(clusters=0), dict(items=3, clusters=5), dict(zipf_s=0)])
def test_synth_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        SynthConfig(**bad)


def test_malformed_records_are_marked_and_undecodable_or_invalid():
    codec = AvroCodec("reco.UserEvent")
    rows = list(encoded_stream(Synth(SynthConfig(events=600, seed=2)), malformed_every=50))
    bad = [v for _, v, _, is_bad in rows if is_bad]
    good = [v for _, v, _, is_bad in rows if not is_bad]
    assert len(good) == 600 and len(bad) == 12
    for v in good:
        codec.decode(v)
    semantic = 0
    for v in bad:
        try:
            rec = codec.decode(v)
        except AvroError:
            continue
        assert rec["user_id"] < 0  # decodes, but no valid event has a negative id
        semantic += 1
    assert semantic == 2  # one of each six kinds, twice



def test_chaos_refuses_too_few_events_before_touching_any_service():
    from lab import chaos

    # nothing listens on port 1: had it reached Kafka or Redis, the error would differ
    scenario = chaos.Scenario(events=500, bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match=r"500 events span 3 min of event time.*before 5 min"):
        chaos.run(scenario)


def test_the_demo_publishes_a_model_trained_on_what_it_sent_before_the_rest(monkeypatch):
    from lab import demo

    sent = []
    monkeypatch.setattr(demo, "produce", lambda producer, topic, records, **kw: sent.extend(
        ("event", AvroCodec("reco.UserEvent").decode(v)["event_id"]) for _, v, _ in records))
    monkeypatch.setattr(demo, "produce_catalog", lambda producer, items, **kw: sent.extend(
        ("model", r["item_id"], r["model_version"] > 0, len(r["embedding"])) for r in items))
    events = movielens.load_rating_events()[:2_000]
    demo.feed(None, events, movielens.load_movies(), 0.0, 1_500)
    kinds = [x[0] for x in sent]
    first_model = kinds.index("model")
    assert [x[1] for x in sent[:first_model]] == [e["event_id"] for e in events[:1_500]]
    assert [x[1] for x in sent if x[0] == "event"] == [e["event_id"] for e in events]
    assert kinds[first_model:].count("model") == kinds.count("model") > 50
    assert kinds[-500:] == ["event"] * 500
    models = [x for x in sent if x[0] == "model"]
    assert all(has_version and dims == 48 for _, _, has_version, dims in models)
    # trained on the first 1,500 only: an item first rated after them has no vector
    later = {e["item_id"] for e in events[1_500:]} - {e["item_id"] for e in events[:1_500]}
    assert later and not later & {item for _, item, _, _ in models}
