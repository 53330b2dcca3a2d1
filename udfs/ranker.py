"""Keyed by user: the list's version, debounce and seeds, the decayed interest vector,
consumed items, and the top-N list, from the user's events.

The item side is read from an ``ItemIndex``: the catalog, trending, and every item's
neighbor counts as of its last bucket end, delivered to each ranking subtask (broadcast).
Ranking then needs no round trip: a request is answered from the index as it stands.

State is a ``RankerState``, kept as plain data (``plain`` / ``of``).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from udfs import cooccurrence as co
from udfs import embedding, ttl
from udfs.debounce import Burst, add_event
from udfs.ranking import Neighbors, find_sorted, merge, rank
from udfs.recent import add_recent
from udfs.records import Event, ItemInfo, NeighborCounts, Request, Trending
from udfs.settings import RankerSettings
from udfs.signals import InterestVector, add_interest
from udfs.versioning import VERSIONS_PER_MS, next_version

LAYOUT = "ranker/3"   # the tag of the plain state: a new layout gets a new tag and a migration


class RankerState(NamedTuple):
    weights: dict           # the interest vector's weights, {tag: weight} as of ``as_of``
    as_of: int
    consumed: dict          # {item: last event time}
    last_seen: int          # event time of the last event (TTL)
    ttl_timer: int
    taste: tuple | None     # (model_version, packed vector): the embedding interest (udfs.embedding)
    version: int            # of the user's last list
    recent: list            # udfs.recent: [(item, t, weight)], oldest first; the newest are the seeds
    burst: tuple | None     # the open debounce burst (udfs.debounce.Burst as a plain tuple)

    def plain(self) -> tuple:
        return (LAYOUT, *self)

    @classmethod
    def of(cls, plain: tuple | None) -> "RankerState":
        if plain is None:
            return cls({}, 0, {}, 0, 0, None, 0, [], None)
        if plain[0] != LAYOUT:
            plain = _migrate(plain)
        return cls(*plain[1:])


def _migrate(plain: tuple) -> tuple:
    """A state of an earlier layout, in this one. Layout "ranker/2" had the first six fields;
    layout 1 was untagged: the same six, or five when written before embeddings (no taste).

    The version, recent items and burst were UserActivity's then, and this state cannot read
    that one. So the version restarts above the newest millisecond the user's lists had
    (``last_seen``): above each of them unless the user sent more than 1,023 events at or
    before that millisecond. The recent items restart as the consumed ones, newest last,
    each of weight 1. A burst open then (``debounce_ms`` on) is lost."""
    if plain[0] == "ranker/2":
        plain = plain[1:]
    elif isinstance(plain[0], str):
        raise ValueError(f"ranker state of layout {plain[0]!r}: written by a newer version of the job?")
    elif len(plain) == 5:
        plain = (*plain, None)
    consumed, last_seen = plain[2], plain[3]
    version = (last_seen + 1) * VERSIONS_PER_MS - 1 if last_seen else 0
    recent = [(item, t, 1.0) for item, t in sorted(consumed.items(), key=lambda kv: (kv[1], kv[0]))]
    return (LAYOUT, *plain, version, recent, None)


class _Growing:
    """An int64 array that grows by doubling: appends cost O(1) amortised."""

    def __init__(self):
        self.a, self.n = np.zeros(64, dtype=np.int64), 0

    def extend(self, values) -> int:
        """Append ``values``; return where they start."""
        start, self.n = self.n, self.n + len(values)
        if self.n > len(self.a):
            self.a = np.concatenate([self.a, np.zeros(max(self.n, 2 * len(self.a)) - len(self.a), dtype=np.int64)])
        self.a[start:self.n] = values
        return start


class _GrowingRows:
    """A float32 matrix (rows x dims) whose rows are set by number; it grows by doubling.
    As one model's vectors: ``size`` is how many the model has (0: unknown)."""

    def __init__(self, dims: int = 0, size: int = 0):
        self.a = np.zeros((64, dims), dtype=np.float32)
        self.ok = np.zeros(64, dtype=bool)    # rows that hold a vector
        self.count, self.size = 0, size

    def set(self, row: int, vec: np.ndarray | None) -> None:
        if row >= len(self.a):
            size = max(row + 1, 2 * len(self.a))
            self.a = np.concatenate([self.a, np.zeros((size - len(self.a), self.a.shape[1]), dtype=np.float32)])
            self.ok = np.concatenate([self.ok, np.zeros(size - len(self.ok), dtype=bool)])
        self.count += (vec is not None) - bool(self.ok[row])
        self.ok[row] = vec is not None
        self.a[row] = 0.0 if vec is None else vec

    @property
    def complete(self) -> bool:
        return self.count >= self.size


class ItemIndex:
    """What the ranker knows of items. Scored neighbor lists are cached per item until its
    counts change (a neighbor's N(j) is read when the list is scored).

    Embeddings: those of one model are used (``model_version``): the newest whose records
    have all arrived (as many vectors as its ``model_size`` says). While a newer model is
    being published the current one stays in use, whole; then the newer takes over and the
    older is dropped. An item whose latest record has no embedding has no vector, nor has
    one whose record is of a model older than the current one. The index holds vectors at
    float32, for search; what is checkpointed (broadcast state) is the catalog record,
    packed in the configured precision.

    The catalog is also kept as arrays, for ranking many candidates at once: each item's
    tag columns (a row of a table that only grows), and the recommendable items as a
    sorted base plus the changes since it was built. A catalog record costs O(its tags)
    and the base is rebuilt once the changes outnumber sqrt(items): a job that starts with
    a backlog reads catalog records and requests in turn, and rebuilding per record would
    cost O(items) per request. It is also rebuilt once lookups have read the changes beside
    it items / 32 times: after the catalog's first load, a few changes would otherwise stay
    beside the base for good, each lookup paying twice.
    """

    def __init__(self, fragment_size: int, shrinkage: float = 0.0):
        self.k = fragment_size
        self.shrinkage = shrinkage
        self.info: dict[int, ItemInfo] = {}
        self.deleted: set[int] = set()
        self.counts: dict[int, NeighborCounts] = {}
        self.trending: tuple = ()
        self.trending_time = 0                            # the event time of the trending list held
        self._scored: dict[int, Neighbors] = {}
        self._vocab: dict[str, int] = {}                  # tag -> column of the interest vector
        self._row: dict[int, int] = {}                    # item -> its row
        self._start, self._count, self._tags = _Growing(), _Growing(), _Growing()  # row -> its span of _tags
        self._base_ids = self._base_rows = np.zeros(0, dtype=np.int64)   # listed items, sorted, and their rows
        self._added: dict[int, int] = {}                  # listed since the base was built: item -> row
        self._removed: set[int] = set()                   # in the base, no longer listed
        self._changes: tuple | None = None                # the two above as sorted arrays; None: to redo
        self._reads_of_changes = 0                        # rows() calls that read them since the last rebuild
        self._item_of_row, self._listed = _Growing(), _Growing()   # row -> item; 1 when listed
        self._models: dict[int, _GrowingRows] = {}        # version -> row -> embedding: current and newer
        self._vecs = _GrowingRows()                       # the current model's (model_version's)
        self.model_version = 0
        # the rows nearest() searches (listed, with a vector); None: to redo
        self._search: np.ndarray | None = None
        self.rebuilds = self.compactions = 0
        self.embeddings_rejected = 0                      # of an older model, or not of their model's dims

    def put(self, msg) -> None:
        if isinstance(msg, NeighborCounts):
            self.counts[msg.item] = msg
            self._scored.pop(msg.item, None)
        elif isinstance(msg, ItemInfo):
            self._put_item(msg._replace(tags=tuple(dict.fromkeys(msg.tags))))  # a tag counts once
        elif isinstance(msg, Trending):
            self.trending, self.trending_time = msg.top, msg.t
        else:
            raise TypeError(f"not an item-side record: {msg!r}")

    def _put_item(self, msg: ItemInfo) -> None:
        item, old = msg.item, self.info.get(msg.item)
        self.info[item] = msg
        self._search = None
        (self.deleted.add if msg.deleted else self.deleted.discard)(item)
        if old is None or old.tags != msg.tags:
            columns = [self._vocab.setdefault(tag, len(self._vocab)) for tag in msg.tags]
            start = self._tags.extend(columns)
            row = self._row.get(item)
            if row is None:
                self._row[item] = self._start.extend([start])
                self._count.extend([len(columns)])
                self._item_of_row.extend([item])
                self._listed.extend([0])
            else:
                self._start.a[row], self._count.a[row] = start, len(columns)
        row = self._row[item]
        self._listed.a[row] = not msg.deleted
        self._put_vector(row, msg)
        if (old is None or old.deleted) == msg.deleted:
            return   # listed before as now
        self._changes = None
        if msg.deleted:
            if self._added.pop(item, None) is None:
                self._removed.add(item)
        elif item in self._removed:
            self._removed.discard(item)
        else:
            self._added[item] = self._row[item]
        if (len(self._added) + len(self._removed)) ** 2 > len(self._base_ids) + 1024:
            self._rebuild()

    def _put_vector(self, row: int, msg: ItemInfo) -> None:
        vec = None if msg.embedding is None else embedding.unpack(msg.embedding)
        version = msg.model_version
        if vec is None or version <= 0 or version < self.model_version:
            self.embeddings_rejected += vec is not None
            for model in self._models.values():   # the item's record carries no usable vector
                model.set(row, None)
            return
        model = self._models.get(version)
        if model is None:
            model = self._models[version] = _GrowingRows(len(vec), msg.model_size)
        if len(vec) != model.a.shape[1]:
            self.embeddings_rejected += 1
            vec = None
        model.size = max(model.size, msg.model_size)
        model.set(row, vec)
        for other in self._models.values():       # an item is in one model: its record's
            if other is not model and other is not self._vecs:
                other.set(row, None)
        newest = max((v for v, m in self._models.items() if v > self.model_version and m.complete), default=0)
        if newest:
            self.model_version, self._vecs = newest, self._models[newest]
            self._models = {v: m for v, m in self._models.items() if v >= newest}

    @property
    def dims(self) -> int:
        return self._vecs.a.shape[1]

    def vector(self, item: int) -> np.ndarray | None:
        """The item's unit embedding in the current model, or None."""
        row = self._row.get(item)
        return self._vecs.a[row] if row is not None and row < len(self._vecs.ok) and self._vecs.ok[row] else None

    def taste(self, u: np.ndarray | None) -> "Taste | None":
        """The user's embedding interest ``u`` against the catalog's embeddings (None when
        ``u`` is missing or zero)."""
        norm = float(np.sqrt(u @ u)) if u is not None else 0.0   # np.linalg.norm, without its checks
        if norm == 0.0:
            return None
        return Taste(self._vecs.a[:min(self._start.n, len(self._vecs.a))], u / norm)

    def nearest(self, taste: "Taste | None", n: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` listed items, not in ``exclude`` (sorted ids), whose embeddings are
        nearest to the taste by cosine, when that is positive (brute force over the
        catalog; ties by id): ``(ids, rows)``, sorted by id, each item's row as ``rows``
        gives it."""
        if taste is None or n <= 0:
            return _EMPTY, _EMPTY
        if self._search is None:
            rows = min(self._start.n, len(self._vecs.ok))
            self._search = np.flatnonzero(self._vecs.ok[:rows] & (self._listed.a[:rows] > 0))
        searchable = self._search
        scores = taste.cosines()[searchable]
        # The n best not excluded are among the n + |exclude| best of all (and those tied
        # with the last of them): cheaper than taking the excluded out of the whole catalog.
        k = n + len(exclude)
        floor = np.partition(scores, len(scores) - k)[len(scores) - k] if k < len(scores) else 0.0
        best = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores > 0)
        ids = self._item_of_row.a[searchable[best]]
        if len(exclude):
            keep = ~find_sorted(exclude, ids)[1]
            best, ids = best[keep], ids[keep]
        if len(best) > n:
            top = np.lexsort((ids, -scores[best]))[:n]
            best, ids = best[top], ids[top]
        order = np.argsort(ids)
        return ids[order], searchable[best[order]]

    def _rebuild(self) -> None:
        live = [(item, self._row[item]) for item in self.info.keys() - self.deleted]
        pairs = np.array(live, dtype=np.int64).reshape(-1, 2)
        order = np.argsort(pairs[:, 0], kind="stable")
        self._base_ids, self._base_rows = pairs[order, 0], pairs[order, 1]
        self._added, self._removed, self._changes, self._reads_of_changes = {}, set(), None, 0
        self.rebuilds += 1
        if self._tags.n > 2 * int(self._count.a[:self._start.n].sum()) + 4096:
            # mostly columns of replaced tags: copy the live ones (each row keeps its number)
            old, self._tags = self._tags.a, _Growing()
            for row in range(self._start.n):
                at, n = int(self._start.a[row]), int(self._count.a[row])
                self._start.a[row] = self._tags.extend(old[at:at + n].tolist())
            self.compactions += 1

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Each item's row, or -1 for an item that may not be recommended: one the catalog
        does not have or has deleted. (Events of an item the catalog does not know yet still
        count, and the item still becomes others' neighbor; it is recommended once its
        catalog record arrives.)"""
        ids = np.asarray(ids, dtype=np.int64)
        if self._added or self._removed:
            self._reads_of_changes += 1
            if 32 * self._reads_of_changes > len(self._base_ids) + 1024:
                self._rebuild()   # reading the changes beside the base has cost about what folding them in does
        rows = _lookup(self._base_ids, self._base_rows, ids)
        if self._added or self._removed:
            if self._changes is None:
                added = sorted(self._added.items())
                self._changes = (np.array([i for i, _ in added], dtype=np.int64),
                                 np.array([r for _, r in added], dtype=np.int64),
                                 np.array(sorted(self._removed), dtype=np.int64))
            added_ids, added_rows, removed = self._changes
            if len(removed):
                rows[find_sorted(removed, ids)[1]] = -1
            if len(added_ids):
                rows = np.where(rows < 0, _lookup(added_ids, added_rows, ids), rows)
        return rows

    def listed(self, item: int) -> bool:
        """Whether the catalog has ``item`` and has not deleted it."""
        return item in self.info and item not in self.deleted

    def interest(self, vec: InterestVector) -> Callable[[np.ndarray], np.ndarray]:
        """``score(rows)``: the cosine between ``vec`` and the unit tag vector of the item at
        each row (``rows(ids)``; 0 when either is empty or the row is -1), many at once."""
        if not vec.weights:
            return lambda rows: np.zeros(len(rows))
        norm = math.sqrt(sum(w * w for w in vec.weights.values()))
        v = np.zeros(len(self._vocab))
        for tag, w in vec.weights.items():
            column = self._vocab.get(tag)
            if column is not None:
                v[column] = w

        def score(rows: np.ndarray) -> np.ndarray:
            listed = rows >= 0
            start = np.where(listed, self._start.a[rows], 0)
            n = np.where(listed, self._count.a[rows], 0)
            dot = np.zeros(len(rows))
            for k in range(int(n.max(initial=0))):   # tag by tag, in the item's order
                has = n > k
                dot[has] += v[self._tags.a[start[has] + k]]
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(n > 0, dot / (norm * np.sqrt(n)), 0.0)
        return score

    def tags(self, item: int) -> tuple:
        info = self.info.get(item)
        return info.tags if info else ()

    def title(self, item: int) -> str:
        info = self.info.get(item)
        return info.title if info else f"item {item}"

    def neighbors(self, item: int) -> Neighbors:
        """Top-K of ``item`` by similarity, best first (ties by id), for ranking: items the
        catalog does not list yet count too (candidates once their record arrives)."""
        scored = self._scored.get(item)
        if scored is None:
            nc = self.counts.get(item)
            if nc is None:
                return Neighbors.of([])
            scored = self._scored[item] = self._top(dict(nc.counts), nc.n)
        return scored

    def _top(self, counts: dict[int, float], n: float) -> Neighbors:
        n_other = {j: self.counts[j].n for j in counts if j in self.counts}
        return Neighbors(*co.top_neighbors(counts, n, n_other, self.k, self.shrinkage))

    def neighbor_record(self, item: int) -> dict | None:
        """The published list of ``item`` (shaped like reco.ItemNeighbors): its top-K among
        the items the catalog lists now, or None when ``item`` itself is not listed. Listed
        neighbors are picked before the cut, so ids nobody listed cannot push them out."""
        if not self.listed(item):
            return None
        nc = self.counts[item]
        kept = {j: c for j, c in nc.counts if self.listed(j)}
        nb = self.neighbors(item) if len(kept) == len(nc.counts) else self._top(kept, nc.n)
        return {"item_id": item, "item_count": nc.n, "event_time": nc.t,
                "neighbors": [{"item_id": j, "score": s, "co_count": c}
                              for j, s, c in zip(nb.ids.tolist(), nb.sims.tolist(), nb.counts.tolist())]}


_EMPTY = np.zeros(0, dtype=np.int64)


def _lookup(keys: np.ndarray, values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``values`` at each id's place in the sorted ``keys``, -1 where an id is not there."""
    at, found = find_sorted(keys, ids)
    return np.where(found, values[at], -1) if len(keys) else np.full(len(ids), -1, dtype=np.int64)


class Taste:
    """A user's taste against the catalog's embeddings (``vecs``, one row per item; a row with
    no vector is zeros): ``taste(rows)`` is the cosine with each row's vector, 0 for a row of
    -1. The cosines of all rows are one product, made once when ``nearest`` needs them and
    then read by ``taste(rows)`` too; without it only the rows asked for are multiplied."""

    def __init__(self, vecs: np.ndarray, unit: np.ndarray):
        self._vecs, self._unit, self._all = vecs, unit, None

    def cosines(self) -> np.ndarray:
        if self._all is None:
            self._all = self._vecs @ self._unit
        return self._all

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        inside = (rows >= 0) & (rows < len(self._vecs))
        out = np.zeros(len(rows))
        out[inside] = self._all[rows[inside]] if self._all is not None else self._vecs[rows[inside]] @ self._unit
        return out


def on_event(state: tuple | None, ev: Event, index: ItemIndex, cfg: RankerSettings,
             now_ms: int) -> tuple[tuple, list, list[int]]:
    """``(state, [recommendations record ...], timers)`` for one event of this user: its
    list (debounce off), or none yet and a timer at its burst's end, and the list of a burst
    that ended before this event (``udfs.debounce``). The given state is consumed."""
    s = RankerState.of(state)
    version = next_version(s.version or None, ev.t)
    recent = s.recent
    if ev.weight > 0:  # a low rating is consumed (and excluded) but is no interest signal
        # the window UserActivity pairs from (its partners are the item side's: no span here);
        # the seeds are its newest, which a shorter window would not always keep: an event
        # older than its item's entry moves that item back, and the next one in comes forward
        recent, _ = add_recent(recent, ev.item, ev.t, ev.weight, cfg.recent_items, 0)
    seeds = tuple((i, w) for i, _, w in recent[-cfg.seeds:])
    burst, flushed, new = add_event(None if s.burst is None else Burst(*s.burst), version, ev.t, ev.item,
                                    ev.weight, seeds, cfg.debounce_ms)
    last_seen, ttl_timer, timers = ttl.touch(s.last_seen, s.ttl_timer, ev.t, cfg.user_ttl_ms)
    due = [] if flushed is None else [flushed]
    if cfg.debounce_ms == 0:
        due, burst = due + [burst], None
    elif new:
        timers.append(burst.due)
    state = s._replace(last_seen=last_seen, ttl_timer=ttl_timer, version=version, recent=recent,
                       burst=None if burst is None else tuple(burst)).plain()
    return (*_lists(state, ev.user, due, index, cfg, now_ms), timers)


def on_timer(state: tuple | None, user: int, ts: int, index: ItemIndex, cfg: RankerSettings,
             now_ms: int) -> tuple[tuple | None, list, list[int]]:
    """``(state or None when expired, [recommendations record], timers)``: the list of a
    burst due by ``ts``, and the TTL (a burst still open then gets its list first; UserActivity,
    with the same TTL, says that the user expired)."""
    if state is None:
        return None, [], []
    s = RankerState.of(state)
    expired, ttl_timer, timers = ttl.on_timer(s.last_seen, s.ttl_timer, ts, cfg.user_ttl_ms)
    burst = None if s.burst is None else Burst(*s.burst)
    due = [burst] if burst is not None and (expired or burst.due <= ts) else []
    state = s._replace(ttl_timer=ttl_timer, burst=None if due else s.burst).plain()
    state, out = _lists(state, user, due, index, cfg, now_ms)
    return (None, out, []) if expired else (state, out, timers)


def _lists(state: tuple, user: int, bursts: list, index: ItemIndex, cfg: RankerSettings,
           now_ms: int) -> tuple[tuple, list]:
    """``(state, records)``: each burst's list, in order."""
    out = []
    for burst in bursts:
        state, records = on_request(state, Request(user, burst.version, burst.t, burst.events, burst.seeds),
                                    index, cfg, now_ms)
        out += records
    return state, out


def on_request(state: tuple | None, req: Request, index: ItemIndex, cfg: RankerSettings,
               now_ms: int) -> tuple[tuple, list]:
    """``(state, [recommendations record])``: apply the request's events, then rank."""
    s = RankerState.of(state)
    weights, as_of, consumed, taste = s.weights, s.as_of, s.consumed, s.taste
    vec = InterestVector(weights, as_of)
    u = _taste_vector(taste, index, consumed, as_of, cfg.interest_half_life_ms) if cfg.embedding_weight else None
    for item, weight, t in req.events:
        if u is not None:
            u = embedding.add(u, index.vector(item), weight, t, vec.as_of, cfg.interest_half_life_ms)
        vec = add_interest(vec, index.tags(item), weight, t, cfg.interest_half_life_ms)
        consumed[item] = max(consumed.get(item, 0), t)
    if len(consumed) > cfg.max_consumed:
        consumed = dict(sorted(consumed.items(), key=lambda kv: (kv[1], kv[0]))[-cfg.max_consumed:])
    candidates = merge((seed, w, index.neighbors(seed)) for seed, w in req.seeds)
    exclude = np.sort(np.fromiter(consumed, dtype=np.int64, count=len(consumed)))
    against_catalog = index.taste(u)
    top = rank(candidates, index.interest(vec), exclude, cfg.top_n, cfg.interest_weight, index.trending,
               index.title, rows=index.rows, taste=against_catalog, beta=cfg.embedding_weight,
               nominated=index.nearest(against_catalog, cfg.embedding_candidates, exclude))
    record = {"user_id": req.user, "version": req.version, "event_time": req.t, "generated_at": now_ms,
              "items": [{"item_id": i, "score": float(s), "reason": r} for i, s, r in top],
              "model_version": index.model_version if u is not None else 0}
    # dithered: unbiased rounding, so that small additions to a large sum are not lost
    taste = None if u is None else (index.model_version, embedding.pack(u, cfg.embedding_precision,
                                                                          dither=req.version * 7919 + req.user))
    return s._replace(weights=vec.weights, as_of=vec.as_of, consumed=consumed, taste=taste).plain(), [record]


def _taste_vector(taste: tuple | None, index: ItemIndex, consumed: dict, as_of: int,
                  half_life_ms: float) -> np.ndarray | None:
    """The user's embedding interest in the index's current model (None: no model). Kept
    from the state when of that model; else rebuilt from the consumed items, each weighing 1
    decayed from its last event time (the events' own weights are not kept)."""
    if not index.model_version:
        return None
    if taste is not None and taste[0] == index.model_version:
        u = embedding.unpack(taste[1])
        if len(u) == index.dims:   # else a restore met the model's records in another order: rebuild
            return u
    u = np.zeros(index.dims, dtype=np.float32)
    for item, t in consumed.items():
        u = embedding.add(u, index.vector(item), 1.0, t, as_of, half_life_ms)
    return u
