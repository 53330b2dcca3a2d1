"""What the job must produce for a given event stream, computed the slow, batch way: the
model of a failure-free run, written from the specification in docs/algorithm.md.

An oracle, so it shares no code with the job: it imports nothing from ``udfs/`` or
``flink_jobs/`` (standard library only; ``tests/unit/test_oracle.py`` checks that). A bug in
the job's math therefore cannot hide by also being in its check. ``cfg`` is anything with
``flink_jobs.config.JobConfig``'s field names.

``events`` are decoded ``reco.UserEvent`` dicts in the order the job receives them (each
user's events in source order). The model assumes what a failure-free run with these
settings guarantees: no late event (none behind the watermark, see docs/algorithm.md "Event time and lateness"),
and ``user_ttl_ms`` longer than ``pair_span_ms``, so that an expired user would have had no
partner anyway. Counts are exact only with pruning off (at most M neighbors ever held per
item); with pruning on, N(i), the versions and the list ranking still are, a published
count is at most the true one, and ``surely_unpruned`` tells the lists that are exact.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Container, Iterable, Mapping, Sequence

# docs/algorithm.md "Event weights": interest signal of one event.
EVENT_WEIGHTS = {"VIEW": 1.0, "CLICK": 2.0, "ADD_TO_CART": 3.0, "PURCHASE": 5.0}
VERSIONS_PER_MS = 1024
POOL = 4            # docs/algorithm.md "Ranking": the interest term is read for the 4N best candidates
MIN_TAG_WEIGHT = 1e-4


def interest_weight(event: Mapping) -> float:
    """VIEW 1, CLICK 2, ADD_TO_CART 3, PURCHASE 5; a RATING 2 x (stars - 2.5), 0 at or below
    2.5 stars (or without stars). 0 means consumed but no interest."""
    kind = event["event_type"]
    if kind == "RATING":
        stars = event.get("value")
        return 2.0 * (stars - 2.5) if stars is not None and stars > 2.5 else 0.0
    if kind not in EVENT_WEIGHTS:
        raise ValueError(f"unknown event type {kind!r}")
    return EVENT_WEIGHTS[kind]


def _bucket(t: int, bucket_ms: int) -> int:
    return t - t % bucket_ms


# ---------------------------------------------------------------- versions and lists


def expected_versions(events: list[dict]) -> dict[int, list[int]]:
    """user -> the version of each of its events, in order: max(event_time x 1024, previous + 1),
    previous 0 for a user's first event."""
    versions: dict[int, list[int]] = defaultdict(list)
    for e in events:
        mine = versions[e["user_id"]]
        previous = mine[-1] if mine else 0
        mine.append(max(e["event_time"] * VERSIONS_PER_MS, previous + 1))
    return dict(versions)


def expected_lists(events: list[dict], debounce_ms: int) -> dict[int, list[int]]:
    """user -> the versions that get a list: all, or the last of each burst (a burst takes
    the user's events before its first event's time + debounce_ms)."""
    versions = expected_versions(events)
    if not debounce_ms:
        return versions
    times: dict[int, list[int]] = defaultdict(list)
    for e in events:
        times[e["user_id"]].append(e["event_time"])
    out = {}
    for user, mine in versions.items():
        lists, start = [], None
        for n, t in enumerate(times[user]):
            if start is not None and t >= start + debounce_ms:
                lists.append(mine[n - 1])   # the burst ends with the event before this one
                start = None
            if start is None:
                start = t
        out[user] = lists + [mine[-1]]
    return out


# ---------------------------------------------------------------- the recent-items window


def _pairings(events: Iterable[dict], cfg):
    """For every event, ``(event, weight, partners, window)``: partners is None for an event
    of weight 0 (it neither enters the window nor pairs); window is the user's window after
    the event, ``[(t, arrival, item, weight)]`` oldest first.

    docs/algorithm.md: an interest event's partners are the items of the user's window as it stood
    before it, other than its own item, within T of its event time (either direction). The
    item then enters the window once (an earlier entry of it goes), the window is ordered by
    event time (equal times: the later arrival is newer) and keeps its W newest, whatever
    their age.
    """
    windows: dict[int, list[tuple[int, int, int, float]]] = defaultdict(list)  # (t, arrival, item, weight)
    for arrival, e in enumerate(events):
        w = interest_weight(e)
        user, item, t = e["user_id"], e["item_id"], e["event_time"]
        if w <= 0:
            yield e, w, None, windows[user]
            continue
        stay = [entry for entry in windows[user] if entry[2] != item]
        windows[user] = sorted(stay + [(t, arrival, item, w)])[-cfg.recent_items:]
        yield e, w, [entry[2] for entry in stay if abs(t - entry[0]) <= cfg.pair_span_ms], windows[user]


def _pair_weight(partners: int) -> float:
    return 1.0 / math.log2(2 + partners)


def batch_pairs(events: list[dict], cfg) -> dict[int, list[tuple[int, int, float]]]:
    """item i -> every (j, t, w) co-occurrence the job counts for i: both directions of each
    pair, at the time t of the event that formed it, w = 1/log2(2 + that event's partners)."""
    pairs: dict[int, list] = defaultdict(list)
    for e, _, partners, _ in _pairings(events, cfg):
        if not partners:
            continue
        w = _pair_weight(len(partners))
        item, t = e["item_id"], e["event_time"]
        for j in partners:
            pairs[item].append((j, t, w))
            pairs[j].append((item, t, w))
    return pairs


def batch_own(events: list[dict], cfg) -> dict[int, list[int]]:
    """item -> the event time of each interest event (weight > 0) on it: what N(i) counts,
    1 per event whatever its weight."""
    own: dict[int, list[int]] = defaultdict(list)
    for e, w, _, _ in _pairings(events, cfg):
        if w > 0:
            own[e["item_id"]].append(e["event_time"])
    return own


def _live(t: int, end: int, cfg) -> bool:
    """Whether a count at time t is in the window of the list published at bucket end
    ``end``: its bucket starts before ``end`` and ends after ``end - L``."""
    b = _bucket(t, cfg.bucket_ms)
    return b < end and b + cfg.bucket_ms > end - cfg.cooccurrence_window_ms


def window_counts(pairs: list[tuple[int, int, float]], end: int, cfg) -> dict[int, float]:
    """C(i, j) over the window that ends at bucket end ``end``: what a list published then holds."""
    counts: dict[int, float] = defaultdict(float)
    for j, t, w in pairs:
        if _live(t, end, cfg):
            counts[j] += w
    return dict(counts)


def window_own_counts(own_times: Iterable[int], end: int, cfg) -> float:
    """N(i) over the window that ends at bucket end ``end`` (``own_times``: ``batch_own(...)[i]``)."""
    return float(sum(1 for t in own_times if _live(t, end, cfg)))


def publication_ends(pair_list: list[tuple[int, int, float]], own_times: Iterable[int], cfg) -> list[int]:
    """The bucket ends at which item i publishes (with pruning off): the end of every bucket
    in which it received counts (own or a pair), and that end + L, when the bucket leaves
    the window; each only if the window then holds at least one pair."""
    buckets = {_bucket(t, cfg.bucket_ms) for t in own_times} | {_bucket(t, cfg.bucket_ms) for _, t, _ in pair_list}
    ends = {b + cfg.bucket_ms for b in buckets} | {b + cfg.bucket_ms + cfg.cooccurrence_window_ms for b in buckets}
    return sorted(e for e in ends if any(_live(t, e, cfg) for _, t, _ in pair_list))


def expected_windows(events: list[dict], cfg, until: int | None = None) -> dict[tuple[int, int], tuple[float, dict]]:
    """Every co-occurrence list a failure-free run publishes (pruning off), ``(item, end) ->
    (N(i), {j: C(i, j)})``; only ends <= ``until`` when given (a live job publishes up to its
    last watermark; a bounded input publishes all)."""
    pairs, own = batch_pairs(events, cfg), batch_own(events, cfg)
    out = {}
    for item in set(pairs) | set(own):
        for end in publication_ends(pairs.get(item, []), own.get(item, []), cfg):
            if until is None or end <= until:
                out[(item, end)] = (window_own_counts(own.get(item, []), end, cfg),
                                    window_counts(pairs.get(item, []), end, cfg))
    return out


def surely_unpruned(pair_list: list[tuple[int, int, float]], end: int, cfg, lag_ms: int = 0) -> bool:
    """Whether item i's list at bucket end ``end`` cannot have been pruned, so that its counts
    are exact even with pruning on. Pruning happens at the item's publications, in the
    buckets before each; the list's buckets (after ``end - L``) are touched only by those up
    to ``end``, which see buckets that started after ``end - 2L - bucket``. At most M
    distinct neighbors there: no prune. (``lag_ms`` widens the range for a job that prunes
    on arrival, where buckets that came early after a watermark jump count too.)"""
    low = end - 2 * cfg.cooccurrence_window_ms - cfg.bucket_ms
    high = end + lag_ms
    return len({j for j, t, _ in pair_list if low < _bucket(t, cfg.bucket_ms) <= high}) <= cfg.neighbors_per_item


# ---------------------------------------------------------------- scores


def _shrunk_cosine(c: float, n_i: float, n_j: float, shrinkage: float) -> float:
    # docs/algorithm.md: C(i,j) / sqrt(N(i) N(j)) x C(i,j) / (C(i,j) + lambda); 0 when N(i) or N(j) is 0
    return 0.0 if n_i <= 0 or n_j <= 0 else (c / math.sqrt(n_i * n_j)) * (c / (c + shrinkage))


def expected_scores(counts: Mapping[int, float], n_i: float, n_known: Mapping[int, float],
                    shrinkage: float = 0.0) -> dict[int, float]:
    """The similarity C(i,j) / sqrt(N(i) N(j)) x C(i,j) / (C(i,j) + ``shrinkage``) for each
    neighbor j of i. N(j) is ``n_known[j]`` (j's count from the last list of j the ranker
    had), or C(i,j) when unknown or smaller; 0 when N(i) is 0 (the item's own events left
    the window while pairs remain)."""
    return {j: _shrunk_cosine(c, n_i, max(n_known.get(j, 0.0), c), shrinkage) for j, c in counts.items()}


def expected_neighbor_list(counts: Mapping[int, float], n_i: float, n_known: Mapping[int, float],
                           cfg, every: dict | None = None) -> list[tuple[int, float, float]]:
    """The published list ``[(j, score, C(i,j))]``: the M largest counts (ties: lower id),
    scored, the K best by score (ties: lower id). ``every``, when given, receives each held
    neighbor's ``(score, C(i,j))`` (for ``list_differences``)."""
    held = sorted(((j, c) for j, c in counts.items() if c > 0), key=lambda jc: (-jc[1], jc[0]))
    held = dict(held[:cfg.neighbors_per_item])
    scores = expected_scores(held, n_i, n_known, cfg.similarity_shrinkage)
    if every is not None:
        every.update({j: (scores[j], held[j]) for j in held})
    best = sorted(held, key=lambda j: (-scores[j], j))[:cfg.fragment_size]
    return [(j, scores[j], held[j]) for j in best]


def unexplained_scores(record: Mapping, n_seen: Mapping[int, Iterable[float]], shrinkage: float = 0.0,
                       tol: float = 1e-9) -> list[int]:
    """The neighbors of a published list (``reco.ItemNeighbors``) whose score no N(j) in
    ``n_seen[j]`` (N(j) values of j's lists the ranker may have had), nor the fallback
    C(i,j), explains. Empty when every score is a similarity of the list's own counts."""
    n_i = record["item_count"]
    wrong = []
    for nb in record["neighbors"]:
        j, c = nb["item_id"], nb["co_count"]
        options = [c] + [max(n, c) for n in n_seen.get(j, ())]
        want = [_shrunk_cosine(c, n_i, n, shrinkage) for n in options]
        if not any(abs(nb["score"] - w) <= tol * max(1.0, abs(w)) for w in want):
            wrong.append(j)
    return wrong


# ---------------------------------------------------------------- trending


def expected_trending(events: list[dict], cfg, until: int | None = None,
                      listed: Container[int] | None = None) -> dict[int, list[tuple[int, float]]]:
    """bucket end -> the trending list published then: at the end e of every bucket with an
    interest event, the ``trending_size`` items with the most interest events in the buckets
    that start before e and end after e - trending window (ties: lower id), among the items
    of ``listed`` (the catalog's, not deleted; None: every item)."""
    own = batch_own(events, cfg)
    ends = {_bucket(t, cfg.bucket_ms) + cfg.bucket_ms for times in own.values() for t in times}
    out = {}
    for end in sorted(ends):
        if until is not None and end > until:
            continue
        totals = {}
        for item, times in own.items():
            n = sum(1 for t in times if _bucket(t, cfg.bucket_ms) < end
                    and _bucket(t, cfg.bucket_ms) + cfg.bucket_ms > end - cfg.trending_window_ms)
            if n and (listed is None or item in listed):
                totals[item] = float(n)
        top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:cfg.trending_size]
        if top:
            out[end] = top
    return out


# ---------------------------------------------------------------- a user's list


def _latest_catalog(catalog: Iterable[Mapping]) -> dict[int, Mapping]:
    out = {}
    for r in catalog:
        out[r["item_id"]] = r
    return out


def expected_top(events: list[dict], neighbors: Mapping[int, Sequence[tuple[int, float]]],
                 catalog: Iterable[Mapping], trending: Sequence[tuple[int, float]], cfg,
                 every: dict | None = None) -> list[tuple[int, float, str]]:
    """The list ``[(item, score, reason)]`` for the last event of ``events`` (one user's events
    in the order the job received them, up to and including the one whose list this is),
    when the ranker held ``neighbors`` (item -> its published list ``[(j, similarity)]``, best
    first), the ``catalog`` (``reco.ItemFeatures`` dicts, the latest per item wins) and the
    ``trending`` list (``[(item, count)]``, best first).

    Brute force from docs/algorithm.md: every candidate scored; ``every``, when given, receives
    each scored candidate's ``(score, reason)`` (for ``top_differences``). A pause longer
    than ``user_ttl_ms`` + ``max_out_of_orderness_ms`` starts the user over (its state
    expired); see ``ttl_ambiguous`` for pauses near the TTL.
    """
    items = _latest_catalog(catalog)
    tags = {i: tuple(sorted(set(r["tags"]))) for i, r in items.items()}
    deleted = {i for i, r in items.items() if r["deleted"]}
    title = lambda i: items[i]["title"] if i in items else f"item {i}"  # noqa: E731

    life, newest = [], None   # the user's events since its state was last created
    for e in events:
        if newest is not None and e["event_time"] - newest > cfg.user_ttl_ms + cfg.max_out_of_orderness_ms:
            life = []
        life.append(e)
        newest = e["event_time"] if newest is None else max(newest, e["event_time"])

    # seeds: the last `seeds` items of the window after the last event, each with its
    # latest interest weight
    window = []
    for *_, window in _pairings(life, cfg):
        pass
    seeds = [(item, w) for _, _, item, w in window[-cfg.seeds:]]

    # consumed: every item of the user's events (any weight), the max_consumed most recent
    consumed: dict[int, int] = {}
    for e in life:
        consumed[e["item_id"]] = max(consumed.get(e["item_id"], e["event_time"]), e["event_time"])
        if len(consumed) > cfg.max_consumed:
            keep = sorted(consumed.items(), key=lambda kv: (kv[1], kv[0]))[-cfg.max_consumed:]
            consumed = dict(keep)
    excluded = set(consumed) | deleted

    # interest: sum of weight x 2^-(age / half-life) x the item's unit tag vector, as of the
    # newest event time; a tag whose weight fell below 1e-4 is dropped at each event
    vec: dict[str, float] = {}
    as_of = 0
    for e in life:
        t, w = e["event_time"], interest_weight(e)
        if t > as_of:
            vec = {k: v * 0.5 ** ((t - as_of) / cfg.interest_half_life_ms) for k, v in vec.items()}
            as_of = t
        item_tags = tags.get(e["item_id"], ())
        if item_tags and w > 0:
            part = w * 0.5 ** ((as_of - t) / cfg.interest_half_life_ms) / math.sqrt(len(item_tags))
            for tag in item_tags:
                vec[tag] = vec.get(tag, 0.0) + part
        vec = {k: v for k, v in vec.items() if v >= MIN_TAG_WEIGHT}
    norm = math.sqrt(sum(v * v for v in vec.values()))

    def interest(item: int) -> float:
        item_tags = tags.get(item, ())
        if not item_tags or not vec:
            return 0.0
        return sum(vec.get(tag, 0.0) for tag in item_tags) / (norm * math.sqrt(len(item_tags)))

    # every candidate: co-occurrence score and the seed that gave most (ties: lower seed id)
    co: dict[int, float] = {}
    best: dict[int, tuple[float, int]] = {}
    for seed, w in sorted(seeds):
        for j, sim in neighbors.get(seed, ()):
            part = w * sim
            co[j] = co.get(j, 0.0) + part
            if j not in best or part > best[j][0]:
                best[j] = (part, seed)
    n = cfg.top_n
    candidates = [j for j in co if j not in excluded]
    if len(candidates) > POOL * n:
        threshold = sorted((co[j] for j in candidates), reverse=True)[POOL * n - 1]
        candidates = [j for j in candidates if co[j] >= threshold]
    alpha = cfg.interest_weight
    final = {j: (1.0 - alpha) * co[j] + alpha * interest(j) for j in candidates}
    if every is not None:
        every.update({j: (final[j], f"because you liked {title(best[j][1])}") for j in candidates})
    top = sorted(candidates, key=lambda j: (-final[j], j))[:n]
    out = [(j, final[j], f"because you liked {title(best[j][1])}") for j in top]
    for item, _ in trending:
        if len(out) >= n:
            break
        if item not in excluded and item not in {x for x, _, _ in out}:
            out.append((item, 0.0, "trending now"))
    return out


def ttl_ambiguous(events: list[dict], cfg, stream_gap_ms: int = 0) -> bool:
    """Whether one user's ``events`` pause for about ``user_ttl_ms``: between TTL - debounce
    and TTL + out-of-orderness + ``stream_gap_ms`` (the longest pause between two events of
    the whole stream). The job drops a user's state when the watermark passes its last
    event + TTL, and the watermark moves with everybody's events, so whether the state
    survived such a pause is not decided by this user's events alone (``expected_top``
    assumes it survived pauses up to TTL + out-of-orderness and expired after longer ones)."""
    low = cfg.user_ttl_ms - cfg.debounce_ms
    high = cfg.user_ttl_ms + cfg.max_out_of_orderness_ms + stream_gap_ms
    newest = None
    for e in events:
        if newest is not None and low <= e["event_time"] - newest <= high:
            return True
        newest = e["event_time"] if newest is None else max(newest, e["event_time"])
    return False


def list_differences(got: Sequence[tuple], want: Sequence[tuple], every: Mapping[int, tuple] | None = None,
                     tol: float = 1e-9) -> list[str]:
    """How a ranked list ``[(id, score, extra)]`` differs from the expected one: [] when they
    agree. Scores compare to ``tol`` (relative above 1), float extras too. At a rank where
    the ids differ, the listed id is still right when ``every`` (each candidate's expected
    ``(score, extra)``) gives it the score of that rank: floating-point near-ties (sums in
    another order) may fall either way."""
    close = lambda a, b: abs(a - b) <= tol * max(1.0, abs(a), abs(b))  # noqa: E731
    same = lambda a, b: close(a, b) if isinstance(a, float) and isinstance(b, float) else a == b  # noqa: E731
    diffs = []
    if len(got) != len(want):
        diffs.append(f"{len(got)} entries, expected {len(want)}")
    if len({g[0] for g in got}) != len(got):
        diffs.append("an id is listed twice")
    for n, (g, w) in enumerate(zip(got, want)):
        ok = close(g[1], w[1]) and (
            (g[0] == w[0] and same(g[2], w[2]))
            or (every is not None and g[0] in every and close(every[g[0]][0], g[1]) and same(every[g[0]][1], g[2])))
        if not ok:
            diffs.append(f"#{n}: {tuple(g)} expected {tuple(w)}")
    return diffs


def top_differences(got: Sequence[Mapping], want: Sequence[tuple[int, float, str]], every: Mapping | None = None,
                    tol: float = 1e-9) -> list[str]:
    """How a published list's ``items`` differ from ``expected_top``'s: [] when they agree
    (``every``: the candidates' scores that ``expected_top`` filled in)."""
    return list_differences([(g["item_id"], g["score"], g["reason"]) for g in got], want, every, tol)
