"""Per-user list versions, and the event-time limit that keeps them exact.

Versions travel as Avro longs, JSON numbers (the Redis value) and Lua numbers (the Redis
compare-and-set reads them with ``tonumber``): doubles, exact only below 2^53. Decode
refuses events at or after ``EVENT_TIME_LIMIT_MS`` (``flink_jobs/validation.py``), so:

- an accepted event's own candidate ``t x 1024`` is at most ``2^52 - 1024``;
- each event raises a user's version by at most ``max(t x 1024, previous + 1)``, so after
  k events a version is at most ``2^52 + k`` (by induction, whatever the order and even
  across a TTL expiry, which forgets ``previous``);
- versions stay below 2^53 for the first 2^52 events of any user (4.5e15: 142 years at a
  million events a second for one user).
"""

VERSIONS_PER_MS = 1024
VERSION_LIMIT = 2**53                                          # exclusive: exact in a double
EVENT_TIME_LIMIT_MS = VERSION_LIMIT // (2 * VERSIONS_PER_MS)   # exclusive: 2^42 ms, 2109-05-15


def next_version(last: int | None, t: int) -> int:
    """A user's next list version: strictly increasing, from state and event time only.

    Event time x 1024 keeps versions increasing across a TTL expiry (when ``last`` is
    gone) without a tombstone; ``last + 1`` keeps them increasing for late or same-ms events.
    ``t`` must be below ``EVENT_TIME_LIMIT_MS`` (see the module docstring).
    """
    return max(t * VERSIONS_PER_MS, (last or 0) + 1)
