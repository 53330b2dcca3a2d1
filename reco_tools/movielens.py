"""The MovieLens sample as this project's records.

Mapping (docs/operations.md "MovieLens mapping"):
- each movie becomes an ``ItemFeatures``: ``item_id`` = movieId, ``title``, ``tags`` = its
  genres ("(no genres listed)" gives no tag), ``updated_at`` = the first rating's time, so
  the whole catalog is known before any event;
- each rating becomes a ``UserEvent`` of type ``RATING`` with ``value`` = the stars
  (0.5-5.0) and ``event_time`` = its timestamp; ``event_id`` = ``ml-{user}-{movie}-{ts}``.
  The job turns the stars into a signal weight (see ``udfs``): a low rating is not interest.
Ratings are replayed in event-time order (ties by user, then movie).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "ml-latest-small"
NO_GENRES = "(no genres listed)"


@dataclass(frozen=True)
class Movie:
    item_id: int
    title: str
    genres: tuple[str, ...]


def load_movies(data_dir: Path = DATA_DIR) -> dict[int, Movie]:
    with open(data_dir / "movies.csv", newline="", encoding="utf-8") as f:
        return {
            int(row["movieId"]): Movie(
                int(row["movieId"]), row["title"],
                tuple(g for g in row["genres"].split("|") if g and g != NO_GENRES))
            for row in csv.DictReader(f)
        }


def load_rating_events(data_dir: Path = DATA_DIR) -> list[dict]:
    """Every rating as a UserEvent record, in event-time order."""
    with open(data_dir / "ratings.csv", newline="", encoding="utf-8") as f:
        rows = [(int(r["timestamp"]) * 1000, int(r["userId"]), int(r["movieId"]), float(r["rating"]))
                for r in csv.DictReader(f)]
    rows.sort()
    return [
        {"event_id": f"ml-{user}-{movie}-{ts // 1000}", "user_id": user, "item_id": movie,
         "event_type": "RATING", "value": stars, "event_time": ts}
        for ts, user, movie, stars in rows
    ]


def item_records(movies: dict[int, Movie], updated_at: int) -> list[dict]:
    return [
        {"item_id": m.item_id, "title": m.title, "tags": list(m.genres), "embedding": None,
         "updated_at": updated_at, "deleted": False}
        for m in sorted(movies.values(), key=lambda m: m.item_id)
    ]
