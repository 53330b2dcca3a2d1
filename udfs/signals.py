"""Event weights, time decay and the user's interest vector."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# How much one event says about interest. Ratings are weighted by their stars instead.
EVENT_WEIGHTS = {"VIEW": 1.0, "CLICK": 2.0, "ADD_TO_CART": 3.0, "PURCHASE": 5.0}
NEUTRAL_STARS = 2.5


def event_weight(event_type: str, value: float | None = None) -> float:
    """Interest signal of one event; 0 means "not interest" (e.g. a 2-star rating)."""
    if event_type == "RATING":
        return max(0.0, (value or 0.0) - NEUTRAL_STARS) * 2.0  # 5 stars -> 5, 3 stars -> 1
    return EVENT_WEIGHTS[event_type]


def decay(dt_ms: float, half_life_ms: float) -> float:
    """Factor by which a signal ``dt_ms`` old has faded (1 for dt <= 0)."""
    return 1.0 if dt_ms <= 0 else 0.5 ** (dt_ms / half_life_ms)


@dataclass
class InterestVector:
    """Exponentially decayed sum of item feature vectors (tags), as of ``as_of`` ms."""

    weights: dict[str, float] = field(default_factory=dict)
    as_of: int = 0


def add_interest(vec: InterestVector, tags: list[str] | tuple[str, ...], weight: float, t: int,
                 half_life_ms: float, min_weight: float = 1e-4) -> InterestVector:
    """The vector after one event at event time ``t`` with the item's ``tags``.

    An item's feature vector is its tags with unit L2 norm. A late event (t < as_of) is
    decayed to ``as_of``; a newer one first decays the whole vector to ``t``. The result
    is the same whatever the order of the events. Tiny weights are dropped.
    """
    if t > vec.as_of:
        f = decay(t - vec.as_of, half_life_ms)
        weights = {k: w * f for k, w in vec.weights.items()}
        as_of = t
    else:
        weights = dict(vec.weights)
        as_of = vec.as_of
    if tags and weight > 0:
        contribution = weight * decay(as_of - t, half_life_ms) / math.sqrt(len(tags))
        for tag in tags:
            weights[tag] = weights.get(tag, 0.0) + contribution
    return InterestVector({k: w for k, w in weights.items() if w >= min_weight}, as_of)
