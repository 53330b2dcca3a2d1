"""Read the job's recommendations from Redis without Flink: ``pip install reco-flink``.

    from reco_client import RecoClient
    with RecoClient(redis_url="redis://127.0.0.1:6379/0") as client:
        recs = client.recommendations(42, n=10)      # recs.fallback: trending stood in
        similar = client.similar(1, n=5)
        top = client.trending(n=10)

    from reco_client import decode
    record = decode("reco.recommendations.v1", message.value)   # a Kafka record's value

:class:`AsyncRecoClient` has the same methods for asyncio. Errors are :class:`RecoError`s:
:class:`NotFound`, :class:`Unavailable`, :class:`AccessDenied`, :class:`IncompatibleDocument`;
a bad id or ``n`` is a ValueError.
"""

from reco_client.client import AsyncRecoClient, RecoClient, Settings
from reco_client.model import (AccessDenied, IncompatibleDocument, Neighbor, NotFound, RecoError, RecommendedItem,
                               Recommendations, SimilarItems, Trending, TrendingItem, Unavailable)
from reco_client.records import decode

__all__ = ["AccessDenied", "AsyncRecoClient", "IncompatibleDocument", "Neighbor", "NotFound", "RecoClient", "RecoError",
           "RecommendedItem", "Recommendations", "Settings", "SimilarItems", "Trending", "TrendingItem", "Unavailable", "decode"]
