"""Read what the job wrote to Redis, the way a frontend would.

    reco-lookup user 42        # reco:v1:user:42
    reco-lookup item 1 --titles
    reco-lookup trending
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import redis

from flink_jobs import contracts
from flink_jobs.redis_store import VersionedStore
from flink_jobs.sensitive import redact_url
from reco_tools import movielens


def key_for(kind: str, entity_id: int | None) -> str:
    if kind == "trending":
        return contracts.TRENDING_KEY
    if entity_id is None:
        raise ValueError(f"'{kind}' needs an id")
    return (contracts.user_recommendations_key if kind == "user" else contracts.item_similar_key)(entity_id)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("user", "item", "trending"))
    ap.add_argument("id", type=int, nargs="?")
    ap.add_argument("--redis", default=os.environ.get("RECO_REDIS_URL") or "redis://127.0.0.1:6379/0",
                    help="Redis URL (default $RECO_REDIS_URL: keeps a password off the command line)")
    ap.add_argument("--titles", action="store_true", help="add MovieLens titles to item ids")
    args = ap.parse_args(argv)
    try:
        key = key_for(args.kind, args.id)
    except ValueError as exc:
        ap.error(str(exc))
    try:
        doc = VersionedStore.from_url(args.redis).get(key)
    except redis.ConnectionError as exc:
        print(f"[lookup] cannot reach Redis at {redact_url(args.redis)}: {exc}", file=sys.stderr)
        return 2
    if doc is None:
        print(f"[lookup] {key}: no value (not computed yet, or expired)", file=sys.stderr)
        return 1
    if args.titles:
        titles = {m.item_id: m.title for m in movielens.load_movies().values()}
        for entry in doc.get("items", []):
            entry.setdefault("title", titles.get(entry.get("item_id")))
    print(key)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
