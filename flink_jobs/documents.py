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

from dataclasses import dataclass
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


# --- What each document kind is, for its JSON Schema and TypeScript type ----------------
# reco_tools/doc_schemas.py generates schemas/json/ and schemas/typescript/ from this table
# and the Avro records it names, so the functions above, the generated files and the docs
# describe one thing. A field added to a document above is added here too; the unit tests
# compare real documents with the generated schemas both ways.

@dataclass(frozen=True)
class AddedField:
    """A field a document has beyond its Avro record. ``default``: what a reader takes when
    the field is absent (documents written before it existed); None: always present."""
    name: str
    json_type: str   # a JSON Schema type name: "integer", "number", "string"
    doc: str
    default: int | None = None


@dataclass(frozen=True)
class DocumentKind:
    """``key``: the Redis key, ``{field}`` standing for that field of the record;
    ``record``: the Avro record (full name) the document is, as JSON, plus ``added``."""
    name: str
    key: str
    record: str
    added: tuple[AddedField, ...]


FORMAT_FIELD = AddedField(
    "format", "integer",
    f"The document's format: {DOCUMENT_FORMAT} for the fields described here. Adding a field keeps it; removing, "
    "renaming or retyping one raises it, so that a reader refuses a format newer than it knows instead of "
    "misreading the document.",
    default=1)
# An item list and trending are versioned by their event time (see similar_document).
EVENT_TIME_VERSION = AddedField(
    "version", "integer",
    "The list's version, which the store's compare-and-set keeps from going back: its event_time (one list per "
    "bucket end).")

DOCUMENTS = (
    DocumentKind("user", f"{contracts.REDIS_PREFIX}:user:{{user_id}}", "reco.Recommendations", (FORMAT_FIELD,)),
    DocumentKind("similar", f"{contracts.REDIS_PREFIX}:item:{{item_id}}:similar", "reco.ItemNeighbors",
                 (EVENT_TIME_VERSION, FORMAT_FIELD)),
    DocumentKind("trending", contracts.TRENDING_KEY, "reco.Trending",
                 (EVENT_TIME_VERSION, FORMAT_FIELD)),
)
