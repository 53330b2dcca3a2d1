"""``reco-api``: the read API and its live page under uvicorn.

    reco-api [--host 127.0.0.1] [--port 8080] [--cors-origin https://shop.example ...]
             [--titles data/ml-latest-small/movies.csv]

Redis settings are the job's, from the same environment variables (reco_client.Settings):
RECO_REDIS_URL or RECO_REDIS_URL_FILE, RECO_REDIS_CONNECT_TIMEOUT_MS,
RECO_REDIS_READ_TIMEOUT_MS, RECO_REDIS_TLS_CA_FILE, RECO_REDIS_TLS_CERT_FILE,
RECO_REDIS_TLS_KEY_FILE, RECO_REDIS_TLS_VERIFY. ``--redis-url`` overrides the URL but may
not carry a password: every user of the machine can read a command line.
CORS origins: ``--cors-origin`` (repeatable) or RECO_API_CORS_ORIGINS (comma-separated);
titles: ``--titles`` or RECO_API_TITLES.

The same application under uvicorn's own command line, e.g. with several worker processes:
``uvicorn --factory reco_api.server:app_from_env --workers 2 --timeout-graceful-shutdown 2``
(settings from the environment only; the timeout cuts the event streams, which ``reco-api``
ends by itself on shutdown).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import uvicorn

from flink_jobs.sensitive import redact_url, url_has_secret
from reco_api.app import create_app
from reco_client import Settings

log = logging.getLogger("reco_api")


def load_titles(path: str | Path) -> Dict[int, str]:
    """Item id -> title from a CSV with ``movieId`` (MovieLens' movies.csv) or ``item_id``, and ``title``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        id_column = next((c for c in ("item_id", "movieId") if c in (reader.fieldnames or ())), None)
        if id_column is None or "title" not in reader.fieldnames:
            raise ValueError(f"{path}: expected columns item_id (or movieId) and title, got {reader.fieldnames}")
        return {int(row[id_column]): row["title"] for row in reader}


def cors_origins(flags: Optional[List[str]], env: Mapping[str, str]) -> List[str]:
    if flags:
        return flags
    return [o.strip() for o in env.get("RECO_API_CORS_ORIGINS", "").split(",") if o.strip()]


def app_from_env():
    """The application from the environment alone (``uvicorn --factory``)."""
    titles = os.environ.get("RECO_API_TITLES")
    return create_app(Settings.from_env(), cors_origins(None, os.environ), load_titles(titles) if titles else None)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="reco-api", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--redis-url", help="Redis URL without a password (default: $RECO_REDIS_URL, "
                                        "$RECO_REDIS_URL_FILE, redis://127.0.0.1:6379/0)")
    ap.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                    help="an origin whose pages may call the API (repeatable; default $RECO_API_CORS_ORIGINS, "
                         "comma-separated; none: same origin only)")
    ap.add_argument("--titles", metavar="CSV", default=os.environ.get("RECO_API_TITLES") or None,
                    help="item titles for the answers and the page: a CSV with item_id (or movieId) and title, "
                         "e.g. MovieLens' movies.csv (default $RECO_API_TITLES; none: no titles)")
    ap.add_argument("--access-log", action="store_true", help="log every request (/metrics counts them anyway)")
    args = ap.parse_args(argv)
    if args.redis_url and url_has_secret(args.redis_url):
        ap.error(f"--redis-url {redact_url(args.redis_url)}: a password does not belong on a command line; "
                 f"set RECO_REDIS_URL or RECO_REDIS_URL_FILE instead")
    try:
        settings = Settings.from_env(redis_url=args.redis_url)
        titles = load_titles(args.titles) if args.titles else None
    except (OSError, ValueError) as exc:
        ap.error(str(exc))
    origins = cors_origins(args.cors_origin, os.environ)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("reading Redis at %s; %s titles; CORS origins: %s", redact_url(settings.redis_url),
             f"{len(titles):,}" if titles else "no", ", ".join(origins) or "none (same origin only)")
    app = create_app(settings, origins, titles)
    config = uvicorn.Config(app, host=args.host, port=args.port, access_log=args.access_log, log_level="info",
                            timeout_graceful_shutdown=2)   # then streams still open are cut
    Server(config, app).run()
    return 0


class Server(uvicorn.Server):
    """uvicorn's server, which also ends the app's event streams when asked to stop: they
    never end by themselves, and uvicorn waits for every open connection."""

    def __init__(self, config: uvicorn.Config, app):
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig, frame) -> None:
        self.app.state.stopping = True
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
