"""reco-embed: train item embeddings from the interaction history and publish them in the
catalog, where the job picks them up with no restart.

    reco-embed                        # read reco.user-events.v1 and reco.items.v1, publish
    reco-embed --dims 32 --dry-run    # train and report, publish nothing

The model: each (user, item) pair weighs 2^-(age / half-life) at the newest event (its
newest positive event: a rating of 4 stars or more, or any other event type); C = X^T X
off the diagonal; positive PMI, log(C x total / (row sum x column sum)) clipped at 0; a
truncated SVD of that (randomized, numpy only); an item's vector is its row of U x sqrt(S)
at unit length. The matrix is dense, items x items, so training keeps the ``max_items``
most consumed items (the others get no embedding): 10,000 items make matrices of 0.4 GB,
a few of them at a time.

Each run is a new model: its ``model_version`` (default: the time of the run in ms) goes in
every record it publishes, and the job uses the newest version it has seen (older vectors
stop counting as soon as the first record of a newer model arrives). Run it again from a
scheduler (cron, a Kubernetes CronJob) to follow the catalog and tastes.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Iterable

import numpy as np
from tqdm import tqdm

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec, AvroError
from reco_tools.kafka_io import (add_kafka_arguments, consume, kafka_properties_or_exit, make_consumer, make_producer,
                                 produce_catalog)

YEAR_MS = 365 * 86_400_000


def is_positive(event: dict) -> bool:
    if event.get("event_type", "RATING") == "RATING":
        return (event.get("value") or 0.0) >= 4.0
    return True


def train(events: Iterable[dict], dims: int = 48, half_life_ms: float = YEAR_MS, max_items: int = 10_000,
          seed: int = 0) -> dict[int, np.ndarray]:
    """{item: unit float32 vector} from ``events`` (reco.UserEvent dicts); see the module doc."""
    positive = [e for e in events if is_positive(e)]
    if not positive:
        return {}
    now = max(e["event_time"] for e in positive)
    weight: dict[tuple[int, int], float] = {}
    for e in positive:
        key = (e["user_id"], e["item_id"])
        weight[key] = max(weight.get(key, 0.0), 0.5 ** ((now - e["event_time"]) / half_life_ms))
    popularity: dict[int, int] = {}
    for _, item in weight:
        popularity[item] = popularity.get(item, 0) + 1
    items = sorted(sorted(popularity, key=lambda j: (-popularity[j], j))[:max_items])
    col = {j: c for c, j in enumerate(items)}
    users = sorted({u for u, j in weight if j in col})
    row = {u: r for r, u in enumerate(users)}
    x = np.zeros((len(users), len(items)), dtype=np.float32)
    for (u, j), w in weight.items():
        if j in col:
            x[row[u], col[j]] = w
    co = x.T @ x
    del x
    np.fill_diagonal(co, 0.0)
    sums = co.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(co * co.sum() / np.outer(sums, sums))
    pmi = np.where(np.isfinite(pmi), np.maximum(pmi, 0.0), 0.0).astype(np.float32)
    dims = max(1, min(dims, len(items) - 1))
    rng = np.random.default_rng(seed)
    basis = pmi @ rng.standard_normal((len(items), min(dims + 10, len(items)))).astype(np.float32)
    for _ in range(3):   # power iterations
        basis, _ = np.linalg.qr(basis)
        basis = pmi @ (pmi.T @ basis)
    basis, _ = np.linalg.qr(basis)
    u, s, _ = np.linalg.svd(basis.T @ pmi, full_matrices=False)
    vectors = (basis @ u)[:, :dims] * np.sqrt(s[:dims])
    norms = np.linalg.norm(vectors, axis=1)
    vectors /= np.maximum(norms, 1e-12)[:, None]
    # an item never consumed with another one has no direction: no vector
    return {j: vectors[c].astype(np.float32) for j, c in col.items() if norms[c] > 1e-6}


def with_embeddings(catalog: Iterable[dict], vectors: dict[int, np.ndarray], model_version: int,
                    updated_at: int) -> list[dict]:
    """The catalog records (reco.ItemFeatures) of the items that have a vector, carrying it,
    ``model_version`` and the model's size (how many records it has: the job switches to
    the model once it has them all); deleted items are left out."""
    records = [{**r, "embedding": [float(x) for x in vectors[r["item_id"]]], "model_version": model_version,
                "updated_at": updated_at}
               for r in catalog if not r.get("deleted") and r["item_id"] in vectors]
    return [{**r, "model_size": len(records)} for r in records]


def catalog_with_model(catalog: list[dict], vectors: dict[int, np.ndarray], model_version: int,
                       updated_at: int) -> list[dict]:
    """The whole ``catalog`` as it stands once ``with_embeddings``' records are published:
    items with a vector carry it, the others are as they were."""
    embedded = {r["item_id"]: r for r in with_embeddings(catalog, vectors, model_version, updated_at)}
    return [embedded.get(r["item_id"], r) for r in catalog]


def _read(bootstrap: str, topic: str, record: str, properties: dict,
          idle_s: float) -> Iterable[tuple[bytes, dict | None]]:
    """(key, decoded value or None for a tombstone) of every committed record of ``topic``;
    records that do not decode are counted and skipped."""
    codec = AvroCodec(record)
    consumer = make_consumer(bootstrap, topic, properties=properties)
    bad = 0
    try:
        for rec in tqdm(consume(consumer, idle_s), desc=f"reading {topic}", unit="rec", mininterval=1.0):
            if rec.value is None:
                yield rec.key, None
                continue
            try:
                yield rec.key, codec.decode(rec.value)
            except AvroError:
                bad += 1
    finally:
        consumer.close()
        if bad:
            print(f"{topic}: {bad:,} records that do not decode were skipped", file=sys.stderr)


def read_catalog(bootstrap: str, topic: str, properties: dict, idle_s: float) -> dict[bytes, dict]:
    """The compacted catalog as it stands: the latest record per key, tombstones applied."""
    catalog: dict[bytes, dict] = {}
    for key, value in _read(bootstrap, topic, "reco.ItemFeatures", properties, idle_s):
        if value is None:
            catalog.pop(key, None)
        else:
            catalog[key] = value
    return catalog


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--dims", type=int, default=48, help="dimensions of the vectors (48)")
    ap.add_argument("--half-life-days", type=float, default=365.0, help="age at which an interaction weighs half (365)")
    ap.add_argument("--max-items", type=int, default=10_000, help="train on the N most consumed items (10,000)")
    ap.add_argument("--model-version", type=int, default=None, help="default: now, in ms")
    ap.add_argument("--idle", type=float, default=5.0, help="a topic is read once nothing arrives for this long (s)")
    ap.add_argument("--dry-run", action="store_true", help="train and report; publish nothing")
    ap.add_argument("--events-topic", default=contracts.USER_EVENTS_TOPIC)
    ap.add_argument("--items-topic", default=contracts.ITEMS_TOPIC, help="read the catalog here and publish to it")
    add_kafka_arguments(ap)
    args = ap.parse_args(argv)
    if args.dims <= 0 or args.max_items <= 1 or args.half_life_days <= 0:
        ap.error("--dims and --half-life-days must be > 0, --max-items > 1")
    properties = kafka_properties_or_exit(ap, args)
    start = time.time()
    version = args.model_version if args.model_version is not None else int(start * 1000)
    if version <= 0:
        ap.error("--model-version must be > 0 (0 means no model)")
    catalog = read_catalog(args.bootstrap, args.items_topic, properties, args.idle)
    events = [value for _, value in _read(args.bootstrap, args.events_topic, "reco.UserEvent", properties, args.idle)
              if value]
    print(f"read {len(catalog):,} catalog items and {len(events):,} events in {time.time() - start:.1f} s")
    t0 = time.time()
    vectors = train(events, args.dims, args.half_life_days * 86_400_000, args.max_items)
    # the catalog again, as it is now: an item edited or deleted during training keeps that
    # (what changes while the records are sent is still overwritten: publish when the catalog is quiet)
    catalog = read_catalog(args.bootstrap, args.items_topic, properties, args.idle)
    records = with_embeddings(catalog.values(), vectors, version, int(time.time() * 1000))
    print(f"model {version}: {len(vectors):,} item vectors of {len(next(iter(vectors.values()), ())):,} dimensions "
          f"in {time.time() - t0:.1f} s; {len(records):,} of them are catalog items")
    if not records:
        print("nothing to publish (no positive events of catalog items)", file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    producer = make_producer(args.bootstrap, properties)
    try:
        sent = produce_catalog(producer, records, topic=args.items_topic)
    finally:
        producer.close()
    print(f"published {sent:,} catalog records with model_version {version} to {args.items_topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
