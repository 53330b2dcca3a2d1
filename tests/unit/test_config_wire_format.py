"""The output topics' wire formats and the Schema Registry settings (flink_jobs/config.py):
defaults, layers, validation, and the registry's password kept out of every message."""

import argparse
import pickle

import pytest

from flink_jobs import config as job_config
from flink_jobs.config import WIRE_FORMAT_SETTINGS, ConfigError, JobConfig

SECRET = "s3cr3t-Registry-pw"
URL = f"https://reco:{SECRET}@registry:8081"


def _from_argv(argv):
    parser = argparse.ArgumentParser()
    job_config.add_arguments(parser)
    return job_config.from_arguments(parser.parse_args(argv))


def test_every_output_topic_defaults_to_single_object_without_a_registry():
    cfg = JobConfig()
    assert {name: getattr(cfg, name) for name in WIRE_FORMAT_SETTINGS} == dict.fromkeys(WIRE_FORMAT_SETTINGS,
                                                                                        "single-object")
    assert cfg.confluent_topics() == {} and cfg.schema_registry_url == ""
    assert set(WIRE_FORMAT_SETTINGS.values()) == {"reco.recommendations.v1", "reco.item-neighbors.v1",
                                                  "reco.user-events.dlq.v1"}


def test_confluent_is_chosen_per_topic():
    cfg = JobConfig(recommendations_wire_format="confluent", dead_letters_wire_format="confluent",
                    schema_registry_url="http://registry:8081")
    assert cfg.confluent_topics() == {"reco.recommendations.v1": "recommendations_wire_format",
                                      "reco.user-events.dlq.v1": "dead_letters_wire_format"}


@pytest.mark.parametrize("settings", [
    {"recommendations_wire_format": "confluent"},
    {"item_neighbors_wire_format": "confluent"},
    {"dead_letters_wire_format": "confluent"},
])
def test_confluent_needs_schema_registry_url_and_says_so(settings):
    with pytest.raises(ConfigError) as err:
        JobConfig(**settings)
    setting = next(iter(settings))
    assert f"schema_registry_url must be set when {setting} is confluent" in str(err.value)


def test_every_confluent_topic_is_named_when_the_registry_is_missing():
    with pytest.raises(ConfigError) as err:
        JobConfig(recommendations_wire_format="confluent", item_neighbors_wire_format="confluent")
    assert ("schema_registry_url must be set when recommendations_wire_format, item_neighbors_wire_format are "
            "confluent") in str(err.value)


@pytest.mark.parametrize("value", ["avro", "Confluent", "", "single_object"])
def test_an_unknown_wire_format_is_refused(value):
    with pytest.raises(ConfigError, match=f"item_neighbors_wire_format must be single-object or confluent, "
                                          f"got {value!r}"):
        JobConfig(item_neighbors_wire_format=value)


@pytest.mark.parametrize("url, message", [
    ("registry:8081", "must be http://host:port or https://host:port"),
    ("ftp://registry:8081", "must be http://host:port or https://host:port"),
    ("http://", "must be http://host:port or https://host:port"),
    ("http://registry:port", "is not a URL"),
    ("http://registry:8081/?x=1", "takes no query or fragment"),
])
def test_a_bad_schema_registry_url_is_refused(url, message):
    with pytest.raises(ConfigError, match="schema_registry_url") as err:
        JobConfig(recommendations_wire_format="confluent", schema_registry_url=url)
    assert message in str(err.value)


@pytest.mark.parametrize("url", [
    f"https://reco:{SECRET}@registry:port",       # a port that is no number
    f"reco:{SECRET}@registry:8081",               # no scheme
    f"ftp://reco:{SECRET}@registry:8081",
    f"https://reco:{SECRET}@registry:8081/?a=b",
    f"https://reco:{SECRET}@[::1:8081",            # IPv6 without its ]
])
def test_no_bad_schema_registry_url_shows_its_password(url):
    with pytest.raises(ConfigError) as err:
        JobConfig(recommendations_wire_format="confluent", schema_registry_url=url)
    assert "schema_registry_url" in str(err.value) and SECRET not in str(err.value)


def test_a_registry_path_prefix_and_ipv6_are_accepted():
    for url in ("https://registry.example.com/api/ccompat/v7", "http://[::1]:8081"):
        assert JobConfig(recommendations_wire_format="confluent", schema_registry_url=url).schema_registry_url == url


def test_the_tls_ca_file_needs_https():
    with pytest.raises(ConfigError, match="schema_registry_tls_ca_file needs an https:// schema_registry_url"):
        JobConfig(schema_registry_url="http://registry:8081", schema_registry_tls_ca_file="/etc/ca.pem")
    cfg = JobConfig(schema_registry_url="https://registry:8081", schema_registry_tls_ca_file="/etc/ca.pem")
    assert cfg.schema_registry_tls_ca_file == "/etc/ca.pem"


def test_the_registry_password_is_hidden_wherever_settings_are_shown():
    cfg = JobConfig(recommendations_wire_format="confluent", schema_registry_url=URL)
    for text in (repr(cfg), str(cfg), str(cfg.redacted())):
        assert SECRET not in text
        assert "https://reco:***@registry:8081" in text
    assert cfg.redacted()["schema_registry_url"] == "https://reco:***@registry:8081"
    again = pickle.loads(pickle.dumps(cfg))   # the value itself is intact
    assert again.schema_registry_url == URL


def test_a_wrongly_typed_registry_url_in_a_file_is_reported_without_its_value(tmp_path):
    f = tmp_path / "job.toml"
    f.write_text(f'schema_registry_url = ["{URL}"]\n')
    with pytest.raises(ConfigError, match="schema_registry_url must be str, got list") as err:
        JobConfig.load(f, env={})
    assert SECRET not in str(err.value)


def test_layers_file_environment_flags(tmp_path):
    f = tmp_path / "job.toml"
    f.write_text('recommendations_wire_format = "confluent"\nschema_registry_url = "http://file:8081"\n')
    cfg = JobConfig.load(f, env={"RECO_ITEM_NEIGHBORS_WIRE_FORMAT": "confluent",
                                 "RECO_SCHEMA_REGISTRY_URL": URL})
    assert cfg.confluent_topics() == {"reco.recommendations.v1": "recommendations_wire_format",
                                      "reco.item-neighbors.v1": "item_neighbors_wire_format"}
    assert cfg.schema_registry_url == URL   # the environment beats the file
    cfg = JobConfig.load(f, env={}, overrides={"dead_letters_wire_format": "confluent",
                                               "schema_registry_url": "http://flag:8081"})
    assert (cfg.dead_letters_wire_format, cfg.schema_registry_url) == ("confluent", "http://flag:8081")


def test_the_url_with_its_password_comes_from_a_file(tmp_path):
    url_file = tmp_path / "registry-url"
    url_file.write_text(URL + "\n")
    cfg = _from_argv(["--recommendations-wire-format", "confluent", "--schema-registry-url-file", str(url_file)])
    assert cfg.schema_registry_url == URL
    f = tmp_path / "job.toml"
    f.write_text(f'schema_registry_url_file = "{url_file}"\nrecommendations_wire_format = "confluent"\n')
    assert JobConfig.load(f, env={}).schema_registry_url == URL
    assert JobConfig.load(env={"RECO_SCHEMA_REGISTRY_URL_FILE": str(url_file)}).schema_registry_url == URL
    with pytest.raises(ConfigError, match="gives both schema_registry_url and schema_registry_url_file"):
        JobConfig.load(env={"RECO_SCHEMA_REGISTRY_URL_FILE": str(url_file), "RECO_SCHEMA_REGISTRY_URL": URL})


def test_a_password_on_the_command_line_is_refused():
    with pytest.raises(ConfigError) as err:
        _from_argv(["--recommendations-wire-format", "confluent", "--schema-registry-url", URL])
    assert "--schema-registry-url with a password" in str(err.value) and "RECO_SCHEMA_REGISTRY_URL" in str(err.value)
    assert SECRET not in str(err.value)
    # without a password the flag is fine
    cfg = _from_argv(["--recommendations-wire-format", "confluent", "--schema-registry-url", "http://registry:8081"])
    assert cfg.schema_registry_url == "http://registry:8081"


# -- deploy/flink/cluster.sh submit: the same rule on the flink run command line ------------------

def _submit(*args, env=None, cwd=None):
    # RECO_FLINK_DRY_RUN prints the command; the REST port points nowhere (tests/unit/test_security.py)
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return subprocess.run([str(root / "deploy" / "flink" / "cluster.sh"), "submit", *args], cwd=cwd or root,
                          env={**os.environ, "RECO_FLINK_DRY_RUN": "1", "RECO_FLINK_REST_PORT": "1", **(env or {})},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("flags", [["--schema-registry-url", URL], [f"--schema-registry-url={URL}"]])
def test_cluster_submit_refuses_the_registry_password_as_a_flag(flags):
    proc = _submit("--recommendations-wire-format", "confluent", *flags)
    assert proc.returncode != 0
    assert "carries a secret" in proc.stderr and "RECO_SCHEMA_REGISTRY_URL" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


def test_cluster_submit_passes_the_registry_url_by_file_and_environment(tmp_path):
    url_file = tmp_path / "registry-url"
    url_file.write_text(URL + "\n")
    proc = _submit("--recommendations-wire-format", "confluent", "--schema-registry-url-file", "registry-url",
                   "--schema-registry-url", "https://registry:8081", cwd=tmp_path,
                   env={"RECO_SCHEMA_REGISTRY_URL": URL})
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout
    # a file named relative to where the script was called from reaches the job as an absolute path
    assert f"--schema-registry-url-file {url_file}" in proc.stdout
    assert "--schema-registry-url https://registry:8081" in proc.stdout
