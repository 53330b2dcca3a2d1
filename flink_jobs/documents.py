"""The JSON documents the job keeps in Redis, built here and nowhere else (the job, the
refill tool and the schema generator share them; the client reads them).

Each is the Avro record of its Kafka topic as JSON, plus two fields:
- ``version``: the list's version, which the store's compare-and-set keeps from going back
  (a user list has one of its own; an item list's is its event time);
- ``format``: :data:`DOCUMENT_FORMAT`. Adding a field keeps it; removing, renaming or
  retyping one raises it, so that a reader built for an older format refuses a document it
  would misread instead of guessing. Documents written before it existed lack it: format 1.

Trending has no topic; its document is described by ``reco.Trending.avsc`` all the same.
No Flink import: the client package depends on this module.
"""

from __future__ import annotations

from typing import Any

from flink_jobs import contracts

DOCUMENT_FORMAT = 1


def user_document(rec: dict) -> tuple[str, dict]:
    """A reco.Recommendations record as it is stored: the record itself."""
    return contracts.user_recommendations_key(rec["user_id"]), {**rec, "format": DOCUMENT_FORMAT}


def similar_document(rec: dict) -> tuple[str, dict]:
    """A reco.ItemNeighbors record, versioned by its event time (one list per bucket end)."""
    return contracts.item_similar_key(rec["item_id"]), {**rec, "version": rec["event_time"], "format": DOCUMENT_FORMAT}


def trending_document(trending: Any) -> tuple[str, dict]:
    """A udfs.records.Trending (``t``, ``top`` as (item, count) pairs) as a reco.Trending document."""
    return contracts.TRENDING_KEY, {"version": trending.t, "event_time": trending.t, "format": DOCUMENT_FORMAT,
                                    "items": [{"item_id": i, "count": c} for i, c in trending.top]}
