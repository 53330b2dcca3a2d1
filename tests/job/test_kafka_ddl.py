"""The job's Kafka tables as Flink's own SQL parser reads them: a hostile setting stays one
option's value, and kafka_properties reach every source and sink.
Needs a JVM, no Kafka: the tables are declared, not run."""

import pytest

from flink_jobs import internals
from flink_jobs import contracts
from flink_jobs.config import JobConfig
from flink_jobs.kafka_tables import SHADED_KAFKA, kafka_sink, kafka_sources
from flink_jobs.main import create_environment

pytestmark = pytest.mark.job

HOSTILE = "127.0.0.1:9092', 'x' = 'y"
JAAS = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
        "username=\"reco\" password=\"pw\";")
SASL = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": JAAS}


def _options(t_env, table: str) -> dict:
    from pyflink.java_gateway import get_gateway

    ident = get_gateway().jvm.org.apache.flink.table.catalog.ObjectIdentifier.of(
        t_env.get_current_catalog(), t_env.get_current_database(), table)
    resolved = t_env._j_tenv.getCatalogManager().getTable(ident).get().getResolvedTable()
    return dict(resolved.getOptions())


def _tables(cfg: JobConfig) -> dict[str, dict]:
    env, t_env = create_environment(cfg)
    kafka_sources(t_env, cfg)
    sinks = [kafka_sink(t_env, cfg, "recommendations", contracts.RECOMMENDATIONS_TOPIC, keyed=True),
             kafka_sink(t_env, cfg, "dead_letters", contracts.DEAD_LETTER_TOPIC, keyed=False)]
    return {table: _options(t_env, table) for table in ("user_events", "items", *sinks)}


def test_hostile_values_stay_one_option_and_properties_reach_every_table(monkeypatch):
    monkeypatch.setenv(internals.WORKER_MODE, "process")   # create_environment's default, undone after
    for table, options in _tables(JobConfig(kafka_bootstrap=HOSTILE, parallelism=1, kafka_properties=SASL)).items():
        assert "x" not in options, f"{table}: an option was injected"
        assert options["properties.bootstrap.servers"] == HOSTILE, table
        assert options["properties.security.protocol"] == "SASL_PLAINTEXT", table
        assert options["properties.sasl.mechanism"] == "SCRAM-SHA-512", table
        # the SQL connector jar shades the Kafka client: the login module by its shaded name
        assert options["properties.sasl.jaas.config"] == SHADED_KAFKA + JAAS, table
    # a quote inside a credential is a character of it, not the end of the literal
    jaas = JAAS.replace('username="reco"', "username=\"o'brien\"")
    for table, options in _tables(JobConfig(parallelism=1, kafka_properties={**SASL, "sasl.jaas.config": jaas})).items():
        assert options["properties.sasl.jaas.config"] == SHADED_KAFKA + jaas, table
