"""An event-time TTL per key with one timer, not one per event.

State is two plain ints: ``last_seen`` (newest event time) and ``timer`` (the TTL timer
currently set, 0 for none).
"""

from __future__ import annotations


def touch(last_seen: int, timer: int, t: int, ttl_ms: int) -> tuple[int, int, list[int]]:
    """Activity at ``t``: ``(last_seen, timer, timers to register)``."""
    last_seen = max(last_seen, t)
    if timer > t:
        return last_seen, timer, []
    # none, or one that should have fired by now: a timer can be lost in a restore where no
    # fix reaches the operator (flink_jobs/internals.py, install_timer_fix); if it still fires, it is ignored
    # (on_timer: ts < timer)
    return last_seen, last_seen + ttl_ms, [last_seen + ttl_ms]


def on_timer(last_seen: int, timer: int, ts: int, ttl_ms: int) -> tuple[bool, int, list[int]]:
    """At a timer ``ts``: ``(expired, timer, timers to register)``; a TTL timer that comes
    due while the key was active since is moved to the new due time instead."""
    if not timer or ts < timer:
        return False, timer, []  # another timer of this key
    due = last_seen + ttl_ms
    if due <= ts:
        return True, 0, []
    return False, due, [due]
