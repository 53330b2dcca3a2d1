"""Replay the MovieLens sample into Kafka: the catalog to reco.items.v1, then the ratings
to reco.user-events.v1 in event-time order.

    reco-replay                              # as fast as the broker takes them
    reco-replay --rate 2000                  # 2,000 events/s
    reco-replay --speedup 86400              # one day of event time per second
    reco-replay --limit 5000 --users 1,2,3   # a slice
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from reco_tools import movielens
from reco_tools.kafka_io import (add_kafka_arguments, event_message, kafka_properties_or_exit, make_producer, produce,
                                  produce_catalog)


def paced_by_event_time(events: list[dict], speedup: float):
    """Yield events so that event time advances ``speedup`` times faster than wall time."""
    if not events:
        return
    t0_event = events[0]["event_time"]
    t0_wall = time.monotonic()
    for ev in events:
        due = (ev["event_time"] - t0_event) / 1000.0 / speedup
        ahead = due - (time.monotonic() - t0_wall)
        if ahead > 0:
            time.sleep(ahead)
        yield ev


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--data-dir", type=Path, default=movielens.DATA_DIR)
    pace = ap.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=0.0, help="events per second (0 = unlimited)")
    pace.add_argument("--speedup", type=float, default=0.0, help="event-time seconds per wall second")
    ap.add_argument("--limit", type=int, default=0, help="send only the first N events")
    ap.add_argument("--users", default="", help="comma-separated user ids to keep")
    ap.add_argument("--skip-items", action="store_true", help="do not send the catalog")
    ap.add_argument("--no-progress", action="store_true")
    add_kafka_arguments(ap)
    args = ap.parse_args(argv)
    properties = kafka_properties_or_exit(ap, args)
    if args.rate < 0 or args.speedup < 0 or args.limit < 0:
        ap.error("--rate, --speedup and --limit must be >= 0")
    if not (args.data_dir / "ratings.csv").is_file():
        ap.error(f"no ratings.csv in {args.data_dir}")

    events = movielens.load_rating_events(args.data_dir)
    if args.users:
        try:
            keep = {int(u) for u in args.users.split(",") if u.strip()}
        except ValueError:
            ap.error(f"--users must be comma-separated integers, got {args.users!r}")
        events = [e for e in events if e["user_id"] in keep]
    if args.limit:
        events = events[: args.limit]

    producer = make_producer(args.bootstrap, properties)
    started = time.monotonic()
    n_items = 0
    try:
        if not args.skip_items:
            movies = movielens.load_movies(args.data_dir)
            first = events[0]["event_time"] if events else 0
            n_items = produce_catalog(producer, movielens.item_records(movies, first), not args.no_progress)
        codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.USER_EVENTS_TOPIC])
        stream = paced_by_event_time(events, args.speedup) if args.speedup else events
        n_events = produce(producer, contracts.USER_EVENTS_TOPIC,
                           (event_message(codec, e) for e in stream),
                           total=len(events), desc="events", rate=args.rate,
                           progress=not args.no_progress)
    finally:
        producer.close()
    elapsed = time.monotonic() - started
    users = len({e["user_id"] for e in events})
    stars = Counter(e["value"] for e in events)
    print(f"[replay] {n_items} items -> {contracts.ITEMS_TOPIC}; {n_events} events from {users} users "
          f"-> {contracts.USER_EVENTS_TOPIC} in {elapsed:.1f}s ({n_events / max(elapsed, 1e-9):,.0f} ev/s)")
    if events:
        span_days = (events[-1]["event_time"] - events[0]["event_time"]) / 86_400_000
        print(f"[replay] event time spans {span_days:,.0f} days; ratings >= 4: "
              f"{sum(v for s, v in stars.items() if s >= 4.0)}, < 3: {sum(v for s, v in stars.items() if s < 3.0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
