"""Debounce of recomputation per user, by event time only.

A burst starts with an event at t0 and takes every event of the user before t0 + window;
only the burst's last event gets a list (the others' events still count: they travel with
the request). Decided from event time and the user's event order alone, so a replay makes
the same decisions whatever the watermark did.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Burst:
    due: int                      # event time at which the burst's list is computed
    version: int = 0              # newest version in the burst
    t: int = 0                    # its event time
    seeds: list = field(default_factory=list)
    events: list = field(default_factory=list)  # (item, weight, t) of every event in the burst


def add_event(burst: Burst | None, version: int, t: int, item: int, weight: float, seeds: list,
              window_ms: int) -> tuple[Burst, Burst | None, bool]:
    """``(open burst, burst to flush now or None, whether a timer at the open burst's due is needed)``.

    A burst whose due time has passed by this event's time is flushed first, as its timer
    would have been had the watermark already passed it.
    """
    flushed = None
    if burst is not None and burst.due <= t:
        flushed, burst = burst, None
    new = burst is None
    if new:
        burst = Burst(due=t + window_ms)
    burst.version, burst.t, burst.seeds = version, t, seeds
    burst.events.append((item, weight, t))
    return burst, flushed, new
