"""Debounce of recomputation per user, by event time only.

A burst starts with an event at t0 and takes every event of the user before t0 + window;
only the burst's last event gets a list (the others' events still count: they travel with
the request). Decided from event time and the user's event order alone, so a replay makes
the same decisions whatever the watermark did.
"""

from __future__ import annotations

from typing import NamedTuple


class Burst(NamedTuple):
    """An open burst: ``due`` is the event time at which its list is computed, ``version``
    and ``t`` those of its newest event, ``seeds`` that event's, ``events`` every
    (item, weight, t) in it. Kept in state as a plain tuple (``tuple(burst)``)."""
    due: int
    version: int
    t: int
    seeds: tuple
    events: tuple


def add_event(burst: Burst | None, version: int, t: int, item: int, weight: float, seeds: tuple,
              window_ms: int) -> tuple[Burst, Burst | None, bool]:
    """``(open burst, burst to flush now or None, whether a timer at the open burst's due is needed)``.

    A burst whose due time has passed by this event's time is flushed first, as its timer
    would have been had the watermark already passed it.
    """
    flushed = None
    if burst is not None and burst.due <= t:
        flushed, burst = burst, None
    new = burst is None
    due, events = (t + window_ms, ()) if new else (burst.due, burst.events)
    return Burst(due, version, t, seeds, events + ((item, weight, t),)), flushed, new
