"""The settings each step reads: a small typed part of the job's configuration per
operator, so a step's signature says what it depends on. ``of(cfg)`` takes them from
anything with these attribute names (``flink_jobs.config.JobConfig``, say)."""

from __future__ import annotations

from typing import NamedTuple


def _of(cls, cfg):
    return cls(*(getattr(cfg, name) for name in cls._fields))


class UserSettings(NamedTuple):
    recent_items: int       # W
    pair_span_ms: int       # T
    bucket_ms: int
    user_ttl_ms: int

    of = classmethod(_of)


class ItemSettings(NamedTuple):
    bucket_ms: int
    cooccurrence_window_ms: int   # L
    neighbors_per_item: int       # M

    of = classmethod(_of)


class TrendingSettings(NamedTuple):
    bucket_ms: int
    trending_window_ms: int
    trending_size: int

    of = classmethod(_of)


class RankerSettings(NamedTuple):
    recent_items: int
    seeds: int
    top_n: int
    interest_weight: float
    interest_half_life_ms: int
    max_consumed: int
    user_ttl_ms: int
    debounce_ms: int
    embedding_weight: float
    embedding_candidates: int
    embedding_precision: str

    of = classmethod(_of)
