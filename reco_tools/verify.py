"""What the job must produce for a given event stream, computed the slow, batch way.

Used by the job tests and the chaos scenario to check outputs they did not compute.
Pure Python over ``udfs``: no engine.
"""

from __future__ import annotations

from collections import defaultdict

from flink_jobs.config import JobConfig
from udfs import cooccurrence as co
from udfs.recent import add_recent
from udfs.signals import event_weight
from udfs.versioning import next_version


def expected_versions(events: list[dict]) -> dict[int, list[int]]:
    """user -> the version of each of its events, in order."""
    versions: dict[int, list[int]] = defaultdict(list)
    for e in events:
        mine = versions[e["user_id"]]
        mine.append(next_version(mine[-1] if mine else None, e["event_time"]))
    return dict(versions)


def expected_lists(events: list[dict], debounce_ms: int) -> dict[int, list[int]]:
    """user -> the versions that get a list: all, or the last of each burst (a burst takes
    the user's events before its first event's time + debounce_ms)."""
    versions = expected_versions(events)
    if not debounce_ms:
        return versions
    out = {}
    for user, mine in versions.items():
        times = [e["event_time"] for e in events if e["user_id"] == user]
        lists, start = [], None
        for n, t in enumerate(times):
            if start is None or t >= start + debounce_ms:
                if n:
                    lists.append(mine[n - 1])
                start = t
        out[user] = lists + [mine[-1]]
    return out


def batch_pairs(events: list[dict], cfg: JobConfig) -> dict[int, list[tuple[int, int, float]]]:
    """item i -> every (j, t, w) co-occurrence the job counts for i, from per-user order."""
    recent: dict[int, list] = defaultdict(list)
    pairs: dict[int, list] = defaultdict(list)
    for e in events:
        w = event_weight(e["event_type"], e["value"])
        if w <= 0:
            continue
        recent[e["user_id"]], partners = add_recent(recent[e["user_id"]], e["item_id"], e["event_time"], w,
                                                    cfg.recent_items, cfg.pair_span_ms)
        pw = co.pair_weight(len(partners))
        for j in partners:
            pairs[e["item_id"]].append((j, e["event_time"], pw))
            pairs[j].append((e["item_id"], e["event_time"], pw))
    return pairs


def window_counts(pairs: list[tuple[int, int, float]], end: int, cfg: JobConfig) -> dict[int, float]:
    """C(i, j) over the window that ends at bucket end ``end``: what a list published then holds."""
    counts: dict[int, float] = defaultdict(float)
    for j, t, w in pairs:
        if t < end and co.bucket_of(t, cfg.bucket_ms) + cfg.bucket_ms > end - cfg.cooccurrence_window_ms:
            counts[j] += w
    return dict(counts)
