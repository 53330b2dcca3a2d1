"""Candidates from neighbor fragments, blended scores, top-N with reasons."""

from __future__ import annotations

import heapq
from typing import Callable, Container, Iterable

# (seed item, seed weight, [(neighbor, similarity, count), ...])
Fragment = tuple[int, float, list[tuple[int, float, float]]]


def merge_fragments(fragments: Iterable[Fragment]) -> dict[int, tuple[float, int]]:
    """Candidate -> (co-occurrence score, the seed that contributed most).

    A candidate's score sums seed weight x similarity over every seed that lists it.
    """
    merged: dict[int, list] = {}
    for seed, seed_weight, neighbors in sorted(fragments, key=lambda f: f[0]):
        for item, sim, _ in neighbors:
            part = seed_weight * sim
            entry = merged.setdefault(item, [0.0, seed, -1.0])
            entry[0] += part
            if part > entry[2]:
                entry[1], entry[2] = seed, part
    return {item: (score, seed) for item, (score, seed, _) in merged.items()}


def blend(co_score: float, interest: float, alpha: float) -> float:
    """Final score: (1 - alpha) x co-occurrence + alpha x interest similarity."""
    return (1.0 - alpha) * co_score + alpha * interest


def rank(candidates: dict[int, tuple[float, int]], interest: Callable[[int], float],
         exclude: Container[int], n: int, alpha: float,
         trending: Iterable[tuple[int, float]] = (),
         title: Callable[[int], str] = str) -> list[tuple[int, float, str]]:
    """Top-N ``(item, score, reason)``, best first, never an excluded item.

    Co-occurrence candidates come first; when there are fewer than ``n``, trending items
    fill the list (the cold-start fallback) in trending order, with score 0.
    """
    scored = [(blend(co, interest(item), alpha), item, seed)
              for item, (co, seed) in candidates.items() if item not in exclude]
    best = heapq.nsmallest(n, scored, key=lambda r: (-r[0], r[1]))
    out = [(item, score, f"because you liked {title(seed)}") for score, item, seed in best]
    if len(out) < n:
        taken = {item for item, _, _ in out}
        for item, _ in trending:
            if len(out) >= n:
                break
            if item not in taken and item not in exclude:
                out.append((item, 0.0, "trending now"))
                taken.add(item)
    return out
