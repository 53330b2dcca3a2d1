"""Keyed by user, for the item side: the user's recent items, TTL, and pair counts of the
current buckets. (What the user's lists need, the Ranker keeps: ``udfs.ranker``.)

Pairs are summed per user and bucket and leave when the bucket closes, one ``ItemDelta``
per item the user touched (its own count and {partner: weight}), instead of a message per
pair: a user with k items in a bucket sends about k messages for its k(k-1)/2 pairs.

State is a ``UserState``, kept as plain data (``plain`` / ``of``). ``pending`` is
{bucket start: log}, the bucket's events of interest in arrival order with their partners,
[(item, (partner, ...)), ...]. The sums are made from the log when the bucket closes, so the
state written back after every event holds each pair once, as a small int, instead of twice
with a float. A log longer than ``LOG_MAX`` is folded into the sums, {item: [own count,
{partner: weight}]}, which stay its first entry: a user with thousands of events in one
bucket costs what the sums cost, not a log that grows with every event.
"""

from __future__ import annotations

from typing import NamedTuple

from udfs import cooccurrence as co
from udfs import ttl
from udfs.recent import add_recent
from udfs.records import Event, Expired, ItemDelta
from udfs.settings import UserSettings

LOG_MAX = 64   # entries of a bucket's log before it is folded into sums
LAYOUT = "user/3"   # the tag of the plain state: a new layout gets a new tag and a migration


class UserState(NamedTuple):
    recent: list          # udfs.recent: [(item, t, weight)], oldest first
    last_seen: int        # event time of the last event (TTL)
    ttl_timer: int
    pending: dict         # {bucket start: log} of the open buckets

    def plain(self) -> tuple:
        return (LAYOUT, *self)

    @classmethod
    def of(cls, plain: tuple | None) -> "UserState":
        if plain is None:
            return cls([], 0, 0, {})
        if plain[0] != LAYOUT:
            plain = _migrate(plain)
        return cls(*plain[1:])


def _migrate(plain: tuple) -> tuple:
    """A state of an earlier layout, in this one. Layouts 1 (untagged) and "user/2" also
    held the list's version and debounce burst, which the Ranker keeps now. Layout 1 could
    hold a bucket's sums (a dict) where a log is held now: the sums become the log's first
    entry, as a folded log's are."""
    if plain[0] == "user/2":
        plain = plain[1:]
    elif isinstance(plain[0], str):
        raise ValueError(f"user state of layout {plain[0]!r}: written by a newer version of the job?")
    _version, recent, last_seen, ttl_timer, _burst, pending = plain
    pending = {b: [log] if isinstance(log, dict) else log for b, log in pending.items()}
    return LAYOUT, recent, last_seen, ttl_timer, pending


def on_event(state: tuple | None, ev: Event, cfg: UserSettings) -> tuple[tuple, list, list[int]]:
    """``(state, [], timers)`` for one event of this user. The given state is consumed: it
    may be updated in place."""
    recent, last_seen, ttl_timer, pending = UserState.of(state)
    last_seen, ttl_timer, timers = ttl.touch(last_seen, ttl_timer, ev.t, cfg.user_ttl_ms)
    if ev.weight > 0:  # a low rating is consumed but is no interest signal: no pairs
        recent, partners = add_recent(recent, ev.item, ev.t, ev.weight, cfg.recent_items, cfg.pair_span_ms)
        bucket = co.bucket_of(ev.t, cfg.bucket_ms)
        if bucket not in pending:
            pending[bucket] = []
            timers.append(bucket + cfg.bucket_ms)
        log = pending[bucket]
        log.append((ev.item, tuple(partners)))
        if len(log) > LOG_MAX:
            log[:] = [_sums(log)]
    return UserState(recent, last_seen, ttl_timer, pending).plain(), [], timers


def _sums(log: list) -> dict:
    """{item: [own count, {partner: weight}]} of a bucket's log, summed in arrival order
    onto its first entry when that is sums (a folded log)."""
    folded = bool(log) and isinstance(log[0], dict)
    sums = {item: [own, dict(pairs)] for item, (own, pairs) in log[0].items()} if folded else {}
    for item, partners in log[1:] if folded else log:
        w = co.pair_weight(len(partners))
        mine = sums.setdefault(item, [0.0, {}])
        mine[0] += 1.0
        for j in partners:
            mine[1][j] = mine[1].get(j, 0.0) + w
            theirs = sums.setdefault(j, [0.0, {}])[1]
            theirs[item] = theirs.get(item, 0.0) + w
    return sums


def overdue_buckets(state: tuple | None, ts: int, cfg: UserSettings) -> list[int]:
    """Open buckets that ended before ``ts``: each should have been flushed by its own timer."""
    return sorted(b for b in UserState.of(state).pending if b + cfg.bucket_ms < ts) if state else []


def on_timer(state: tuple | None, user: int, ts: int, cfg: UserSettings) -> tuple[tuple | None, list, list[int]]:
    """``(state or None when expired, [ItemDelta | Expired ...], timers)``: the buckets that
    closed (all of them when the TTL passed, and then ``Expired``)."""
    if state is None:
        return None, [], []
    recent, last_seen, ttl_timer, pending = UserState.of(state)
    expired, ttl_timer, timers = ttl.on_timer(last_seen, ttl_timer, ts, cfg.user_ttl_ms)
    closed = [b for b in pending if expired or b + cfg.bucket_ms <= ts]
    out = [ItemDelta(item, b, own, pairs)
           for b in sorted(closed) for item, (own, pairs) in sorted(_sums(pending[b]).items())]
    if expired:
        return None, out + [Expired(user, ts)], timers
    if closed:
        pending = {b: v for b, v in pending.items() if b not in closed}
    return UserState(recent, last_seen, ttl_timer, pending).plain(), out, timers
