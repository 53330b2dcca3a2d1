"""The ceiling for the end-to-end benchmark: a PyFlink job with the job's own Kafka source,
settings and exactly-once sink, and one Python operator that passes each record through.

    deploy/flink/cluster.sh submit --py bench/passthrough.py [main.py flags]

Whatever the real job does beyond this costs its throughput; this job's figure is what
PyFlink, Kafka and the checkpointing alone allow on the same machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyflink.common import Row

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flink_jobs import config as job_config  # noqa: E402
from flink_jobs import contracts  # noqa: E402
from flink_jobs.kafka_tables import kafka_sink, kafka_sources  # noqa: E402
from flink_jobs.operators import KEYED_BYTES  # noqa: E402
from flink_jobs.main import create_environment  # noqa: E402

TOPIC = "reco.bench.passthrough.v1"   # created by the benchmark, read by nothing else


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    job_config.add_arguments(parser)
    cfg = job_config.from_arguments(parser.parse_args(argv))
    env, t_env = create_environment(cfg)
    raw, _ = kafka_sources(t_env, cfg)
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
