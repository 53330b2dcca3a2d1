"""Keyed by user: recent items, list versions, debounce, TTL, and the user's pair counts
of the current buckets.

Pairs are summed per user and bucket and leave when the bucket closes, one ``ItemDelta``
per item the user touched (its own count and {partner: weight}), instead of a message per
pair: a user with k items in a bucket sends about k messages for its k(k-1)/2 pairs.

State is one plain tuple ``(version, recent, last_seen, ttl_timer, burst, pending)``;
``pending`` is {bucket start: [(item, (partner, ...)), ...]}, the bucket's events of
interest in arrival order with their partners. The sums are made from it when the bucket
closes: the state written back after every event holds each pair once, as a small int,
instead of twice with a float (on bench/e2e.py's synthetic events the pickled state went
from 5,146 to 1,607 bytes on average). A log longer than ``LOG_MAX`` is folded into the
sums, {item: [own count, {partner: weight}]}, which stay its first entry: a user with
thousands of events in one bucket costs what the sums cost, not a log that grows with
every event. State written before kept only the sums; it is read the same way.
"""

from __future__ import annotations

from udfs import cooccurrence as co
from udfs import ttl
from udfs.debounce import add_event
from udfs.recent import add_recent
from udfs.records import Event, Expired, ItemDelta, Request
from udfs.versioning import next_version

UserState = tuple
LOG_MAX = 64   # entries of a bucket's log before it is folded into sums


def on_event(state: UserState | None, ev: Event, cfg) -> tuple[UserState, list, list[int]]:
    """``(state, [Request ...], timers)`` for one event of this user. The given state is
    consumed: it may be updated in place."""
    version, recent, last_seen, ttl_timer, burst, pending = state or (0, [], 0, 0, None, {})
    version = next_version(version or None, ev.t)
    last_seen, ttl_timer, timers = ttl.touch(last_seen, ttl_timer, ev.t, cfg.user_ttl_ms)
    if ev.weight > 0:  # a low rating is consumed (and excluded) but is no interest signal
        recent, partners = add_recent(recent, ev.item, ev.t, ev.weight, cfg.recent_items, cfg.pair_span_ms)
        bucket = co.bucket_of(ev.t, cfg.bucket_ms)
        if bucket not in pending:
            pending[bucket] = []
            timers.append(bucket + cfg.bucket_ms)
        log = _log(pending, bucket)
        log.append((ev.item, tuple(partners)))
        if len(log) > LOG_MAX:
            log[:] = [_sums(log)]
    seeds = tuple((i, w) for i, _, w in recent[-cfg.seeds:])
    burst, flushed, new = add_event(burst, version, ev.t, ev.item, ev.weight, seeds, cfg.debounce_ms)
    out = [] if flushed is None else [_request(ev.user, flushed)]
    if cfg.debounce_ms == 0:
        out.append(_request(ev.user, burst))
        burst = None
    elif new:
        timers.append(burst[0])
    return (version, recent, last_seen, ttl_timer, burst, pending), out, timers


def _log(pending: dict, bucket: int) -> list:
    """The bucket's event log; sums (an earlier version's state) become its first entry."""
    log = pending[bucket]
    if isinstance(log, dict):
        log = pending[bucket] = [log]
    return log


def _sums(log: list) -> dict:
    """{item: [own count, {partner: weight}]} of a bucket's log, summed in arrival order
    onto its first entry when that is sums (folded, or written by an earlier version)."""
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


def _request(user: int, burst) -> Request:
    _, version, t, seeds, events = burst
    return Request(user, version, t, events, seeds)


def overdue_buckets(state: UserState | None, ts: int, cfg) -> list[int]:
    """Open buckets that ended before ``ts``: each should have been flushed by its own timer."""
    return sorted(b for b in state[5] if b + cfg.bucket_ms < ts) if state else []


def on_timer(state: UserState | None, user: int, ts: int, cfg) -> tuple[UserState | None, list, list[int]]:
    """``(state or None when expired, [Request | ItemDelta | Expired ...], timers)``."""
    if state is None:
        return None, [], []
    version, recent, last_seen, ttl_timer, burst, pending = state
    out: list = []
    if burst is not None and burst[0] <= ts:
        out.append(_request(user, burst))
        burst = None
    expired, ttl_timer, timers = ttl.on_timer(last_seen, ttl_timer, ts, cfg.user_ttl_ms)
    closed = [b for b in pending if expired or b + cfg.bucket_ms <= ts]
    for b in sorted(closed):
        out.extend(ItemDelta(item, b, own, pairs) for item, (own, pairs) in sorted(_sums(_log(pending, b)).items()))
    if closed:
        pending = {b: v for b, v in pending.items() if b not in closed}
    if expired:
        out.append(Expired(user, ts))
        return None, out, timers
    return (version, recent, last_seen, ttl_timer, burst, pending), out, timers
