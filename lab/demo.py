"""`make run`: the job on the local Flink mini-cluster, the MovieLens sample
replayed into Kafka, and one user's top-10 shown as it changes, here and on the live page
of the read API (reco_api), which it starts on http://127.0.0.1:8080/.

    python -m lab.demo [--events 6000] [--user 86] [--model-at 0.5] [--keep-running] [--api-port 8080]

Halfway through the replay it trains item embeddings on the ratings sent so far and
publishes them in the catalog, as a scheduled ``reco-embed`` would: the lists after that
carry the model's version.

It recreates the topics and clears the ``reco:v1:*`` keys first, so every run starts
from the same empty state. Kafka and Redis must be up (``deploy/local/stack.sh start``).

The API stays up after the demo, like Kafka and Redis, so that the address printed at the
end still answers (the job stops, the last lists stay); the next run replaces it, and
``python -m lab.api stop`` stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.sensitive import redact_url
from lab import api as api_process
from lab.jobs import committed_version, start_job, wait_until_consuming
from lab.oracle import expected_versions
from reco_tools import embed, movielens
from reco_tools.kafka_io import (add_kafka_arguments, event_message, kafka_properties_or_exit, make_producer, produce,
                                 produce_catalog)
from reco_tools.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = Path(os.environ.get("RECO_RUN_DIR", ROOT / ".run"))
DEMO_CONFIG = ROOT / "deploy" / "local" / "demo.toml"


def pick_user(events: list[dict]) -> int:
    """The user with the most ratings in the replayed slice (a rich history to watch)."""
    return Counter(e["user_id"] for e in events).most_common(1)[0][0]


def show(doc: dict, titles: dict[int, str], n_events: int, total: int) -> None:
    model = f", model {doc['model_version']}" if doc.get("model_version") else ""
    print(f"\n── user {doc['user_id']}: list version {doc['version']} after {n_events}/{total} of "
          f"their events (event time {time.strftime('%Y-%m-%d', time.gmtime(doc['event_time'] / 1000))}{model})")
    if not doc["items"]:
        print("   (no candidates yet)")
    for rank, item in enumerate(doc["items"][:10], 1):
        print(f"   {rank:2d}. {titles.get(item['item_id'], item['item_id'])[:48]:48s} "
              f"{item['score']:.3f}  {item['reason'][:60]}")


def feed(producer, events: list[dict], movies, rate: float, model_at: int) -> None:
    """Replay ``events``; after the first ``model_at`` (when > 0), train item embeddings on
    them and publish them in the catalog (``reco_tools.embed``), then replay the rest."""
    codec = AvroCodec(contracts.TOPIC_RECORDS[contracts.USER_EVENTS_TOPIC])
    send = lambda part: produce(producer, contracts.USER_EVENTS_TOPIC,  # noqa: E731
                                (event_message(codec, e) for e in part), rate=rate, progress=False)
    if 0 < model_at < len(events):
        send(events[:model_at])
        version = int(time.time() * 1000)
        vectors = embed.train(events[:model_at])
        records = embed.with_embeddings(movielens.item_records(movies, events[model_at]["event_time"]), vectors,
                                        version, events[model_at]["event_time"])
        produce_catalog(producer, records, progress=False)
        print(f"\n[demo] model {version}: {len(records):,} item embeddings trained on the first {model_at:,} ratings "
              f"and published in {contracts.ITEMS_TOPIC}, as reco-embed does")
        events = events[model_at:]
    send(events)


def start_page(redis_url: str, port: int, user: int) -> str | None:
    """The read API in the background (replacing the last demo's), serving the live page;
    returns the page's address for ``user``, or None when ``port`` is 0."""
    if not port:
        return None
    pid_file = RUN_DIR / "api" / "pid"
    api_process.stop_recorded(pid_file)
    if not api_process.port_free(port):
        taken, port = port, api_process.free_port()
        print(f"[demo] port {taken} is taken: the API listens on {port} instead")
    try:
        api = api_process.start_api(redis_url, RUN_DIR / "api" / "api.log", port)
    except AssertionError as exc:   # it exited, or did not answer in time: the demo goes on without it
        print(f"[demo] the read API did not start, so no live page: {exc}")
        return None
    pid_file.write_text(str(api.pid))
    page = f"{api.url}/?user={user}"
    print(f"[demo] read API and live page up (pid {api.pid}, log {api.log_path}): open {page} to watch "
          f"user {user}'s list change")
    return page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=f"127.0.0.1:{os.environ.get('RECO_KAFKA_PORT', '9092')}")
    ap.add_argument("--redis", default=os.environ.get("RECO_REDIS_URL")
                    or f"redis://127.0.0.1:{os.environ.get('RECO_REDIS_PORT', '6379')}/0",
                    help="Redis URL (default $RECO_REDIS_URL, which keeps a password off the command line)")
    ap.add_argument("--events", type=int, default=6000, help="replay the first N ratings (0 = all 100,004)")
    ap.add_argument("--user", type=int, help="user to watch (default: the most active in the slice)")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    ap.add_argument("--rate", type=float, default=400.0,
                    help="ratings produced per second, as a live site would send them (0 = all at once: the job "
                         "then ranks most of them before event time lets the item side publish, see docs/algorithm.md)")
    ap.add_argument("--model-at", type=float, default=0.5,
                    help="publish item embeddings trained on the ratings sent so far after this share of them "
                         "(as reco-embed does; 0 = no model)")
    ap.add_argument("--keep-running", action="store_true", help="leave the job running at the end")
    ap.add_argument("--api-port", type=int, default=8080,
                    help="port of the read API and its live page (another free port when taken; 0: no API)")
    add_kafka_arguments(ap)
    args = ap.parse_args(argv)
    props = kafka_properties_or_exit(ap, args)

    events = movielens.load_rating_events()
    if args.events:
        events = events[: args.events]
    movies = movielens.load_movies()
    titles = {m.item_id: m.title for m in movies.values()}
    user = args.user if args.user is not None else pick_user(events)
    versions = [e for e in events if e["user_id"] == user]
    if not versions:
        ap.error(f"user {user} has no events in the replayed slice")

    print(f"[demo] fresh topics and Redis keys at {args.bootstrap}, {redact_url(args.redis)}")
    ensure_topics(args.bootstrap, recreate=True, properties=props)
    store = redis.Redis.from_url(args.redis)
    for key in store.scan_iter(f"{contracts.REDIS_PREFIX}:*", count=1000):
        store.delete(key)

    page = start_page(args.redis, args.api_port, user)
    run_id = time.strftime("%Y%m%d%H%M%S")
    job = start_job(args.bootstrap, args.redis, run_id, RUN_DIR / "job" / "demo", config=DEMO_CONFIG,
                    kafka_properties=props)
    log_path = job.output
    print(f"[demo] Flink job started on the local mini-cluster (pid {job.pid}, log {log_path})")
    try:
        producer = make_producer(args.bootstrap, props)
        produce_catalog(producer, movielens.item_records(movies, events[0]["event_time"]))
        try:
            wait_until_consuming(args.bootstrap, job, 180, props)
        except AssertionError as exc:   # the job exited, or took no checkpoint in time
            print(f"[demo] {exc}\n[demo] the job log is {log_path}")
            return 1
        threading.Thread(target=feed, daemon=True, args=(producer, events, movies, args.rate,
                                                         int(len(events) * args.model_at))).start()
        print(f"[demo] replaying {len(events):,} ratings at {args.rate:.0f}/s")
        print(f"[demo] watching user {user} ({len(versions)} ratings in the slice, e.g. "
              f"{', '.join(titles[e['item_id']] for e in versions[:3])}); Ctrl-C to stop")

        key = contracts.user_recommendations_key(user)
        by_version = {v: n for n, v in enumerate(expected_versions(versions)[user], 1)}
        final = max(by_version)
        last_version, last_shown, deadline = None, 0.0, time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if job.poll() is not None:
                print(f"[demo] the job exited with code {job.returncode}; see {log_path}")
                return 1
            raw = store.get(key)
            if raw is not None:
                doc = json.loads(raw)
                if doc["version"] != last_version and time.monotonic() - last_shown > 2.0:
                    show(doc, titles, by_version.get(doc["version"], 0), len(versions))
                    last_version, last_shown = doc["version"], time.monotonic()
                if doc["version"] == final:
                    if last_version != final:
                        show(doc, titles, len(versions), len(versions))
                    break
            time.sleep(0.5)
        else:
            print(f"[demo] gave up after {args.timeout:.0f}s; the job log is {log_path}")
            return 1
        print(f"[demo] Redis is up to date; waiting for the transaction that holds version {final} "
              f"to commit in {contracts.RECOMMENDATIONS_TOPIC} (at the next checkpoint)")
        if not committed_version(args.bootstrap, user, final, max(0.0, deadline - time.monotonic()), props):
            print(f"[demo] version {final} was not committed to Kafka in time; the job log is {log_path}")
            return 1
        print(f"\n[demo] user {user} is up to date in Redis and Kafka. Where to look:\n"
              f"  Redis:  .venv/bin/reco-lookup user {user} --titles      (key {key})\n"
              f"  Kafka:  .venv/bin/reco-consume --user {user} --titles   (topic {contracts.RECOMMENDATIONS_TOPIC})\n"
              f"  Similar items: .venv/bin/reco-lookup item {versions[-1]['item_id']}\n"
              f"  Dead letters:  .venv/bin/reco-consume --topic {contracts.DEAD_LETTER_TOPIC}")
        if args.keep_running:
            print(f"[demo] the job keeps running (pid {job.pid}); stop it with: kill -- -{job.pid}")
            job = None
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if job is not None:
            job.stop()
            print("[demo] job stopped")
        if page:
            print("\n[demo] the read API stays up, like Kafka and Redis; stop it with: "
                  ".venv/bin/python -m lab.api stop")
            print(f"Live page: {page}")


if __name__ == "__main__":
    sys.exit(main())
