"""Memory of one entry of a Python worker's state cache, per keyed operator: the job's steps
(lab.inprocess) run over the throughput stage's backlog, each state pickled (as it goes to
the TaskManager) and unpickled again (as a worker's cache holds it), measured with tracemalloc.

    .venv/bin/python bench/state_memory.py [--events 40000]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.e2e import _catalog, synth_events  # noqa: E402
from flink_jobs.config import JobConfig  # noqa: E402
from lab.inprocess import Dataflow  # noqa: E402
from udfs.records import Event, ItemInfo  # noqa: E402

OPERATORS = {"users": "UserActivity, per user", "rankers": "Ranker, per user", "items": "ItemCooccurrence, per item"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    args = ap.parse_args()
    synth, events = synth_events(args.events)
    flow = Dataflow(JobConfig(), [ItemInfo.of(r) for r in _catalog(synth, events, False)])
    for e in events:
        flow.push(Event.of(e))
    for name, label in OPERATORS.items():
        blobs = [pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL) for s in getattr(flow, name).values()]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = [pickle.loads(b) for b in blobs]
        decoded = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        print(f"{label:28} {len(kept):>6,} states: {sum(map(len, blobs)) / len(kept):>7,.0f} B pickled, "
              f"{decoded / len(kept):>7,.0f} B decoded")


if __name__ == "__main__":
    main()
