"""Candidates from the seeds' neighbor lists, blended scores, top-N with reasons.

Arrays (numpy) where a request touches hundreds to thousands of neighbor entries: a user
with 20 seeds of 200 neighbors each merges 4,000 (item, score) pairs per list.
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterable, NamedTuple

import numpy as np

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_EMPTY_FLOATS = np.zeros(0, dtype=np.float64)


class Neighbors(NamedTuple):
    """An item's scored neighbor list, best first."""
    ids: np.ndarray      # int64
    sims: np.ndarray     # float64, similarity
    counts: np.ndarray   # float64, co-occurrence count

    @classmethod
    def of(cls, rows: list[tuple[int, float, float]]) -> "Neighbors":
        if not rows:
            return cls(_EMPTY_IDS, _EMPTY_FLOATS, _EMPTY_FLOATS)
        ids, sims, counts = zip(*rows)
        return cls(np.array(ids, dtype=np.int64), np.array(sims, dtype=np.float64),
                   np.array(counts, dtype=np.float64))


class Candidates(NamedTuple):
    """Merged candidates, by item id: co-occurrence score and the seed that gave most."""
    ids: np.ndarray
    scores: np.ndarray
    best_seed: np.ndarray


def merge(seeds: Iterable[tuple[int, float, Neighbors]]) -> Candidates:
    """A candidate's score sums seed weight x similarity over every seed that lists it; its
    seed is the one whose part is largest (ties: the lowest seed id)."""
    seeds = sorted((s for s in seeds if len(s[2].ids)), key=lambda s: s[0])
    if not seeds:
        return Candidates(_EMPTY_IDS, _EMPTY_FLOATS, _EMPTY_IDS)
    ids = np.concatenate([nb.ids for _, _, nb in seeds])
    parts = np.concatenate([w * nb.sims for _, w, nb in seeds])
    seed_of = np.concatenate([np.full(len(nb.ids), s, dtype=np.int64) for s, _, nb in seeds])
    unique, inverse = np.unique(ids, return_inverse=True)
    scores = np.bincount(inverse, weights=parts, minlength=len(unique))
    # per candidate (ascending, as in unique), its largest part first, then the earliest seed
    order = np.lexsort((np.arange(len(parts)), -parts, inverse))
    firsts = order[np.r_[True, inverse[order][1:] != inverse[order][:-1]]]
    return Candidates(unique, scores, seed_of[firsts])


def blend(co_score: float, interest: float, alpha: float) -> float:
    """Final score: (1 - alpha) x co-occurrence + alpha x interest similarity."""
    return (1.0 - alpha) * co_score + alpha * interest


def rank(candidates: Candidates, interest: Callable[[int], float], exclude: np.ndarray, n: int, alpha: float,
         trending: Iterable[tuple[int, float]] = (), title: Callable[[int], str] = str,
         pool: int | None = 4, allowed: np.ndarray | None = None) -> list[tuple[int, float, str]]:
    """Top-N ``(item, score, reason)``, best first (ties by item id), never an item of
    ``exclude``, and only items of ``allowed`` when given (sorted ids).

    The blend reads the interest of the ``pool`` x N best candidates by co-occurrence only
    (all of them with ``pool`` None): interest reorders the strongest candidates, it does not
    dig items out of the tail. When there are fewer than ``n``, trending items fill the list
    (the cold-start fallback) in trending order, with score 0.
    """
    ids, scores, seeds = candidates
    if len(ids) and (len(exclude) or allowed is not None):
        keep = ~np.isin(ids, exclude) if len(exclude) else np.ones(len(ids), dtype=bool)
        if allowed is not None:   # sorted already: a binary search each, no sort of the catalog
            at = np.minimum(np.searchsorted(allowed, ids), max(len(allowed) - 1, 0))
            keep &= allowed[at] == ids if len(allowed) else False
        ids, scores, seeds = ids[keep], scores[keep], seeds[keep]
    if pool is not None and len(ids) > pool * n:
        # the pool x N best, and every candidate tied with the last of them (ties go by id)
        threshold = -np.partition(-scores, pool * n - 1)[pool * n - 1]
        top = scores >= threshold
        ids, scores, seeds = ids[top], scores[top], seeds[top]
    scored = [(blend(co, interest(item), alpha), item, seed)
              for item, co, seed in zip(ids.tolist(), scores.tolist(), seeds.tolist())]
    best = heapq.nsmallest(n, scored, key=lambda r: (-r[0], r[1]))
    out = [(item, score, f"because you liked {title(seed)}") for score, item, seed in best]
    if len(out) < n:
        taken = {item for item, _, _ in out}
        excluded = set(exclude.tolist())
        for item, _ in trending:
            if len(out) >= n:
                break
            if item not in taken and item not in excluded and _member(item, allowed):
                out.append((item, 0.0, "trending now"))
                taken.add(item)
    return out


def _member(item: int, allowed: np.ndarray | None) -> bool:
    if allowed is None:
        return True
    at = int(np.searchsorted(allowed, item))
    return at < len(allowed) and int(allowed[at]) == item
