"""Seeded synthetic load: a catalog and a stream of user events, millions if asked.

The model, so that recommendations have structure to find:
- items belong to one of ``clusters`` interest clusters (their tags say which);
- within a cluster, item popularity follows a Zipf law (exponent ``zipf_s``);
- users have one to three clusters of interest and a Zipf-distributed activity level;
- a session picks one of its user's clusters and walks 1-30 items of it, each a VIEW,
  CLICK, ADD_TO_CART or PURCHASE with funnel probabilities; events of a session are
  seconds apart, sessions start as a Poisson process.
Events come in event-time order except across chunk borders, where disorder is bounded by
the longest session (a few minutes): the bounded out-of-orderness real sources have.

    reco-synth --events 1000000 --seed 7 --rate 20000
    reco-synth --events 20000 --malformed-every 500     # sprinkle bad records for the DLQ
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from reco_tools.kafka_io import (add_kafka_arguments, event_message, kafka_properties_or_exit, make_producer, produce,
                                  produce_catalog)

EVENT_TYPES = ("VIEW", "CLICK", "ADD_TO_CART", "PURCHASE")
FUNNEL = (0.70, 0.20, 0.06, 0.04)
MAX_SESSION = 30


@dataclass(frozen=True)
class SynthConfig:
    events: int = 100_000
    users: int = 5_000
    items: int = 2_000
    clusters: int = 20
    seed: int = 42
    zipf_s: float = 1.1
    start_ms: int = 1_700_000_000_000
    session_gap_ms: float = 2_000.0   # mean time between session starts (whole site)
    click_gap_ms: float = 10_000.0    # mean time between events of one session

    def __post_init__(self):
        for name in ("events", "users", "items", "clusters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.clusters > self.items:
            raise ValueError(f"clusters ({self.clusters}) cannot exceed items ({self.items})")
        if self.zipf_s <= 0:
            raise ValueError(f"zipf_s must be > 0, got {self.zipf_s}")


def _zipf_cdf(n: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return np.cumsum(weights) / weights.sum()


class Synth:
    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        # item ids start at 1; each item in one cluster, shuffled so ids carry no signal
        self.item_cluster = rng.permutation(np.arange(cfg.items) % cfg.clusters)
        self.cluster_items = [rng.permutation(np.flatnonzero(self.item_cluster == c)) + 1
                              for c in range(cfg.clusters)]
        self.cluster_cdf = [_zipf_cdf(len(items), cfg.zipf_s) for items in self.cluster_items]
        n_interests = rng.integers(1, 4, size=cfg.users)
        self.user_clusters = [rng.choice(cfg.clusters, size=min(k, cfg.clusters), replace=False)
                              for k in n_interests]
        self.user_cdf = _zipf_cdf(cfg.users, 0.8)
        self.user_perm = rng.permutation(cfg.users) + 1
        self.rng = rng

    def catalog(self) -> list[dict]:
        return [
            {"item_id": int(i + 1), "title": f"Item {i + 1}",
             "tags": [f"cluster-{int(self.item_cluster[i])}"], "embedding": None,
             "updated_at": self.cfg.start_ms - 1, "deleted": False}
            for i in range(self.cfg.items)
        ]

    def events(self, chunk_sessions: int = 2_000) -> Iterator[dict]:
        cfg, rng = self.cfg, self.rng
        emitted, t = 0, float(cfg.start_ms)
        while emitted < cfg.events:
            starts = t + np.cumsum(rng.exponential(cfg.session_gap_ms, chunk_sessions))
            t = float(starts[-1])
            users = self.user_perm[np.searchsorted(self.user_cdf, rng.random(chunk_sessions))]
            lengths = np.minimum(1 + rng.geometric(0.15, chunk_sessions), MAX_SESSION)
            rows = []
            for start, user, length in zip(starts, users, lengths):
                interests = self.user_clusters[user - 1]
                cluster = interests[rng.integers(len(interests))]
                items = self.cluster_items[cluster][
                    np.searchsorted(self.cluster_cdf[cluster], rng.random(length))]
                times = start + np.cumsum(rng.exponential(cfg.click_gap_ms, length))
                kinds = rng.choice(len(EVENT_TYPES), size=length, p=FUNNEL)
                rows.extend(zip(times.astype(np.int64).tolist(), [int(user)] * length,
                                items.tolist(), kinds.tolist()))
            rows.sort()
            for ts, user, item, kind in rows:
                if emitted >= cfg.events:
                    return
                yield {"event_id": f"syn-{cfg.seed}-{emitted}", "user_id": user, "item_id": item,
                       "event_type": EVENT_TYPES[kind], "value": None, "event_time": ts}
                emitted += 1


def malformed_payloads(codec: AvroCodec, good: bytes, n: int) -> bytes:
    """The n-th kind of broken record, cycling through the ways input goes wrong."""
    kinds = (
        lambda: b"",                                    # empty
        lambda: b"{\"user_id\": 1}",                    # JSON, not Avro
        lambda: good[:-3],                              # truncated body
        lambda: b"\xc3\x01" + b"\x00" * 8 + good[10:],  # unknown schema fingerprint
        lambda: good + b"\x00",                         # trailing garbage
        lambda: codec.encode({"event_id": "bad", "user_id": -5, "item_id": 1,
                              "event_type": "VIEW", "value": None, "event_time": 0}),  # invalid ids/time
    )
    return kinds[n % len(kinds)]()


def encoded_stream(synth: Synth, malformed_every: int = 0) -> Iterator[tuple[bytes, bytes, int, bool]]:
    """``(key, value, timestamp_ms, is_malformed)`` for every record to send, in order; a
    malformed record carries the timestamp of the event before it."""
    codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.USER_EVENTS_TOPIC])
    n_bad = 0
    for i, ev in enumerate(synth.events()):
        key, value, ts = event_message(codec, ev)
        if malformed_every and i % malformed_every == malformed_every - 1:
            yield key, malformed_payloads(codec, value, n_bad), ts, True
            n_bad += 1
        yield key, value, ts, False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    defaults = SynthConfig()
    for name in ("events", "users", "items", "clusters", "seed"):
        ap.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    ap.add_argument("--zipf-s", type=float, default=defaults.zipf_s)
    ap.add_argument("--rate", type=float, default=0.0, help="events per second (0 = unlimited)")
    ap.add_argument("--malformed-every", type=int, default=0,
                    help="after every N-th event, also send one malformed record")
    ap.add_argument("--skip-items", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    add_kafka_arguments(ap)
    args = ap.parse_args(argv)
    properties = kafka_properties_or_exit(ap, args)
    try:
        cfg = SynthConfig(events=args.events, users=args.users, items=args.items,
                          clusters=args.clusters, seed=args.seed, zipf_s=args.zipf_s)
    except ValueError as exc:
        ap.error(str(exc))
    if args.malformed_every < 0:
        ap.error("--malformed-every must be >= 0")
    synth = Synth(cfg)
    producer = make_producer(args.bootstrap, properties)
    started = time.monotonic()
    bad = 0
    try:
        if not args.skip_items:
            produce_catalog(producer, synth.catalog(), not args.no_progress)

        def records():
            nonlocal bad
            for key, value, ts, is_bad in encoded_stream(synth, args.malformed_every):
                bad += is_bad
                yield key, value, ts

        total = cfg.events + (cfg.events // args.malformed_every if args.malformed_every else 0)
        sent = produce(producer, contracts.USER_EVENTS_TOPIC, records(), total=total,
                       desc="events", rate=args.rate, progress=not args.no_progress)
    finally:
        producer.close()
    elapsed = time.monotonic() - started
    print(f"[synth] seed {cfg.seed}: {sent - bad} events + {bad} malformed -> "
          f"{contracts.USER_EVENTS_TOPIC} in {elapsed:.1f}s ({sent / max(elapsed, 1e-9):,.0f} rec/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
