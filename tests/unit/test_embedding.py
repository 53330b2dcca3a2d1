"""Embeddings in the job: packing, the user's embedding interest, nearest items, model
versions, and a new item recommended from its embedding alone.

The references here are written from the definitions in docs/algorithm.md ("Embeddings and the model switch"), with numpy
on the test's own vectors, never through ``udfs.embedding`` or the index under test.
"""

import math
import pickle
import random

import numpy as np
import pytest

from flink_jobs.config import ConfigError, JobConfig
from udfs import embedding, ranker
from udfs.ranking import TASTE_REASON
from udfs.records import ItemInfo, NeighborCounts, Request

DAY = 86_400_000
CFG = JobConfig(top_n=5, recent_items=4, seeds=2, interest_weight=0.0, interest_half_life_ms=10 * DAY,
                embedding_weight=1.0, embedding_candidates=3)


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / math.sqrt(float(v @ v))


def taste(state):
    return ranker.RankerState.of(state).taste


def _item(i, vec=None, version=1, deleted=False, precision="float32"):
    return ItemInfo.of({"item_id": i, "title": f"t{i}", "tags": ["x"], "deleted": deleted,
                        "embedding": None if vec is None else list(vec), "model_version": version}, precision)


@pytest.mark.parametrize("seed", range(5))
def test_int8_keeps_each_component_within_half_a_step_and_float32_is_exact(seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(48).astype(np.float32) * 10 ** rng.uniform(-3, 3)
    precision, data, scale = embedding.pack(v, "int8")
    assert precision == "int8" and len(data) == 48
    step = float(np.max(np.abs(v))) / 127
    assert scale == pytest.approx(step)
    assert np.max(np.abs(embedding.unpack((precision, data, scale)) - v)) <= step / 2 * (1 + 1e-5)
    assert np.array_equal(embedding.unpack(embedding.pack(v, "float32")), v)
    assert not embedding.unpack(embedding.pack(np.zeros(4), "int8")).any()
    with pytest.raises(ValueError, match="precision"):
        embedding.pack(v, "int4")


def test_embedding_interest_is_the_decayed_weighted_sum_whatever_the_event_order():
    rng = random.Random(3)
    vectors = {i: _unit(np.random.default_rng(i).standard_normal(8)) for i in range(6)}
    events = [(rng.randrange(6), rng.choice([1.0, 5.0, 0.0]), rng.randrange(0, 30 * DAY)) for _ in range(40)]
    newest = max(t for _, _, t in events)
    want = sum(w * 0.5 ** ((newest - t) / (10 * DAY)) * vectors[i] for i, w, t in events)
    for order in (events, sorted(events, key=lambda e: e[2]), list(reversed(events))):
        u, as_of = None, 0
        for i, w, t in order:
            u = embedding.add(u if u is not None else np.zeros(8, dtype=np.float32),
                              vectors[i].astype(np.float32), w, t, as_of, 10 * DAY)
            as_of = max(as_of, t)
        assert np.allclose(u, want, rtol=1e-4, atol=1e-6)


def test_nearest_is_the_brute_force_cosine_top_among_listed_items_of_the_newest_model():
    rng = np.random.default_rng(7)
    vectors = {i: rng.standard_normal(6) for i in range(1, 61)}
    index = ranker.ItemIndex(10)
    for i, v in vectors.items():
        index.put(_item(i, v, deleted=i % 7 == 0))
    index.put(_item(61))                           # no embedding
    index.put(_item(62, rng.standard_normal(6), version=0))   # no model (an older version)
    u = rng.standard_normal(6).astype(np.float32)
    cosine = {i: float(_unit(v) @ _unit(u)) for i, v in vectors.items() if i % 7}
    exclude = np.array(sorted(sorted(cosine, key=lambda i: -cosine[i])[:3] + [99]), dtype=np.int64)   # the 3 nearest
    kept = {i: c for i, c in cosine.items() if i not in exclude and c > 0}
    want = sorted(sorted(kept, key=lambda i: -kept[i])[:10])
    ids, rows = index.nearest(index.taste(u), 10, exclude)
    assert ids.tolist() == want
    assert rows.tolist() == index.rows(ids).tolist()
    got = index.taste(u)(index.rows(np.array([1, 2, 7, 61, 62, 1000])))
    assert np.allclose(got, [cosine[1], cosine[2], 0, 0, 0, 0], atol=1e-6)   # 7 is deleted


@pytest.mark.parametrize("seed", range(4))
def test_nearest_breaks_ties_by_id_and_is_not_crowded_out_by_the_excluded(seed):
    """Many items share a few vectors (ties at every cut), and the excluded are among the
    nearest: the n kept are the best by (cosine, then lowest id) of the rest."""
    rng = np.random.default_rng(seed)
    shapes = rng.standard_normal((4, 5))
    vectors = {i: shapes[rng.integers(4)] for i in range(1, 200)}
    index = ranker.ItemIndex(10)
    for i, v in vectors.items():
        index.put(_item(i, v))
    u = rng.standard_normal(5).astype(np.float32)
    cosine = {i: float(_unit(v) @ _unit(u)) for i, v in vectors.items()}
    by_rank = sorted(cosine, key=lambda i: (-round(cosine[i], 6), i))
    exclude = np.array(sorted(rng.choice(by_rank[:40], 15, replace=False)), dtype=np.int64)
    for n in (1, 7, 30):
        want = sorted([i for i in by_rank if i not in exclude and cosine[i] > 0][:n])
        assert index.nearest(index.taste(u), n, exclude)[0].tolist() == want


def test_nearest_follows_the_catalog_after_a_query():
    """What a query learnt of the catalog is not reused once a record changes it."""
    index = ranker.ItemIndex(10)
    u = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    for i, v in {1: [1, 0.1, 0], 2: [1, 0.2, 0], 3: [1, 0.3, 0]}.items():
        index.put(_item(i, np.array(v)))
    assert index.nearest(index.taste(u), 2, np.zeros(0, dtype=np.int64))[0].tolist() == [1, 2]
    index.put(_item(1, np.array([1, 0.1, 0]), deleted=True))
    index.put(_item(2))                              # its record no longer has an embedding
    assert index.nearest(index.taste(u), 2, np.zeros(0, dtype=np.int64))[0].tolist() == [3]
    index.put(_item(4, np.array([1, 0, 0])))         # new, and nearest of all
    index.put(_item(1, np.array([1, 0.1, 0])))       # listed again
    assert index.nearest(index.taste(u), 2, np.zeros(0, dtype=np.int64))[0].tolist() == [1, 4]


def test_a_newer_model_replaces_the_older_one_and_users_follow_it():
    index = ranker.ItemIndex(10)
    for i in (1, 2, 3):
        index.put(_item(i, np.eye(3)[i - 1], version=5))
    request = Request(9, 1, 1_000, ((1, 5.0, 1_000),), ((1, 5.0),))
    state, out = ranker.on_request(None, request, index, CFG, 0)
    assert out[0]["model_version"] == 5 and taste(state)[0] == 5
    assert np.allclose(embedding.unpack(taste(state)[1]), [5.0, 0, 0])
    index.put(_item(2, [0, 0, 1], version=4))       # a record of an older model: no vector
    assert index.vector(2) is None and index.model_version == 5 and np.allclose(index.vector(3), [0, 0, 1])
    index.put(_item(1, [0, 1, 0], version=6))       # a newer one: the others are unknown until republished
    assert index.model_version == 6 and index.vector(2) is None and np.allclose(index.vector(1), [0, 1, 0])
    later = Request(9, 2, 2_000, ((3, 5.0, 2_000),), ((3, 5.0),))
    state, out = ranker.on_request(state, later, index, CFG, 0)
    # rebuilt from the consumed item 1 (weight 1, decayed from t = 1,000) in model 6, plus
    # item 3, which has no vector in model 6 yet
    assert out[0]["model_version"] == 6 and taste(state)[0] == 6
    assert np.allclose(embedding.unpack(taste(state)[1]), [0, 0.5 ** (1_000 / (10 * DAY)), 0], atol=1e-6)


def test_a_new_item_with_an_embedding_and_no_cooccurrence_is_recommended():
    index = ranker.ItemIndex(10)
    index.put(_item(1, [1, 0.1, 0]))
    index.put(_item(2, [0, 1, 0]))
    index.put(_item(3, [0, 0, 1]))
    index.put(NeighborCounts(1, 100, 4.0, ((2, 2.0),)))
    index.put(NeighborCounts(2, 100, 4.0, ((1, 2.0),)))
    request = Request(9, 1, 1_000, ((1, 5.0, 1_000),), ((1, 5.0),))
    _, out = ranker.on_request(None, request, index, CFG, 0)
    assert [x["item_id"] for x in out[0]["items"]] == [2]    # 3: no co-occurrence, cosine 0
    index.put(_item(50, [1, 0.2, 0]))                              # new: an embedding, no events yet
    _, out = ranker.on_request(None, request, index, CFG, 0)
    items = {x["item_id"]: x for x in out[0]["items"]}
    assert 50 in items and items[50]["reason"] == TASTE_REASON
    assert items[50]["score"] == pytest.approx(float(_unit([1, 0.2, 0]) @ _unit([1, 0.1, 0])), rel=1e-6)
    assert [x["item_id"] for x in out[0]["items"]] == [2, 50]
    state, out = ranker.on_request(None, request, index, CFG.replace(embedding_weight=0.0), 0)
    assert 50 not in [x["item_id"] for x in out[0]["items"]]
    assert out[0]["model_version"] == 0 and taste(state) is None     # beta 0: the model is not used


def test_the_blend_adds_beta_times_the_taste_cosine_to_the_cooccurrence_score():
    rng = np.random.default_rng(11)
    vectors = {i: rng.standard_normal(4) for i in range(1, 9)}
    index = ranker.ItemIndex(10)
    for i, v in vectors.items():
        index.put(_item(i, v))
    counts = ((2, 3.0), (3, 2.0), (4, 1.0), (5, 1.0))
    index.put(NeighborCounts(1, 100, 4.0, counts))
    for j, c in counts:
        index.put(NeighborCounts(j, 100, 4.0, ((1, c),)))
    cfg = CFG.replace(embedding_weight=0.5, embedding_candidates=2, top_n=8)
    _, out = ranker.on_request(None, Request(9, 1, 1_000, ((1, 5.0, 1_000),), ((1, 5.0),)), index, cfg, 0)
    taste = _unit(vectors[1])
    cos = {j: float(_unit(v) @ taste) for j, v in vectors.items()}
    # co-occurrence: seed weight 5 x cosine C / sqrt(N N) (an index without shrinkage)
    co = {j: 5.0 * c / 4.0 for j, c in counts}
    nominated = [j for j in sorted((j for j in vectors if j != 1), key=lambda j: -cos[j])[:2] if cos[j] > 0]
    want = {j: co.get(j, 0.0) + 0.5 * cos[j] for j in set(co) | set(nominated)}
    got = {x["item_id"]: x["score"] for x in out[0]["items"]}
    assert set(got) == set(want)
    assert all(got[j] == pytest.approx(want[j], rel=1e-5) for j in want)
    assert [x["item_id"] for x in out[0]["items"]] == sorted(want, key=lambda j: (-want[j], j))


def test_a_state_saved_before_embeddings_is_read_and_int8_state_is_smaller():
    index = ranker.ItemIndex(10)
    for i in range(1, 4):
        index.put(_item(i, np.random.default_rng(i).standard_normal(48), precision="int8"))
    old = ({"x": 1.0}, 500, {1: 500}, 500, 0)      # five fields: no taste
    request = Request(9, 1, 1_000, ((2, 5.0, 1_000),), ((2, 5.0),))
    state, out = ranker.on_request(old, request, index, CFG, 0)
    assert taste(state)[0] == 1 and out[0]["model_version"] == 1
    f32, _ = ranker.on_request(old, request, index, CFG.replace(embedding_precision="float32"), 0)
    assert len(pickle.dumps(f32)) - len(pickle.dumps(state)) >= 3 * 48 - 8
    assert len(pickle.dumps(_item(1, np.ones(48), precision="float32"))) - \
        len(pickle.dumps(_item(1, np.ones(48), precision="int8"))) >= 3 * 48 - 8


def test_embedding_settings_are_validated():
    with pytest.raises(ConfigError) as err:
        JobConfig(embedding_weight=-1.0, embedding_candidates=-2, embedding_precision="int4")
    for fragment in ("embedding_weight must be", "embedding_candidates must be", "embedding_precision must be"):
        assert fragment in str(err.value)


def test_a_nominated_item_outside_the_cooccurrence_pool_keeps_its_cooccurrence_score():
    # top_n 1: the pool is the 4 best by co-occurrence; item 7 is the 6th but nearest by embedding
    index = ranker.ItemIndex(10)
    vecs = {j: [1.0, 0.0] if j in (1, 7) else [0.0, 1.0] for j in range(1, 8)}
    for j, v in vecs.items():
        index.put(_item(j, v))
    counts = tuple((j, 8.0 - j) for j in range(2, 8))      # C: 2 -> 6, ..., 7 -> 1
    index.put(NeighborCounts(1, 100, 16.0, counts))
    for j, c in counts:
        index.put(NeighborCounts(j, 100, 16.0, ((1, c),)))
    cfg = CFG.replace(top_n=1, embedding_weight=1.0, embedding_candidates=1)
    _, out = ranker.on_request(None, Request(9, 1, 1_000, ((1, 5.0, 1_000),), ((1, 5.0),)), index, cfg, 0)
    # 2: 5 x 6/16 = 1.875; 7: 5 x 1/16 + 1 x cos 1 = 1.3125; a 7 joined with co 0 would score 1
    assert [(x["item_id"], x["score"]) for x in out[0]["items"]] == [(2, 1.875)]
    _, out = ranker.on_request(None, Request(9, 1, 1_000, ((1, 5.0, 1_000),), ((1, 5.0),)), index,
                                  cfg.replace(embedding_weight=1.7), 0)
    # 7: 0.3125 + 1.7 = 2.0125 > 2: 1.875; with co 0 it would be 1.7 and lose
    assert [x["item_id"] for x in out[0]["items"]] == [7]
    assert out[0]["items"][0]["score"] == pytest.approx(2.0125)
    assert out[0]["items"][0]["reason"] == "because you liked t1"


def test_an_int8_taste_keeps_following_a_heavy_user():
    # 300 events of item 1, then 300 of item 2, no decay between them: the sum is
    # 300 x e1 + 300 x e2. Rounded to nearest, each addition of e2 (under half a step of a
    # component near 300) would be lost and the taste would stay on item 1.
    index = ranker.ItemIndex(10)
    e1, e2 = np.array([1.0, 0, 0, 0]), _unit([1.0, 1.0, 0, 0])
    index.put(_item(1, e1, precision="int8"))
    index.put(_item(2, e2, precision="int8"))
    state = None
    for n in range(600):
        item = 1 if n < 300 else 2
        state, _ = ranker.on_request(state, Request(9, n + 1, 1_000, ((item, 1.0, 1_000),), ((item, 1.0),)),
                                        index, CFG, 0)
    got, want = embedding.unpack(taste(state)[1]), 300 * e1 + 300 * e2
    # Rounded to nearest: got = 300 x e1, cosine 0.92, component 1 at 0. Dithered, each
    # packing errs by up to a step (about 2 here) either way: 300 of them add up to about
    # 10% of component 1 (one standard deviation, over users), so the bounds are loose.
    assert float(_unit(got) @ _unit(want)) > 0.99
    assert abs(got[1] - want[1]) < 0.4 * want[1]


def test_dithered_int8_packing_is_unbiased():
    """Averaged over seeds, a dithered vector comes back as it was (to nearest, each
    component would be off by its rounding, up to half a step, whatever the seed)."""
    v = np.random.default_rng(3).standard_normal(48).astype(np.float32)
    packs = [embedding.pack(v, "int8", dither=seed) for seed in range(4_000)]
    step = packs[0][2]
    mean = np.mean([embedding.unpack(p) for p in packs], axis=0)
    # one packing errs by under a step, so the mean of 4,000 by about step / 126 (sd)
    assert np.max(np.abs(mean - v)) < 0.05 * step
    assert all(np.max(np.abs(embedding.unpack(p) - v)) < step * (1 + 1e-5) for p in packs)


def test_a_model_is_used_once_all_its_records_arrived_and_the_previous_one_until_then():
    index = ranker.ItemIndex(10)
    old, new = {1: [1, 0, 0], 2: [0, 1, 0], 3: [0, 0, 1]}, {1: [0, 1, 0], 2: [0, 0, 1], 3: [1, 0, 0]}

    def record(i, vec, version):
        return ItemInfo.of({"item_id": i, "title": f"t{i}", "tags": [], "deleted": False, "embedding": vec,
                            "model_version": version, "model_size": 3}, "float32")

    for i, v in old.items():
        assert index.model_version == 0
        index.put(record(i, v, 5))
    assert index.model_version == 5
    index.put(record(1, new[1], 6))
    index.put(record(2, new[2], 6))
    # model 6 is being published: model 5 stays in use, whole (item 1's vector too)
    assert index.model_version == 5 and np.allclose(index.vector(1), old[1]) and np.allclose(index.vector(3), old[3])
    index.put(record(3, new[3], 6))
    assert index.model_version == 6 and all(np.allclose(index.vector(i), v) for i, v in new.items())
    # a restore meets the same latest records in any order and ends on the same model
    for order in ([3, 1, 2], [2, 3, 1]):
        restored = ranker.ItemIndex(10)
        for i in order:
            restored.put(record(i, new[i], 6))
        assert restored.model_version == 6 and all(np.allclose(restored.vector(i), new[i]) for i in new)


def test_a_taste_of_other_dimensions_than_the_model_is_rebuilt_not_used():
    # a restore can meet a model's records in another order, and a first record of other
    # dimensions than the rest then sets the model's dimensions
    index = ranker.ItemIndex(10)
    index.put(_item(1, [1.0, 0, 0], version=5))
    saved = ({}, 1_000, {1: 1_000}, 1_000, 0, (5, embedding.pack(np.ones(4, dtype=np.float32), "float32")))
    request = Request(9, 2, 1_000, ((1, 5.0, 1_000),), ((1, 5.0),))
    state, out = ranker.on_request(saved, request, index, CFG, 0)
    assert out[0]["model_version"] == 5
    assert np.allclose(embedding.unpack(taste(state)[1]), [6.0, 0, 0])   # rebuilt (1 x item 1) plus the event (5)


@pytest.mark.parametrize("values, want", [([1e20, 1e20], [0.70710678, 0.70710678]), ([1e-30, 0.0], [1.0, 0.0]),
                                          ([3.0e38, -3.0e38], [0.70710678, -0.70710678]), ([0.0, 0.0], [0.0, 0.0])])
def test_any_finite_embedding_comes_to_unit_length(values, want):
    assert np.allclose(embedding.unpack(_item(1, values).embedding), want)
