"""reco-embed's training and records (no Kafka here; tests/integration/test_embed_cli.py
runs the command against the local broker)."""

import numpy as np
import pytest

from reco_tools.embed import train, with_embeddings

DAY = 86_400_000


def _events(rows, t=0):
    return [{"event_id": f"e{n}", "user_id": u, "item_id": i, "event_type": "RATING", "value": v,
             "event_time": t + n} for n, (u, i, v) in enumerate(rows)]


def test_vectors_put_co_consumed_items_together_and_are_unit_length():
    # users 0-19 like items 1-4, users 20-39 like items 11-14: two groups that never meet
    rows = [(u, i, 5.0) for u in range(20) for i in (1, 2, 3, 4)]
    rows += [(u, i, 5.0) for u in range(20, 40) for i in (11, 12, 13, 14)]
    rows += [(u, 99, 3.5) for u in range(40)]          # below 4 stars: not a positive, no vector
    rows += [(50, 5, 5.0)]                             # never consumed with another item: no vector
    vectors = train(_events(rows), dims=2)
    assert sorted(vectors) == [1, 2, 3, 4, 11, 12, 13, 14]
    assert all(v.shape == (2,) and np.linalg.norm(v) == pytest.approx(1.0) for v in vectors.values())
    assert float(vectors[1] @ vectors[2]) > 0.9 and float(vectors[1] @ vectors[11]) < 0.1


def test_only_the_most_consumed_items_are_trained_and_other_event_types_count():
    # popularity: 1 by 12 users, 2 by 10, 3 by 8, 4 by 6, 5 by 4; every user also has item 1
    rows = [(u, i, 5.0) for i, n in ((1, 12), (2, 10), (3, 8), (4, 6), (5, 4)) for u in range(n)]
    assert sorted(train(_events(rows), dims=2, max_items=4)) == [1, 2, 3, 4]
    assert sorted(train(_events(rows), dims=2)) == [1, 2, 3, 4, 5]
    view = {"event_id": "v", "user_id": 0, "item_id": 6, "event_type": "VIEW", "value": None, "event_time": 10_000}
    assert 6 in train(_events(rows) + [view], dims=2)
    assert train(_events([(0, 1, 2.0), (0, 2, 3.5)])) == {}


def test_records_carry_the_vector_and_version_and_leave_out_deleted_items():
    catalog = [{"item_id": i, "title": f"t{i}", "tags": [], "embedding": None, "model_version": 0,
                "updated_at": 0, "deleted": i == 3} for i in (1, 2, 3)]
    vectors = {1: np.array([0.6, 0.8], dtype=np.float32), 3: np.array([1.0, 0.0], dtype=np.float32)}
    got = with_embeddings(catalog, vectors, 77, 1_234)
    assert got == [{"item_id": 1, "title": "t1", "tags": [], "embedding": [pytest.approx(0.6), pytest.approx(0.8)],
                    "model_version": 77, "model_size": 1, "updated_at": 1_234, "deleted": False}]


def test_the_catalog_with_a_model_keeps_the_items_without_a_vector_as_they_were():
    from reco_tools.embed import catalog_with_model

    catalog = [{"item_id": i, "title": f"t{i}", "tags": [], "embedding": None, "model_version": 0,
                "updated_at": 0, "deleted": i == 3} for i in (1, 2, 3)]
    got = catalog_with_model(catalog, {1: np.array([1.0, 0.0], dtype=np.float32),
                                       3: np.array([0.0, 1.0], dtype=np.float32)}, 9, 5)
    assert [r["item_id"] for r in got] == [1, 2, 3]
    assert got[0]["embedding"] == [1.0, 0.0] and got[0]["model_version"] == 9 and got[0]["model_size"] == 1
    assert got[1:] == catalog[1:]
