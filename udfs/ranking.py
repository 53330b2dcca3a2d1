"""Candidates from the seeds' neighbor lists, blended scores, top-N with reasons.

Arrays (numpy) where a request touches hundreds to thousands of neighbor entries: a user
with 20 seeds of 200 neighbors each merges 4,000 (item, score) pairs per list.
"""

from __future__ import annotations

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
    """Merged candidates, by item id, with their co-occurrence score. The (seed, neighbor)
    entries they came from are kept to name a candidate's seed, which only the few items
    of a list need (``best_seed``)."""
    ids: np.ndarray        # sorted, unique
    scores: np.ndarray
    of_entry: np.ndarray   # per entry: its candidate's position in ids
    parts: np.ndarray      # per entry: seed weight x similarity
    seed_of: np.ndarray    # per entry: the seed

    def best_seed(self, positions: np.ndarray) -> np.ndarray:
        """For the candidates at ``positions``: the seed whose part is largest (ties: the
        lowest seed id, the earliest entry); -1 for a position of -1 (not a candidate)."""
        wanted = np.zeros(len(self.ids), dtype=bool)
        wanted[positions[positions >= 0]] = True
        picked = np.flatnonzero(wanted[self.of_entry])
        order = picked[np.lexsort((picked, -self.parts[picked], self.of_entry[picked]))]
        owner = self.of_entry[order]
        firsts = order[np.r_[True, owner[1:] != owner[:-1]]] if len(order) else order
        seed = dict(zip(self.of_entry[firsts].tolist(), self.seed_of[firsts].tolist()))
        return np.array([seed.get(p, -1) for p in np.asarray(positions).tolist()], dtype=np.int64)


_NO_CANDIDATES = Candidates(_EMPTY_IDS, _EMPTY_FLOATS, _EMPTY_IDS, _EMPTY_FLOATS, _EMPTY_IDS)


def merge(seeds: Iterable[tuple[int, float, Neighbors]]) -> Candidates:
    """A candidate's score sums seed weight x similarity over every seed that lists it; its
    seed is the one whose part is largest (ties: the lowest seed id)."""
    seeds = sorted((s for s in seeds if len(s[2].ids)), key=lambda s: s[0])
    if not seeds:
        return _NO_CANDIDATES
    ids = np.concatenate([nb.ids for _, _, nb in seeds])
    parts = np.concatenate([w * nb.sims for _, w, nb in seeds])
    seed_of = np.repeat(np.array([s for s, _, _ in seeds], dtype=np.int64), [len(nb.ids) for _, _, nb in seeds])
    unique, inverse = np.unique(ids, return_inverse=True)
    scores = np.bincount(inverse, weights=parts, minlength=len(unique))
    return Candidates(unique, scores, inverse, parts, seed_of)


TASTE_REASON = "close to your taste"


def blend(co_score, interest, alpha: float, taste=0.0, beta: float = 0.0):
    """Final score: (1 - alpha) x co-occurrence + alpha x interest similarity + beta x taste
    (the embedding cosine); numbers or arrays."""
    return (1.0 - alpha) * co_score + alpha * interest + beta * taste


def rank(candidates: Candidates, interest: Callable[[np.ndarray], np.ndarray], exclude: np.ndarray, n: int,
         alpha: float, trending: Iterable[tuple[int, float]] = (), title: Callable[[int], str] = str,
         pool: int | None = 4, rows: Callable[[np.ndarray], np.ndarray] | None = None,
         taste: Callable[[np.ndarray], np.ndarray] | None = None, beta: float = 0.0,
         nominated: tuple[np.ndarray, np.ndarray] = (_EMPTY_IDS, _EMPTY_IDS)) -> list[tuple[int, float, str]]:
    """Top-N ``(item, score, reason)``, best first (ties by item id), never an item of
    ``exclude``, and with ``rows`` only items it gives a row (not -1). ``interest`` and
    ``taste`` score items by their rows (their ids without ``rows``): the interest and
    taste similarity, weighed by ``alpha`` and ``beta`` (``blend``). Each item's row is
    looked up once.

    The blend reads the similarities of the ``pool`` x N best candidates by co-occurrence
    only (all of them with ``pool`` None), plus the ``nominated`` items (the nearest by
    embedding, ``(ids, rows)`` sorted by id, each one that may be listed: ``ItemIndex.nearest``
    gives them so), which join with their co-occurrence score, 0 if none: interest reorders
    the strongest candidates, it does not dig items out of the tail. When there are fewer than
    ``n``, trending items fill the list (the cold-start fallback) in trending order, with
    score 0.
    """
    exclude_sorted = np.sort(exclude)
    lookup = rows or (lambda xs: xs)

    def admitted(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mask of ``xs`` that may be listed, and their rows."""
        xs_rows = lookup(xs)
        keep = xs_rows >= 0 if rows is not None else np.ones(len(xs), dtype=bool)
        if len(exclude):
            keep &= ~find_sorted(exclude_sorted, xs)[1]
        return keep, xs_rows

    ids, scores, item_rows, at = candidates.ids, candidates.scores, _EMPTY_IDS, _EMPTY_IDS
    if len(ids):
        keep, item_rows = admitted(ids)
        ids, scores, item_rows, at = ids[keep], scores[keep], item_rows[keep], np.flatnonzero(keep)
    if pool is not None and len(ids) > pool * n:
        # the pool x N best, and every candidate tied with the last of them (ties go by id)
        threshold = -np.partition(-scores, pool * n - 1)[pool * n - 1]
        top = scores >= threshold
    else:
        top = np.ones(len(ids), dtype=bool)
    nominated_ids, nominated_rows = nominated
    if len(nominated_ids):
        known_at, known = find_sorted(ids, nominated_ids)
        top[known_at[known]] = True
        new = np.flatnonzero(~known)
        picked = np.flatnonzero(top)
        ids = np.concatenate([ids[picked], nominated_ids[new]])
        scores = np.concatenate([scores[picked], np.zeros(len(new))])
        item_rows = np.concatenate([item_rows[picked], nominated_rows[new]])
        at = np.concatenate([at[picked], np.full(len(new), -1, dtype=np.int64)])
    else:
        ids, scores, item_rows, at = ids[top], scores[top], item_rows[top], at[top]
    final = blend(scores, interest(item_rows), alpha, taste(item_rows) if taste is not None and beta else 0.0, beta)
    best = np.lexsort((ids, -final))[:n]
    seeds = candidates.best_seed(at[best])
    out = [(item, score, f"because you liked {title(seed)}" if seed >= 0 else TASTE_REASON)
           for item, score, seed in zip(ids[best].tolist(), final[best].tolist(), seeds.tolist())]
    if len(out) < n:
        taken = {item for item, _, _ in out}
        excluded = set(exclude.tolist())
        for item, _ in trending:
            if len(out) >= n:
                break
            if item not in taken and item not in excluded and (rows is None or rows(np.array([item]))[0] >= 0):
                out.append((item, 0.0, "trending now"))
                taken.add(item)
    return out


def find_sorted(keys: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary search of each id in the sorted ``keys``: ``(position, found)``; a position
    is only meaningful where found."""
    if not len(keys):
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    at = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
    return at, keys[at] == ids
