"""The Avro schemas of every record the job reads or writes (``*.avsc``, one record per file;
``history/`` keeps the versions older messages were written with). Shipped inside the
package so that a consumer installed from the wheel decodes without this repository."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
