"""What the API answers: the client's results as JSON bodies, their ETags, and the pydantic
models that describe them in the OpenAPI document.

Bodies are built as plain dicts and sent as they are: the models are the documentation (a
unit test checks every body against its model), not a second pass over each response,
which would cost more than the Redis read.
"""

from __future__ import annotations

from typing import List, Mapping, Optional

from pydantic import BaseModel, Field

import reco_client

Titles = Mapping[int, str]


# --- OpenAPI models -------------------------------------------------------------------------

class Item(BaseModel):
    item_id: int
    score: float = Field(description="Ranking score, higher first. In a fallback: the item's count in the "
                                     "trending window.")
    reason: str = Field(description="'because you liked <title>', 'close to your taste' or 'trending now'.")
    title: Optional[str] = Field(None, description="The item's title when the API was given titles (--titles), "
                                                   "else null.")


class UserRecommendations(BaseModel):
    user_id: int
    items: List[Item] = Field(description="Best first, at most n.")
    version: int = Field(description="The list's version, strictly increasing per user. In a fallback: "
                                     "trending's version.")
    event_time_ms: int = Field(description="Event time (epoch ms) of the event that triggered the list; in a "
                                           "fallback, trending's.")
    generated_at_ms: Optional[int] = Field(description="Wall-clock time (epoch ms) the job ranked the list; "
                                                       "null in a fallback.")
    model_version: int = Field(description="The embedding model the list used (0: none).")
    fallback: bool = Field(description="True when the user has no list of their own (new, or no event within "
                                       "the TTL) and the items are trending instead.")


class Neighbor(BaseModel):
    item_id: int
    score: float
    co_count: float = Field(description="Co-occurrences with the item in the window.")
    title: Optional[str] = None


class SimilarItems(BaseModel):
    item_id: int
    title: Optional[str] = None
    neighbors: List[Neighbor] = Field(description="Most similar first, at most n.")
    item_count: float = Field(description="The item's own count in the window.")
    version: int
    event_time_ms: int


class TrendingItem(BaseModel):
    item_id: int
    count: float
    title: Optional[str] = None


class TrendingList(BaseModel):
    items: List[TrendingItem] = Field(description="Most consumed first, at most n.")
    version: int
    event_time_ms: int


class Health(BaseModel):
    status: str = Field(description="'ok': Redis answered.")
    trending_version: Optional[int] = Field(description="null while there is no trending list yet.")
    trending_event_time_ms: Optional[int]
    trending_age_s: Optional[float] = Field(description="Seconds between now and trending's event time: the "
                                                        "age of the newest list the job published (on a replay of "
                                                        "old events, the age of those events).")


class Error(BaseModel):
    error: str = Field(description="not_found, unavailable, incompatible_document, ...")
    detail: str


# --- bodies ---------------------------------------------------------------------------------

def user_body(rec: reco_client.Recommendations, titles: Titles) -> dict:
    return {"user_id": rec.user_id,
            "items": [{"item_id": i.item_id, "score": i.score, "reason": i.reason, "title": titles.get(i.item_id)}
                      for i in rec.items],
            "version": rec.version, "event_time_ms": rec.event_time_ms, "generated_at_ms": rec.generated_at_ms,
            "model_version": rec.model_version, "fallback": rec.fallback}


def similar_body(found: reco_client.SimilarItems, titles: Titles) -> dict:
    return {"item_id": found.item_id, "title": titles.get(found.item_id),
            "neighbors": [{"item_id": n.item_id, "score": n.score, "co_count": n.co_count,
                           "title": titles.get(n.item_id)} for n in found.neighbors],
            "item_count": found.item_count, "version": found.version, "event_time_ms": found.event_time_ms}


def trending_body(top: reco_client.Trending, titles: Titles) -> dict:
    return {"items": [{"item_id": t.item_id, "count": t.count, "title": titles.get(t.item_id)} for t in top.items],
            "version": top.version, "event_time_ms": top.event_time_ms}


# --- ETags ----------------------------------------------------------------------------------
# A list's version names its content, so it is the ETag. The kind goes in too: a user's own
# list and the trending list standing in for it have unrelated version sequences, and a
# cached fallback must never match the user's first list of their own.

def user_etag(rec: reco_client.Recommendations) -> str:
    return f'"{"fallback" if rec.fallback else "user"}-{rec.version}"'


def similar_etag(found: reco_client.SimilarItems) -> str:
    return f'"similar-{found.version}"'


def trending_etag(top: reco_client.Trending) -> str:
    return f'"trending-{top.version}"'


def etag_matches(if_none_match: Optional[str], etag: str) -> bool:
    """RFC 9110's weak comparison of If-None-Match (a list, or ``*``) with ``etag``."""
    if not if_none_match:
        return False
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in if_none_match.split(","))
