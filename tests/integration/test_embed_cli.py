"""reco-embed against the local broker: it reads the catalog and the events, and publishes
each catalog item's embedding with the model version (topics of the test's own)."""

import uuid

import numpy as np
import pytest
from kafka.admin import NewTopic

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from reco_tools import embed
from reco_tools.kafka_io import consume, make_consumer, make_producer, produce, produce_catalog
from reco_tools.topics import connect_admin

pytestmark = pytest.mark.integration


def test_reco_embed_publishes_vectors_of_the_catalog_items_with_its_model_version(stack, capsys):
    run = uuid.uuid4().hex[:8]
    events_topic, items_topic = f"test.embed.events.{run}", f"test.embed.items.{run}"
    admin = connect_admin(stack.bootstrap)
    admin.create_topics([NewTopic(events_topic, 2, 1), NewTopic(items_topic, 1, 1)])
    admin.close()
    catalog = [{"item_id": i, "title": f"t{i}", "tags": ["x"], "embedding": None, "model_version": 0,
                "updated_at": 0, "deleted": False} for i in (1, 2, 3, 11, 12, 13, 50)]
    rows = [(u, i) for u in range(20) for i in (1, 2, 3)] + [(u, i) for u in range(20, 40) for i in (11, 12, 13)]
    rows += [(0, 77)]                                  # consumed, but not in the catalog
    codec = AvroCodec("reco.UserEvent")
    producer = make_producer(stack.bootstrap)
    produce_catalog(producer, catalog, progress=False, topic=items_topic)
    produce(producer, items_topic, [(contracts.record_key(3), None)], progress=False)   # 3 deleted (tombstone)
    produce(producer, events_topic, ((contracts.record_key(u), codec.encode(
        {"event_id": f"e{n}", "user_id": u, "item_id": i, "event_type": "RATING", "value": 5.0,
         "event_time": 1_700_000_000_000 + n})) for n, (u, i) in enumerate(rows)), progress=False)
    producer.close()

    args = ["--bootstrap", stack.bootstrap, "--events-topic", events_topic, "--items-topic", items_topic,
            "--dims", "2", "--model-version", "42", "--idle", "3"]
    assert embed.main(args + ["--dry-run"]) == 0
    assert "model 42: 7 item vectors of 2 dimensions" in capsys.readouterr().out
    assert embed.main(args) == 0

    items = AvroCodec("reco.ItemFeatures")
    consumer = make_consumer(stack.bootstrap, items_topic)
    published = [items.decode(r.value) for r in consume(consumer, idle_timeout_s=3) if r.value is not None]
    consumer.close()
    modelled = {r["item_id"]: r for r in published if r["model_version"] == 42}
    assert sorted(modelled) == [1, 2, 11, 12, 13]      # not 3 (deleted), 50 (no events), 77 (no catalog record)
    assert all(r["title"] == f"t{i}" and len(r["embedding"]) == 2 for i, r in modelled.items())
    vec = {i: np.array(r["embedding"]) for i, r in modelled.items()}
    assert vec[1] @ vec[2] > 0.9 and vec[1] @ vec[11] < 0.1
