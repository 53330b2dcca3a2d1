"""Print recommendations (or any of the project's topics) from Kafka, read_committed.

    reco-consume                                   # reco.recommendations.v1 from the start
    reco-consume --user 42 --follow                # one user, keep waiting for more
    reco-consume --topic reco.user-events.dlq.v1   # what the job rejected, and why
    reco-consume --schema-registry http://registry:8081   # a topic in the Confluent wire format

Values in either wire format decode (docs/consumers.md): Avro single-object encoding with the
bundled schemas, the Confluent wire format with writer schemas fetched by id from
--schema-registry (default $RECO_SCHEMA_REGISTRY_URL; a password in it belongs there, not on
the command line).
"""

from __future__ import annotations

import argparse
import sys

from flink_jobs import contracts
from flink_jobs.codec import CONFLUENT, SINGLE_OBJECT, AvroCodec, AvroError, wire_format
from flink_jobs.schema_registry import FramedDecoder, RegistryClient
from reco_tools import movielens
from reco_tools.kafka_io import (add_kafka_arguments, add_schema_registry_arguments, consume, kafka_properties_or_exit,
                                 make_consumer, schema_registry_or_exit)


def describe(record: dict, titles: dict[int, str], top: int) -> str:
    if "items" in record:  # Recommendations
        items = ", ".join(f"{titles.get(i['item_id'], i['item_id'])} ({i['score']:.3f})"
                          for i in record["items"][:top])
        return f"user {record['user_id']} v{record['version']} @{record['event_time']}: {items}"
    if "neighbors" in record:
        nb = ", ".join(f"{titles.get(n['item_id'], n['item_id'])} ({n['score']:.3f})"
                       for n in record["neighbors"][:top])
        return f"item {titles.get(record['item_id'], record['item_id'])}: {nb}"
    if "reason" in record and "payload" in record:
        return (f"{record['source_topic']}[{record['source_partition']}]@{record['source_offset']}: "
                f"{record['reason']} ({len(record['payload'])} bytes)")
    return repr(record)


def _format_note(found: str | None, registry: RegistryClient | None) -> str | None:
    """A line about a record's wire format when it is not what the options expect."""
    if found == CONFLUENT and registry is None:
        return ("Confluent wire format (0x00, schema id, body), not single-object encoding: give --schema-registry "
                "(or RECO_SCHEMA_REGISTRY_URL) to decode it")
    if found == SINGLE_OBJECT and registry is not None:
        return ("Avro single-object encoding (0xC3 0x01, fingerprint, body), not the Confluent wire format: decoded "
                "with the bundled schemas, the registry is not needed for it")
    if found is None:
        return "neither single-object encoding (C3 01) nor the Confluent wire format (00): not the job's Avro"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default=contracts.RECOMMENDATIONS_TOPIC, choices=sorted(contracts.TOPIC_RECORDS))
    ap.add_argument("--user", type=int, help="only this user's (or item's) records")
    ap.add_argument("--max", type=int, default=None, help="stop after N records")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--follow", action="store_true", help="wait for new records until Ctrl-C")
    ap.add_argument("--idle", type=float, default=5.0, help="stop after this many idle seconds")
    ap.add_argument("--titles", action="store_true", help="show MovieLens titles for item ids")
    add_schema_registry_arguments(ap)
    add_kafka_arguments(ap)
    args = ap.parse_args(argv)
    properties = kafka_properties_or_exit(ap, args)
    registry = schema_registry_or_exit(ap, args)
    decoder = FramedDecoder(AvroCodec(contracts.TOPIC_RECORDS[args.topic]), registry)
    titles = {m.item_id: m.title for m in movielens.load_movies().values()} if args.titles else {}
    consumer = make_consumer(args.bootstrap, args.topic, properties=properties)
    shown = 0
    formats: set[str | None] = set()
    try:
        for rec in consume(consumer, float("inf") if args.follow else args.idle, None):
            if args.user is not None and rec.key != contracts.record_key(args.user):
                continue
            found = wire_format(rec.value) if rec.value is not None else "tombstone"
            if found not in formats:   # say once what the topic holds, where it may surprise
                formats.add(found)
                note = _format_note(found, registry)
                if note:
                    print(f"[consume] {rec.partition}:{rec.offset}: {note}", file=sys.stderr, flush=True)
            try:
                line = describe(decoder.decode(rec.value), titles, args.top)
            except AvroError as exc:
                line = f"<undecodable: {exc}>"
            print(f"{rec.partition}:{rec.offset} {line}", flush=True)
            shown += 1
            if args.max is not None and shown >= args.max:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(f"[consume] {shown} record(s) from {args.topic}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
