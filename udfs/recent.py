"""The user's recent-items window: the W newest items of interest, whatever their age
(their pairs need span T; the ranker's seeds are the window's newest items)."""

from __future__ import annotations

RecentItems = list  # list of (item_id, event_time, weight), oldest first


def add_recent(recent: RecentItems, item_id: int, t: int, weight: float,
               max_items: int, span_ms: int) -> tuple[RecentItems, list[int]]:
    """Add an item; return the new window and the item's partners for co-occurrence.

    Partners are the other items in the window within ``span_ms`` of ``t`` (before the
    window is trimmed to ``max_items``). Re-consuming an item moves it to the front
    instead of listing it twice. Items stay whatever their age until ``max_items`` newer
    ones push them out: a user back after a pause longer than the span still has seeds.
    """
    kept = [(i, ti, w) for i, ti, w in recent if i != item_id]
    partners = [i for i, ti, _ in kept if abs(t - ti) <= span_ms]
    kept.append((item_id, t, weight))
    kept.sort(key=lambda r: r[1])  # stable: among equal times the newest stays last
    return kept[-max_items:], partners
