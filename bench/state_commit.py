"""What a keyed Python operator's state commit costs at the end of a bundle, by how many keys
its cache holds: PyFlink 2.2.1's own commit against the job's (internals.commit_touched_keys_only),
on PyFlink's and Beam's state classes over an in-memory TaskManager (lab.worker_state; no JVM).

    .venv/bin/python bench/state_commit.py [--bundle-keys 50] [--bundles 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyflink.fn_execution.state_impl import RemoteKeyedStateBackend  # noqa: E402

from flink_jobs import internals  # noqa: E402
from lab.worker_state import TaskManager, Worker  # noqa: E402

CACHED = (10_000, 50_000, 100_000)


def ms_per_bundle(cached: int, bundle_keys: int, bundles: int) -> float:
    worker = Worker(TaskManager(), cache=cached)
    worker.bundle([(key, key) for key in range(cached)])   # the cache full of parked keys
    start = time.perf_counter()
    for n in range(bundles):
        worker.bundle([(key, n) for key in range(bundle_keys)])
    return (time.perf_counter() - start) / bundles * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle-keys", type=int, default=50, help="keys written per bundle")
    ap.add_argument("--bundles", type=int, default=20, help="bundles timed per figure")
    args = ap.parse_args()
    pyflink = {n: ms_per_bundle(n, args.bundle_keys, args.bundles) for n in CACHED}
    internals.commit_touched_keys_only()
    assert getattr(RemoteKeyedStateBackend, "_commits_touched_only", False)
    touched = {n: ms_per_bundle(n, args.bundle_keys, args.bundles) for n in CACHED}
    print(f"ms per bundle of {args.bundle_keys} keys (writes and commit), by keys in the cache")
    print(f"{'cached keys':>12} {'PyFlink commit':>15} {'touched only':>13}")
    for n in CACHED:
        print(f"{n:>12,} {pyflink[n]:>15.2f} {touched[n]:>13.2f}")


if __name__ == "__main__":
    main()
