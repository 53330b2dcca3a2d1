"""CPU time of one ranker request (``udfs.ranker.on_request``), this checkout against another
in the same process.

    .venv/bin/python bench/requests.py [--vs ../other-checkout] [--events 20000] [--rounds 10] [--no-model]

The job's steps run the benchmark's synthetic events (those of ``bench/e2e.py``, with a
model unless ``--no-model``) in one process (lab.inprocess); every request the ranker gets
is kept with the user's state before it. Then the requests are ranked again, all of them,
against the index as the run left it, ``--rounds`` times; with ``--vs`` each round runs
both checkouts, in turns (A B, B A, ...), each with its own copy of ``udfs`` and ``lab``.

Why one process: whole runs of this VM move by a third between minutes, far more than a
change to the ranker does; two versions measured round by round meet the same noise.
Prints µs per request by round, the medians, and the ratio of each round's pair.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import _catalog, synth_events  # noqa: E402
from flink_jobs.config import JobConfig  # noqa: E402

OWN = ("udfs", "lab")   # the packages each checkout brings its own of


def load(root: Path) -> dict:
    """``root``'s udfs and lab modules, imported apart from any other checkout's; whatever
    else the import brought from ``root`` leaves ``sys.modules`` with them."""
    saved = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in OWN}
    before = set(sys.modules)
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        return {"ranker": importlib.import_module("udfs.ranker"), "records": importlib.import_module("udfs.records"),
                "inprocess": importlib.import_module("lab.inprocess")}
    finally:
        sys.path.remove(str(root))
        for name in set(sys.modules) - (before - set(saved)):   # what the import brought in
            file = getattr(sys.modules[name], "__file__", None)
            if name.split(".")[0] in OWN or (file and Path(file).is_relative_to(root)):
                del sys.modules[name]
        sys.modules.update(saved)


def captured(mods: dict, events: list[dict], catalog: list[dict], cfg: JobConfig) -> tuple:
    """``(on_request, [(state, request)], index, ranker settings)`` after a run of ``events``."""
    ranker, records = mods["ranker"], mods["records"]
    on_request, requests = ranker.on_request, []

    def keep(state, req, index, settings, now_ms):
        # a copy: lab.inprocess hands a user's next request the same consumed dict, which
        # on_request adds to in place
        requests.append((copy.deepcopy(state), req))
        return on_request(state, req, index, settings, now_ms)

    ranker.on_request = keep   # lab.inprocess calls it through the module
    try:
        flow = mods["inprocess"].Dataflow(cfg, [records.ItemInfo.of(r) for r in catalog])
        for e in events:
            flow.push(records.Event.of(e))
    finally:
        ranker.on_request = on_request
    return on_request, requests, flow.index, flow.ranker_cfg


def per_request_us(run: tuple) -> float:
    on_request, requests, index, settings = run
    states = copy.deepcopy([state for state, _ in requests])   # each round from the states as they were
    start = time.process_time()
    for state, (_, req) in zip(states, requests):
        on_request(state, req, index, settings, 0)
    return (time.process_time() - start) / len(requests) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vs", type=Path, help="another checkout, measured in turns with this one")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--no-model", action="store_true", help="a catalog without embeddings")
    args = ap.parse_args()
    if args.vs is not None and not (args.vs / "udfs" / "ranker.py").is_file():
        ap.error(f"--vs {args.vs}: not a checkout of this project (no udfs/ranker.py)")
    if args.events <= 0 or args.rounds <= 0:
        ap.error("--events and --rounds must be positive")

    synth, events = synth_events(args.events)
    catalog, cfg = _catalog(synth, events, not args.no_model), JobConfig()
    roots = {"this": ROOT} | ({"vs": args.vs.resolve()} if args.vs else {})
    runs = {label: captured(load(root), events, catalog, cfg) for label, root in roots.items()}
    print(f"{len(runs['this'][1]):,} requests, {'no model' if args.no_model else 'a model'}; "
          f"{', '.join(f'{label}: {root}' for label, root in roots.items())}", flush=True)
    times: dict[str, list[float]] = {label: [] for label in runs}
    for r in range(args.rounds):
        for label in (list(runs) if r % 2 == 0 else list(reversed(runs))):
            times[label].append(per_request_us(runs[label]))
        print(f"round {r + 1}: " + ", ".join(f"{label} {t[-1]:.1f} µs" for label, t in times.items()), flush=True)
    for label, t in times.items():
        print(f"{label}: median {statistics.median(t):.1f} µs per request (rounds {min(t):.1f}-{max(t):.1f})")
    if "vs" in times:
        ratios = [a / b for a, b in zip(times["this"], times["vs"])]
        print(f"this / vs by round: median {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
