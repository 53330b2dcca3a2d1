"""Per-user list versions."""

VERSIONS_PER_MS = 1024


def next_version(last: int | None, t: int) -> int:
    """A user's next list version: strictly increasing, from state and event time only.

    Event time x 1024 keeps versions increasing across a TTL expiry (when ``last`` is
    gone) without a tombstone; ``last + 1`` keeps them increasing for late or same-ms events.
    """
    return max(t * VERSIONS_PER_MS, (last or 0) + 1)
