"""The pipeline with a model in the catalog: packed embeddings travel through the catalog
decoder and the rankers' broadcast state, lists carry the model version, and an item with
an embedding and no events at all is recommended by it."""

import numpy as np
import pytest

from flink_jobs.codec import AvroCodec
from flink_jobs.config import MINUTE, JobConfig
from reco_tools.synth import Synth, SynthConfig

pytestmark = pytest.mark.job

NEW_ITEM = 8_888


def test_the_pipeline_ranks_with_the_catalogs_model():
    from lab.inmemory import run_pipeline

    synth = Synth(SynthConfig(events=300, users=20, items=40, clusters=3, seed=9))
    events = sorted(synth.events(), key=lambda e: e["event_time"])
    rng = np.random.default_rng(1)
    cluster = {r["item_id"]: int(r["tags"][0].split("-")[1]) for r in synth.catalog()}

    def near(c):   # the cluster's axis, a little noise
        return (np.eye(3)[c] + 0.05 * rng.standard_normal(3)).tolist()

    catalog = [{**r, "embedding": near(cluster[r["item_id"]]), "model_version": 3} for r in synth.catalog()]
    catalog.append({**catalog[0], "item_id": NEW_ITEM, "title": "new", "embedding": [1.0, 0.0, 0.0]})
    # beta large: the embedding decides, and the 3 nearest items are nominated
    cfg = JobConfig(parallelism=2, top_n=3, recent_items=5, seeds=3, pair_span_ms=30 * MINUTE,
                    bucket_ms=10 * MINUTE, cooccurrence_window_ms=60 * MINUTE, max_out_of_orderness_ms=0,
                    embedding_weight=50.0, embedding_candidates=3)
    codec = AvroCodec("reco.UserEvent")
    # the events wait until every ranking subtask holds the whole catalog, as in a job
    # started on a published model
    def catalog_loaded(run):
        loaded = run.gauge("Ranker", "catalogItems")
        return loaded is not None and min(loaded) == len(catalog)
    out = run_pipeline([codec.encode(e) for e in events], catalog, cfg, watermark_interval_ms=1,
                       holds={0: catalog_loaded})

    lists = out["recommendations"]
    assert len(lists) == len(events)
    assert {r["model_version"] for r in lists} <= {0, 3}
    modelled = [r for r in lists if r["model_version"] == 3]
    assert len(modelled) > len(lists) // 2
    with_new = [r for r in lists if NEW_ITEM in [x["item_id"] for x in r["items"]]]
    assert with_new and all(r["model_version"] == 3 for r in with_new)
    assert all(x["reason"] == "close to your taste" for r in with_new for x in r["items"] if x["item_id"] == NEW_ITEM)
    # the new item sits on cluster 0's axis: the users it goes to have consumed cluster 0
    seen: dict[int, set] = {}
    zero_before = {}
    for e in events:
        seen.setdefault(e["user_id"], set()).add(cluster.get(e["item_id"]))
        zero_before[(e["user_id"], e["event_time"])] = 0 in seen[e["user_id"]]
    assert len({r["user_id"] for r in with_new}) >= 3
    assert all(zero_before[(r["user_id"], r["event_time"])] for r in with_new)
