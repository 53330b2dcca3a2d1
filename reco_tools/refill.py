"""Refill Redis from Kafka after Redis lost its data (restarted without persistence, flushed,
failed over to an empty replica).

Reads the compacted reco.recommendations.v1 read_committed (aborted or still open
transactions of the job never reach Redis) from its beginning to its end as it is at start
(once the transactions open then have ended), and writes each key's last record with the job's versioned upsert: a key Redis holds in a newer
version (the running job got there first) is left alone, so running it twice, or while the
job runs, never moves a list back. Trending is not on Kafka: it comes back at the job's next
bucket end.

    export RECO_REDIS_URL="$(cat /etc/reco/redis-url)"    # redis://USER:PASSWORD@redis:6379/0
    reco-refill --bootstrap kafka:9092 [--kafka-properties-file /etc/reco/kafka.properties]
    reco-refill --item-neighbors     # also item lists (reco.item-neighbors.v1: what retention kept)

Records in the Confluent wire format (the job's ``*_wire_format = "confluent"``) decode with
writer schemas from --schema-registry (default $RECO_SCHEMA_REGISTRY_URL, where a password
belongs); single-object encoded ones need none.

Progress goes to stderr, a one-line summary to stdout. Exit 0: done; 1: done, but some records
did not decode (skipped, counted); 2: Kafka or Redis cannot be reached, a topic is missing, or
a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import redis
from kafka.errors import KafkaError, NoBrokersAvailable

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec, AvroError
from flink_jobs.schema_registry import FramedDecoder, RegistryClient
from flink_jobs.config import JobConfig
from flink_jobs.documents import similar_document, user_document
from flink_jobs.redis_store import RedisAccessError, RedisUnavailable, RetryPolicy, VersionedStore
from flink_jobs.sensitive import redact_url, url_has_secret
from reco_tools.kafka_io import (add_kafka_arguments, add_schema_registry_arguments, kafka_properties_or_exit,
                                 make_consumer, schema_registry_or_exit)

EXIT_OK, EXIT_UNDECODABLE, EXIT_UNREACHABLE = 0, 1, 2


class Unreachable(Exception):
    """Kafka or Redis cannot be reached, or a topic does not exist (exit 2)."""


@dataclass(frozen=True)
class Source:
    """A topic and how its records become Redis documents (flink_jobs/publish.py)."""
    topic: str
    document: Callable[[dict], tuple[str, dict]]


USER_LISTS = Source(contracts.RECOMMENDATIONS_TOPIC, user_document)
ITEM_LISTS = Source(contracts.ITEM_NEIGHBORS_TOPIC, similar_document)


@dataclass
class Counts:
    read: int = 0          # records up to the end offsets taken at start (committed only)
    written: int = 0       # upserts that landed (a newer version, or the same one again)
    older: int = 0         # skipped: Redis holds a newer version
    superseded: int = 0    # skipped: a later record of the same key was read too
    tombstones: int = 0    # records without a value: nothing to write
    undecodable: int = 0   # not a record of the topic's schema: skipped

    def line(self) -> str:
        text = f"{self.read:,} read, {self.written:,} written, {self.older:,} skipped as older"
        for name in ("superseded", "tombstones", "undecodable"):
            if getattr(self, name):
                text += f", {getattr(self, name):,} {name}"
        return text


def _read_to_end(consumer, tps: list, begin: dict, end: dict, topic: str, bootstrap: str,
                 on_poll: Callable[[list], None], phase: str, say: Callable[[str], None], counts: Counts,
                 progress_s: float, stall_s: float) -> None:
    """Poll every partition from ``begin`` to ``end``, handing each poll's records below the
    end to ``on_poll`` as ``[(partition, record)]``; Unreachable when no partition moves for
    ``stall_s`` (time spent in ``on_poll`` does not count)."""
    for tp in tps:
        consumer.seek(tp, begin[tp])
    pending = {tp for tp in tps if end[tp] > begin[tp]}
    consumer.resume(*tps)
    if set(tps) - pending:
        consumer.pause(*(set(tps) - pending))
    positions = {tp: begin[tp] for tp in pending}
    last_move = last_said = time.monotonic()
    while pending:
        batch = [(tp.partition, rec) for tp, records in consumer.poll(timeout_ms=500).items()
                 for rec in records if rec.offset < end[tp]]   # later ones: the job (or a next run) has them
        handling = time.monotonic()
        on_poll(batch)
        last_move += time.monotonic() - handling     # waiting for Redis is no stall of Kafka's
        now = time.monotonic()
        for tp in sorted(pending, key=lambda tp: tp.partition):
            position = consumer.position(tp)
            if position != positions[tp]:
                positions[tp], last_move = position, now
            if position >= end[tp]:
                pending.discard(tp)
                consumer.pause(tp)
                say(f"{topic}[{tp.partition}]: end offset {end[tp]:,} reached ({phase})")
        if pending and now - last_move > stall_s:
            stuck = ", ".join(f"{tp.partition}@{positions[tp]}/{end[tp]}" for tp in sorted(
                pending, key=lambda tp: tp.partition))
            raise Unreachable(f"{topic}: no progress for {stall_s:.0f}s (partition@position/end: {stuck}); "
                              f"is Kafka at {bootstrap} reachable?")
        if pending and now - last_said >= progress_s:
            last_said = now
            say(f"{topic}: {counts.line()} ({len(tps) - len(pending)}/{len(tps)} partitions done)")


def _settled_ends(bootstrap: str, properties: dict, consumer, tps: list, topic: str, say: Callable[[str], None],
                  settle_s: float) -> dict:
    """The end offsets to read to: the partitions' ends as they are now, once every
    transaction open now has been committed or aborted (at most ``settle_s``; then the last
    stable offsets). Lists the job wrote before a Redis loss may sit in a transaction that
    commits only at its next checkpoint: read before that, they would be missed."""
    ends = consumer.end_offsets(tps)        # read_committed: the last stable offsets
    try:
        peek = make_consumer(bootstrap, topic, properties=properties, isolation_level="read_uncommitted",
                             client_id="reco-refill")
        try:
            high = peek.end_offsets(tps)
        finally:
            peek.close()
    except (KafkaError, RuntimeError) as exc:
        raise Unreachable(f"Kafka at {bootstrap}, topic {topic}: {exc!r}") from None
    deadline = time.monotonic() + settle_s
    if any(ends[tp] < high[tp] for tp in tps):
        say(f"{topic}: waiting up to {settle_s:.0f}s for the transactions open now to end")
    while any(ends[tp] < high[tp] for tp in tps):
        if time.monotonic() > deadline:
            say(f"{topic}: transactions still open after {settle_s:.0f}s; reading what is committed")
            return ends
        time.sleep(0.5)
        ends = consumer.end_offsets(tps)
    return high


def refill_topic(bootstrap: str, properties: dict, source: Source, store: VersionedStore,
                 say: Callable[[str], None], progress_s: float = 5.0, stall_s: float = 60.0,
                 settle_s: float = 120.0, registry: RegistryClient | None = None) -> Counts:
    """The last committed record of each key of ``source.topic``, up to the end offsets of
    now, into Redis. Two passes: the keys' last offsets, then those records. Writing every
    record in turn would show a key's older lists for a moment (compaction keeps more than
    the last one for a while) to a reader that saw a newer one before Redis lost it. The
    first pass keeps about a hundred bytes per key. ``registry``: for records in the
    Confluent wire format."""
    topic, counts = source.topic, Counts()
    decoder = FramedDecoder(AvroCodec(contracts.TOPIC_RECORDS[source.topic]), registry)
    try:
        consumer = make_consumer(bootstrap, topic, properties=properties, allow_auto_create_topics=False,
                                 client_id="reco-refill")
    except NoBrokersAvailable:
        raise Unreachable(f"cannot reach Kafka at {bootstrap} (no broker answered)") from None
    except RuntimeError as exc:     # make_consumer: the topic does not exist
        raise Unreachable(str(exc)) from None
    except KafkaError as exc:       # e.g. a refused SASL login
        raise Unreachable(f"Kafka at {bootstrap}: {exc!r}") from None
    try:
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        begin, end = consumer.beginning_offsets(tps), _settled_ends(bootstrap, properties, consumer, tps, topic,
                                                                    say, settle_s)
        say(f"{topic}: {len(tps)} partition(s), {sum(end[tp] - begin[tp] for tp in tps):,} offsets to read "
            f"(ends taken now: {', '.join(f'{tp.partition}:{end[tp]}' for tp in tps)})")
        last: dict[tuple[int, bytes], int] = {}

        def note(batch: list) -> None:
            for partition, rec in batch:
                last[(partition, rec.key)] = rec.offset

        def write(batch: list) -> None:
            writes: list[tuple[str, dict]] = []
            for partition, rec in batch:
                counts.read += 1
                if last.get((partition, rec.key)) != rec.offset:
                    counts.superseded += 1
                elif rec.value is None:
                    counts.tombstones += 1
                else:
                    try:
                        writes.append(source.document(decoder.decode(rec.value)))
                    except AvroError as exc:
                        counts.undecodable += 1
                        if counts.undecodable <= 5:
                            say(f"{topic}[{partition}]@{rec.offset}: does not decode, skipped ({exc})")
            for landed in store.upsert_many(writes):
                if landed:
                    counts.written += 1
                else:
                    counts.older += 1
        _read_to_end(consumer, tps, begin, end, topic, bootstrap, note, "keys", say, counts, progress_s, stall_s)
        say(f"{topic}: {len(last):,} keys")
        _read_to_end(consumer, tps, begin, end, topic, bootstrap, write, "lists", say, counts, progress_s, stall_s)
    except KafkaError as exc:
        raise Unreachable(f"Kafka at {bootstrap}, topic {topic}: {exc!r}") from None
    finally:
        consumer.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="reco-refill", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--redis", default=os.environ.get("RECO_REDIS_URL") or "redis://127.0.0.1:6379/0",
                    help="Redis URL without a password (default $RECO_REDIS_URL, where a password belongs)")
    ap.add_argument("--item-neighbors", action="store_true",
                    help=f"also refill item lists from {contracts.ITEM_NEIGHBORS_TOPIC} (not compacted: "
                         "what retention kept)")
    ap.add_argument("--ttl-ms", type=int, default=os.environ.get("RECO_REDIS_TTL_MS") or JobConfig.redis_ttl_ms,
                    help="TTL of the keys written, the job's redis_ttl_ms (default $RECO_REDIS_TTL_MS, else "
                         f"{JobConfig.redis_ttl_ms}; 0: none)")
    ap.add_argument("--redis-retry-ms", type=int, default=60_000,
                    help="how long one write keeps retrying while Redis is unreachable (60000)")
    ap.add_argument("--stall-timeout", type=float, default=60.0,
                    help="give up when no partition moves for this many seconds (60)")
    ap.add_argument("--progress", type=float, default=5.0, help="seconds between progress lines (5)")
    ap.add_argument("--settle-timeout", type=float, default=120.0,
                    help="how long to wait for the transactions open at start to end (120): the job commits "
                         "its lists at each checkpoint")
    add_schema_registry_arguments(ap)
    add_kafka_arguments(ap)
    args = ap.parse_args(argv)
    if url_has_secret(args.redis) and args.redis != os.environ.get("RECO_REDIS_URL"):
        ap.error(f"--redis {redact_url(args.redis)}: a password on the command line can be read by every user "
                 "of the machine; set RECO_REDIS_URL instead")
    if args.ttl_ms < 0 or args.redis_retry_ms < 0 or args.stall_timeout <= 0:
        ap.error("--ttl-ms and --redis-retry-ms must be >= 0, --stall-timeout > 0")
    properties = kafka_properties_or_exit(ap, args)
    registry = schema_registry_or_exit(ap, args)

    def say(msg: str) -> None:
        print(f"[refill] {msg}", file=sys.stderr, flush=True)

    shown_url = redact_url(args.redis)
    try:
        client = redis.Redis.from_url(args.redis, socket_connect_timeout=2, socket_timeout=5)
    except ValueError:    # redis-py's message may quote a piece of the password
        ap.error(f"not a Redis URL redis-py can read: {shown_url}")
    sources = [USER_LISTS] + ([ITEM_LISTS] if args.item_neighbors else [])
    results: list[tuple[str, Counts]] = []
    started = time.monotonic()
    try:
        try:   # a GET the job's ACL allows: reachable, and the login works
            VersionedStore(client).get(contracts.TRENDING_KEY)
        except RedisUnavailable as exc:
            raise Unreachable(f"cannot reach Redis at {shown_url}: {exc.__cause__ or exc}") from None
        except (RedisAccessError, redis.RedisError) as exc:
            raise Unreachable(f"cannot use Redis at {shown_url}: {exc}") from None
        store = VersionedStore(client, args.ttl_ms, retry=RetryPolicy(max_total_ms=args.redis_retry_ms))
        say(f"Redis {shown_url}, Kafka {args.bootstrap}, TTL {args.ttl_ms} ms")
        for source in sources:
            try:
                results.append((source.topic, refill_topic(args.bootstrap, properties, source, store, say,
                                                           args.progress, args.stall_timeout, args.settle_timeout,
                                                           registry)))
            except RedisUnavailable as exc:
                raise Unreachable(f"Redis at {shown_url} unreachable for longer than --redis-retry-ms="
                                  f"{args.redis_retry_ms}: {exc.__cause__ or exc}") from None
            except (RedisAccessError, redis.RedisError) as exc:
                raise Unreachable(f"Redis at {shown_url}: {exc}") from None
    except Unreachable as exc:
        say(f"ERROR: {exc}")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        say(f"interrupted; safe to run again ({'; '.join(f'{t}: {c.line()}' for t, c in results) or 'nothing done'})")
        return 130
    finally:
        client.close()
    summary = "; ".join(f"{topic}: {counts.line()}" for topic, counts in results)
    print(f"[refill] done in {time.monotonic() - started:.1f}s: {summary}", flush=True)
    if any(counts.undecodable for _, counts in results):
        say("some records did not decode (skipped): see above")
        return EXIT_UNDECODABLE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
