"""Names other teams depend on: Kafka topics, record keys and Redis keys.

They are built here and nowhere else. Renaming any of them breaks a consumer, so a
change of contract means a new ``v2`` name beside the old one, never an edit in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USER_EVENTS_TOPIC = "reco.user-events.v1"
ITEMS_TOPIC = "reco.items.v1"
RECOMMENDATIONS_TOPIC = "reco.recommendations.v1"
ITEM_NEIGHBORS_TOPIC = "reco.item-neighbors.v1"
DEAD_LETTER_TOPIC = "reco.user-events.dlq.v1"

# Avro record (full name) carried by each topic.
TOPIC_RECORDS = {
    USER_EVENTS_TOPIC: "reco.UserEvent",
    ITEMS_TOPIC: "reco.ItemFeatures",
    RECOMMENDATIONS_TOPIC: "reco.Recommendations",
    ITEM_NEIGHBORS_TOPIC: "reco.ItemNeighbors",
    DEAD_LETTER_TOPIC: "reco.DeadLetter",
}

_COMPACTED = {"cleanup.policy": "compact"}
# The broker refuses a record stamped more than an hour ahead of its clock. The job's event
# time follows record timestamps but never runs ahead of its own clock; this keeps abuse
# out of the topic as well.
EVENT_TIMESTAMP_AHEAD_MS = 3_600_000
_EVENTS = {"message.timestamp.type": "CreateTime", "message.timestamp.after.max.ms": str(EVENT_TIMESTAMP_AHEAD_MS)}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(event_partitions: int = 4) -> tuple[TopicSpec, ...]:
    """Every topic the job reads or writes, as the local stack creates it."""
    return (
        TopicSpec(USER_EVENTS_TOPIC, event_partitions, _EVENTS),
        TopicSpec(ITEMS_TOPIC, 1, _COMPACTED),
        TopicSpec(RECOMMENDATIONS_TOPIC, event_partitions, _COMPACTED),
        TopicSpec(ITEM_NEIGHBORS_TOPIC, event_partitions),
        TopicSpec(DEAD_LETTER_TOPIC, 1),
    )


def record_key(entity_id: int) -> bytes:
    """Kafka record key for a user or an item: its id as decimal ASCII.

    Text rather than Avro so that any consumer (and the broker's compaction) can use it,
    and so that all records of one user land in one partition, in order.
    """
    return str(int(entity_id)).encode("ascii")


# --- Redis ---------------------------------------------------------------------------
REDIS_PREFIX = "reco:v1"


def user_recommendations_key(user_id: int) -> str:
    """Top-N for the frontend: JSON with items, version and timestamps."""
    return f"{REDIS_PREFIX}:user:{int(user_id)}"


def item_similar_key(item_id: int) -> str:
    """An item's most similar items: JSON."""
    return f"{REDIS_PREFIX}:item:{int(item_id)}:similar"


TRENDING_KEY = f"{REDIS_PREFIX}:trending"
