"""The ceiling for the end-to-end benchmark: a PyFlink job with the job's own Kafka source,
settings and exactly-once sink, and one Python operator that passes each record through.

    deploy/flink/cluster.sh submit --py bench/passthrough.py [--keyed plain|state|timer] [main.py flags]

Whatever the real job does beyond this costs its throughput; this job's figure is what
PyFlink, Kafka and the checkpointing alone allow on the same machine.

``--keyed``: the job's shape instead, as far as the engine sees it: a Python operator that
puts a key on each record (as Decode does, here the offset modulo ``--keys``), the key-by in
the JVM (``internals.keyed``), then a keyed Python operator that passes the record on
(``plain``), also reads and writes a small pickled value state per record (``state``), and
also registers an event-time timer an hour ahead (``timer``), which never fires in a drain.
What the engine costs the job's keyed operators per record, without the job's own steps.
``--keys``: fewer keys than a bundle has records tell a cost per record (reading and writing
the cached value) from one per key and bundle (the commit's requests to the TaskManager).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flink_jobs import config as job_config  # noqa: E402
from flink_jobs import contracts, internals  # noqa: E402
from flink_jobs.kafka_tables import kafka_sink, kafka_sources  # noqa: E402
from flink_jobs.internals import install_timer_fix, keyed  # noqa: E402
from flink_jobs.operators import KEYED_BYTES, PICKLED  # noqa: E402
from flink_jobs.main import create_environment  # noqa: E402

TOPIC = "reco.bench.passthrough.v1"   # created by the benchmark, read by nothing else
USERS = 3_000                         # keys of the keyed variants, about the benchmark's users
BY_KEY = Types.ROW([Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
HOUR_MS = 3_600_000


class Touch(KeyedProcessFunction):
    """Per record, in ``mode`` ``state``: its key's count read and written (a pickled tuple,
    as the job's states are); ``timer``: also an event-time timer an hour ahead; ``plain``:
    neither. The record passes through."""

    def __init__(self, mode: str):
        self.touch_state, self.timer = mode in ("state", "timer"), mode == "timer"

    def open(self, runtime_context: RuntimeContext):
        internals.commit_touched_keys_only()   # as the job's keyed operators commit
        self.state = runtime_context.get_state(ValueStateDescriptor("touched", PICKLED))

    def process_element(self, value, ctx):
        if self.touch_state:
            seen = self.state.value() or (0, 0)
            self.state.update((seen[0] + 1, ctx.timestamp()))
        if self.timer:
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + HOUR_MS)
        yield Row(k=contracts.record_key(ctx.get_current_key()), v=value)

    def on_timer(self, timestamp, ctx):
        return iter(())


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keyed", choices=("plain", "state", "timer"),
                        help="the job's shape instead (module docstring)")
    parser.add_argument("--keys", type=int, default=USERS, help="keys of the keyed variants")
    job_config.add_arguments(parser)
    args = parser.parse_args(argv)
    cfg = job_config.from_arguments(args)
    env, t_env = create_environment(cfg)
    raw, _ = kafka_sources(t_env, cfg)
    if args.keyed:
        install_timer_fix(env)   # the job's Python operator classes (the plain variant keeps PyFlink's)
        keys = args.keys
        rows = raw.map(lambda r: Row(r[2] % keys, r[0]), output_type=BY_KEY).name("Key")
        out = keyed(rows, BY_KEY).process(Touch(args.keyed), output_type=KEYED_BYTES).name("Touch")
    else:
        # the record's own Kafka key is not in RAW_EVENT: key by partition, like-for-like in bytes
        out = raw.map(lambda r: Row(k=contracts.record_key(r[1]), v=r[0]), output_type=KEYED_BYTES).name("Pass through")
    table = kafka_sink(t_env, cfg, "passthrough", TOPIC, keyed=True)
    statements = t_env.create_statement_set()
    statements.add_insert(table, t_env.from_data_stream(out))
    statements.attach_as_datastream()
    env.execute("reco-passthrough")
    return 0


if __name__ == "__main__":
    sys.exit(main())
