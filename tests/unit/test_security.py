"""Secrets and Kafka security: secrets hidden wherever settings are
logged or printed and never needed on a command line; Kafka client properties reach the job's
sources and sinks (quoted safely in the SQL DDL) and every tool."""

import argparse
import logging
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from flink_jobs import config as job_config
from flink_jobs.config import ConfigError, JobConfig
from flink_jobs.sensitive import (Properties, format_properties, parse_properties, redact_url,
                                  write_properties)

ROOT = Path(__file__).resolve().parents[2]
REDIS_SECRET = "s3cr3t-Redis-pw"
KAFKA_SECRET = "s3cr3t-Kafka-pw"
JAAS = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
        f'username="reco" password="{KAFKA_SECRET}";')
SASL = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": JAAS}


def _load(argv, env=None):
    parser = argparse.ArgumentParser()
    job_config.add_arguments(parser)
    args = parser.parse_args(argv)
    if env is None:
        return job_config.from_arguments(args)
    overrides = {k: v for k, v in vars(args).items() if k != "config"}
    props = overrides.pop("kafka_property") or []
    overrides["kafka_properties"] = dict(p.split("=", 1) for p in props) or None
    return JobConfig.load(args.config, env=env, overrides=overrides)


# -- redaction -----------------------------------------------------------------------------------

@pytest.mark.parametrize("url,shown", [
    (f"redis://:{REDIS_SECRET}@h:6379/0", "redis://:***@h:6379/0"),
    (f"rediss://reco:{REDIS_SECRET}@h:6380/1", "rediss://reco:***@h:6380/1"),
    (f"redis://reco:{REDIS_SECRET}/with@at@h:1/0", "redis://reco:***@h:1/0"),  # up to the last @
    (f"redis://h:1/0?password={REDIS_SECRET}&db=2", "redis://h:1/0?password=***&db=2"),
    ("redis://reco@h:1/0", "redis://reco@h:1/0"),   # a user name alone is no secret
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_job_config_repr_and_str_hide_passwords():
    cfg = JobConfig(redis_url=f"redis://reco:{REDIS_SECRET}@redis:6379/0",
                    kafka_properties={**SASL, "ssl.key.password": KAFKA_SECRET + "2",
                                      "ssl.truststore.password": KAFKA_SECRET + "3"})
    for text in (repr(cfg), str(cfg), f"{cfg}", str(cfg.redacted()), repr(cfg.kafka_properties)):
        assert REDIS_SECRET not in text and KAFKA_SECRET not in text
    assert "redis://reco:***@redis:6379/0" in str(cfg)
    assert "'security.protocol': 'SASL_PLAINTEXT'" in str(cfg)   # what is not secret is still shown
    assert "'sasl.jaas.config': '***'" in str(cfg)
    # the values themselves are intact, and survive pickling (the job's functions carry the config)
    import pickle
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and again.kafka_properties["sasl.jaas.config"] == JAAS
    assert again.redis_url.endswith(f"{REDIS_SECRET}@redis:6379/0")


def test_a_bad_redis_url_is_reported_without_its_password():
    with pytest.raises(ConfigError) as err:
        JobConfig(redis_url=f"http://reco:{REDIS_SECRET}@redis:6379/0")
    assert "redis_url must start with" in str(err.value) and REDIS_SECRET not in str(err.value)


MALFORMED_REDIS_URLS = [
    f"reco:{REDIS_SECRET}@redis:6379/0",                   # no scheme
    f":{REDIS_SECRET}@redis",
    f"//reco:{REDIS_SECRET}@redis:6379",
    f"redis:/reco:{REDIS_SECRET}@redis:6379/0",            # one slash
    f" redis://reco:{REDIS_SECRET}@redis:6379/0",          # a space in front
    f"redis://reco:{REDIS_SECRET}@redis:port/0",           # a port that is no number
    f"redis://reco:{REDIS_SECRET}/0@redis:6379/0",         # an unencoded /: the password parses as the port
    f"redis://:{REDIS_SECRET}",                            # no @host: the password parses as the port
    f"redis://reco:{REDIS_SECRET}@[::1]:6379/0",           # IPv6
    f"redis://reco:{REDIS_SECRET}@[::1:6379/0",            # IPv6 without its ]
    f"redis://redis:6379/0?db=x&password={REDIS_SECRET}",  # a query argument redis-py refuses
    f"redis://redis:6379/0?password=x@{REDIS_SECRET}",     # an @ in the query
    f"redis://reco:x?password=y@{REDIS_SECRET}@redis/0",
    f"unix://:{REDIS_SECRET}@/run/redis.sock",
]


@pytest.mark.parametrize("url", MALFORMED_REDIS_URLS)
def test_no_shape_of_redis_url_shows_its_password(url, capsys, caplog, monkeypatch):
    import traceback

    from flink_jobs import main as job_main
    from flink_jobs.redis_store import VersionedStore

    class NoJob:
        def execute(self, name):
            pass

    assert REDIS_SECRET not in redact_url(url)
    try:
        shown = repr(JobConfig(redis_url=url))
    except ConfigError as exc:
        shown = str(exc)
    assert REDIS_SECRET not in shown
    monkeypatch.setattr(job_main, "build_job", lambda cfg: NoJob())
    with pytest.raises(SystemExit):                         # a password on the command line is refused
        job_main.main(["--redis-url", url])
    monkeypatch.setenv("RECO_REDIS_URL", url)
    with caplog.at_level(logging.INFO):
        try:
            job_main.main([])
        except SystemExit:
            pass
    assert REDIS_SECRET not in capsys.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    try:
        VersionedStore.from_url(url)
    except Exception as exc:                                # what a tool prints, with the traceback
        assert REDIS_SECRET not in "".join(traceback.format_exception(exc))


def test_a_malformed_redis_url_is_refused_at_start():
    with pytest.raises(ConfigError, match=r"redis_url 'redis://reco:\*\*\*@redis:port/0' is not a URL"):
        JobConfig(redis_url=f"redis://reco:{REDIS_SECRET}@redis:port/0")


def test_a_redis_url_of_the_wrong_type_in_a_file_is_not_shown(tmp_path):
    f = tmp_path / "job.toml"
    f.write_text(f'redis_url = ["redis://:{REDIS_SECRET}@redis"]\n')
    with pytest.raises(ConfigError, match="redis_url must be str") as err:
        JobConfig.load(f, env={})
    assert REDIS_SECRET not in str(err.value)


def test_main_logs_its_settings_without_secrets(monkeypatch, caplog, tmp_path):
    from flink_jobs import main as job_main

    props = write_properties(tmp_path / "kafka.properties", SASL)
    built = []

    class NoJob:
        def execute(self, name):
            built.append(name)

    monkeypatch.setattr(job_main, "build_job", lambda cfg: built.append(cfg) or NoJob())
    monkeypatch.setenv("RECO_REDIS_URL", f"redis://reco:{REDIS_SECRET}@redis:6379/0")
    with caplog.at_level(logging.INFO, logger="reco.main"):
        assert job_main.main(["--kafka-properties-file", str(props), "--top-n", "7"]) == 0
    cfg = built[0]
    assert cfg.top_n == 7 and cfg.redis_url.endswith(f"{REDIS_SECRET}@redis:6379/0")   # read from env, file
    assert cfg.kafka_properties["sasl.jaas.config"] == JAAS
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "starting with" in logged and "redis://reco:***@redis:6379/0" in logged
    assert REDIS_SECRET not in logged and KAFKA_SECRET not in logged


@pytest.mark.parametrize("flags, names", [
    (["--kafka-property", f"sasl.jaas.config={JAAS}"], "--kafka-properties-file"),
    (["--kafka-property", "ssl.key.password=" + KAFKA_SECRET], "--kafka-properties-file"),
    (["--redis-url", f"redis://reco:{REDIS_SECRET}@redis:6379/0"], "RECO_REDIS_URL"),
])
def test_main_refuses_a_secret_on_its_command_line_without_echoing_it(flags, names, capsys, monkeypatch):
    # ps shows a process's command line to every user of the machine
    from flink_jobs import main as job_main

    def started(cfg):
        raise AssertionError("the job was built with a secret on its command line")
    monkeypatch.setattr(job_main, "build_job", started)
    with pytest.raises(SystemExit) as exit_:
        job_main.main(flags)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and names in err
    assert REDIS_SECRET not in err and KAFKA_SECRET not in err


# -- secrets from the environment or a file ------------------------------------------------------

def test_redis_url_from_a_file_or_the_environment(tmp_path):
    url = f"redis://reco:{REDIS_SECRET}@redis:6379/0"
    f = tmp_path / "redis-url"
    f.write_text(url + "\n")
    assert _load(["--redis-url-file", str(f)]).redis_url == url
    assert JobConfig.load(env={"RECO_REDIS_URL_FILE": str(f)}).redis_url == url
    assert JobConfig.load(env={"RECO_REDIS_URL": url}).redis_url == url
    toml = tmp_path / "job.toml"
    toml.write_text(f'redis_url_file = "{f}"\n')
    assert JobConfig.load(toml, env={}).redis_url == url
    # a higher layer's file beats a lower layer's value; both in one layer is refused
    toml.write_text('redis_url = "redis://file:1/0"\n')
    assert JobConfig.load(toml, env={"RECO_REDIS_URL_FILE": str(f)}).redis_url == url
    with pytest.raises(ConfigError, match="both redis_url and redis_url_file"):
        JobConfig.load(env={"RECO_REDIS_URL": "redis://a:1/0", "RECO_REDIS_URL_FILE": str(f)})
    with pytest.raises(ConfigError, match="redis_url_file"):
        JobConfig.load(env={"RECO_REDIS_URL_FILE": str(tmp_path / "missing")})


def test_kafka_properties_from_file_toml_environment_and_flags(tmp_path):
    f = write_properties(tmp_path / "kafka.properties", {**SASL, "client.id": "from-file"})
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    toml = tmp_path / "job.toml"
    toml.write_text('[kafka_properties]\n"client.id" = "from-toml"\n"request.timeout.ms" = 30000\n'
                    '"ssl.endpoint.identification.algorithm" = "https"\n')
    env = {"RECO_KAFKA_PROPERTIES_FILE": str(f), "RECO_KAFKA_PROPERTIES": "request.timeout.ms=40000\n"}
    cfg = _load(["--config", str(toml), "--kafka-property", "client.id=from-flag",
                 "--kafka-property", "metadata.max.age.ms=1000"], env=env)
    assert dict(cfg.kafka_properties) == {**SASL, "client.id": "from-flag", "request.timeout.ms": "40000",
                                          "ssl.endpoint.identification.algorithm": "https",
                                          "metadata.max.age.ms": "1000"}
    assert JobConfig().kafka_properties == {} and isinstance(cfg.kafka_properties, Properties)
    with pytest.raises(TypeError):
        cfg.kafka_properties["x"] = "y"   # frozen like the rest of the config


@pytest.mark.parametrize("key,message", [
    ("bootstrap.servers", "kafka_bootstrap"), ("group.id", "consumer_group"),
    ("transactional.id", "transactional_id_prefix"), ("isolation.level", "read_committed"),
    ("properties.security.protocol", "without the 'properties.' prefix"),
    ("x' = 'y", "not a Kafka property name"),
])
def test_kafka_properties_the_job_sets_itself_are_refused(key, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        JobConfig(kafka_properties={key: "v"})


def test_java_properties_format():
    text = ("# comment\n! also a comment\n\n"
            "security.protocol = SASL_SSL\n"
            "sasl.mechanism:SCRAM-SHA-256\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
            "    username=\"reco\" \\\n"
            "    password=\"p=w:d\";\n"
            "ssl.truststore.location /etc/ca.pem\n"
            "key\\ with\\=odd\\:chars=tab\\there \\u00e9\n"
            "empty=\n")
    assert parse_properties(text) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                            'username="reco" password="p=w:d";',
        "ssl.truststore.location": "/etc/ca.pem", "key with=odd:chars": "tab\there é", "empty": ""}
    hostile = {"a": " leading space", "b": "back\\slash\nnew line", "#c": "!x", "d": "it's 'quoted'"}
    assert parse_properties(format_properties(hostile)) == hostile


# -- the job's SQL DDL ---------------------------------------------------------------------------

def _with_options(clause: str) -> list[tuple[str, str]]:
    """The WITH clause of a CREATE TABLE read as Flink's SQL parser does: 'k' = 'v' pairs of
    string literals, a quote inside a literal written twice. Anything else fails."""
    literal = r"'((?:[^']|'')*)'"
    pair = re.compile(rf"\s*{literal}\s*=\s*{literal}\s*(,|$)")
    pairs, pos = [], 0
    while pos < len(clause):
        m = pair.match(clause, pos)
        assert m, f"not an option list at {clause[pos:pos + 40]!r}"
        pairs.append((m[1].replace("''", "'"), m[2].replace("''", "'")))
        pos = m.end()
    return pairs


def test_kafka_options_quote_hostile_values_into_one_option_each():
    from flink_jobs.kafka_tables import _kafka_options

    hostile = "127.0.0.1:9092', 'properties.security.protocol' = 'PLAINTEXT"
    cfg = JobConfig(kafka_bootstrap=hostile, kafka_properties=SASL)
    pairs = _with_options(_kafka_options(cfg, "reco.user-events.v1", **{"value.format": "raw"}))
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"an option was injected: {keys}"
    assert dict(pairs)["properties.bootstrap.servers"] == hostile
    # a quote inside a credential too
    jaas = JAAS.replace('username="reco"', "username=\"o'brien\"")
    cfg = JobConfig(kafka_bootstrap=hostile, kafka_properties={**SASL, "sasl.jaas.config": jaas})
    pairs = _with_options(_kafka_options(cfg, "reco.user-events.v1", **{"value.format": "raw"}))
    options = dict(pairs)
    assert len(pairs) == len(options) and options["properties.bootstrap.servers"] == hostile
    assert options["properties.security.protocol"] == "SASL_PLAINTEXT"
    assert set(options) == {"connector", "topic", "properties.bootstrap.servers", "properties.security.protocol",
                            "properties.sasl.mechanism", "properties.sasl.jaas.config", "value.format"}
    # the SQL connector jar shades the Kafka client: the login module is named by its shaded class
    assert options["properties.sasl.jaas.config"] == (
        "org.apache.flink.kafka.shaded." + jaas)
    # already shaded names are left alone
    cfg = JobConfig(kafka_properties={"sasl.jaas.config": "org.apache.flink.kafka.shaded." + JAAS})
    assert dict(_with_options(_kafka_options(cfg, "t")))["properties.sasl.jaas.config"] == (
        "org.apache.flink.kafka.shaded." + JAAS)


# -- the tools -------------------------------------------------------------------------------------

def test_tools_map_java_properties_to_kafka_python():
    from reco_tools.kafka_io import client_settings

    assert client_settings(None) == {} and client_settings({}) == {}
    assert client_settings(SASL) == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                     "sasl_plain_username": "reco", "sasl_plain_password": KAFKA_SECRET}
    tls = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
           "sasl.jaas.config": 'org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.'
                               'PlainLoginModule required username="u" password="a \\"quoted\\" pw";',
           "ssl.truststore.type": "PEM", "ssl.truststore.location": "/etc/kafka/ca.pem",
           "ssl.keystore.type": "PEM", "ssl.keystore.location": "/etc/kafka/client.pem",
           "ssl.key.password": "kp", "ssl.endpoint.identification.algorithm": "", "client.id": "me"}
    assert client_settings(tls) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
        "sasl_plain_password": 'a "quoted" pw', "ssl_cafile": "/etc/kafka/ca.pem",
        "ssl_certfile": "/etc/kafka/client.pem", "ssl_keyfile": "/etc/kafka/client.pem", "ssl_password": "kp",
        "ssl_check_hostname": False, "client_id": "me"}


def test_tools_refuse_what_kafka_python_cannot_do_and_say_why():
    from reco_tools.kafka_io import client_settings

    with pytest.raises(ValueError) as err:
        client_settings({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI",
                         "sasl.jaas.config": f'com.sun.security.auth.module.Krb5LoginModule required '
                                             f'keyTab="/k" password="{KAFKA_SECRET}";',
                         "ssl.truststore.location": "/etc/kafka/truststore.jks",
                         "ssl.truststore.password": KAFKA_SECRET, "linger.ms": "5"})
    message = str(err.value)
    for fragment in ("sasl.mechanism=GSSAPI", "Krb5LoginModule is not supported",
                     "ssl.truststore.location: kafka-python reads PEM files only",
                     "ssl.truststore.password", "linger.ms: not supported"):
        assert fragment in message
    assert KAFKA_SECRET not in message
    with pytest.raises(ValueError, match="sasl.jaas.config: needed with SASL"):
        client_settings({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"})
    with pytest.raises(ValueError, match="does not do sasl.mechanism=PLAIN"):
        client_settings({**SASL, "sasl.mechanism": "PLAIN"})


def test_every_tool_client_gets_the_properties(monkeypatch):
    from reco_tools import kafka_io, topics

    made = {}

    class Fake:
        def __init__(self, name):
            self.name = name

        def __call__(self, **settings):
            made[self.name] = settings
            return self

        def subscribe(self, topics):
            pass

        def close(self):
            pass

    monkeypatch.setattr(kafka_io, "KafkaProducer", Fake("producer"))
    monkeypatch.setattr(kafka_io, "KafkaConsumer", Fake("consumer"))
    monkeypatch.setattr(topics, "KafkaAdminClient", Fake("admin"))
    kafka_io.make_producer("h:1", SASL)
    kafka_io.make_consumer("h:1", "t", group_id="g", properties=SASL)
    topics.connect_admin("h:1", 1, SASL)
    for name in ("producer", "consumer", "admin"):
        assert made[name]["security_protocol"] == "SASL_PLAINTEXT", name
        assert made[name]["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (made[name]["sasl_plain_username"], made[name]["sasl_plain_password"]) == ("reco", KAFKA_SECRET)


@pytest.mark.parametrize("module", ["reco_tools.topics", "reco_tools.consume", "reco_tools.replay",
                                    "reco_tools.synth", "lab.demo"])
def test_every_kafka_cli_takes_the_properties_and_refuses_what_it_cannot_use(module, capsys, tmp_path, monkeypatch):
    import importlib

    monkeypatch.delenv("RECO_KAFKA_PROPERTIES_FILE", raising=False)
    monkeypatch.delenv("RECO_KAFKA_PROPERTIES", raising=False)
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_:
        main(["--kafka-property", "security.protocol=SASL_SSL", "--kafka-property", "sasl.mechanism=GSSAPI"])
    assert exit_.value.code == 2
    assert "sasl.mechanism=GSSAPI" in capsys.readouterr().err


# -- the demo --------------------------------------------------------------------------------------

def test_the_job_launcher_keeps_secrets_off_the_command_line(monkeypatch, tmp_path):
    from lab import jobs

    started = {}

    def popen(cmd, **kw):
        started.update(cmd=cmd, env=kw["env"])
        return None

    monkeypatch.setattr(jobs.subprocess, "Popen", popen)
    url = f"redis://reco:{REDIS_SECRET}@127.0.0.1:6379/0"
    jobs.start_job("127.0.0.1:9092", url, "run1", tmp_path / "job", "--top-n", "5", kafka_properties=SASL)
    line = " ".join(started["cmd"])
    assert REDIS_SECRET not in line and KAFKA_SECRET not in line
    assert started["env"]["RECO_REDIS_URL"] == url
    props = Path(started["cmd"][started["cmd"].index("--kafka-properties-file") + 1])
    assert stat.S_IMODE(props.stat().st_mode) == 0o600
    assert parse_properties(props.read_text()) == SASL
    # and the job reads both back
    cfg = _load(started["cmd"][3:], env=started["env"])
    assert cfg.redis_url == url and dict(cfg.kafka_properties) == SASL and cfg.top_n == 5


def test_demo_prints_the_redis_url_without_its_password(monkeypatch, capsys):
    from lab import demo

    class Stop(Exception):
        pass

    def stop(*a, **kw):
        raise Stop

    events = [{"event_id": "e", "user_id": 1, "item_id": 2, "event_type": "RATING", "value": 4.0, "event_time": 1}]
    monkeypatch.setattr(demo.movielens, "load_rating_events", lambda: events)
    monkeypatch.setattr(demo.movielens, "load_movies", lambda: {})
    monkeypatch.setattr(demo, "ensure_topics", stop)
    monkeypatch.setenv("RECO_REDIS_URL", f"redis://reco:{REDIS_SECRET}@127.0.0.1:6379/0")
    with pytest.raises(Stop):
        demo.main(["--events", "1"])
    out = capsys.readouterr().out
    assert "redis://reco:***@127.0.0.1:6379/0" in out and REDIS_SECRET not in out


# -- deploy/flink/cluster.sh submit -------------------------------------------------------------------

def _submit(*args, env=None, cwd=ROOT, root=ROOT):
    # RECO_FLINK_DRY_RUN prints the command; the REST port points nowhere, so that a script
    # without the dry run could not submit to a real cluster either
    return subprocess.run([str(root / "deploy" / "flink" / "cluster.sh"), "submit", *args], cwd=cwd,
                          env={**os.environ, "RECO_FLINK_DRY_RUN": "1", "RECO_FLINK_REST_PORT": "1",
                               **(env or {})}, capture_output=True, text=True, timeout=120)


def test_cluster_submit_without_the_connector_jar_says_so(tmp_path):
    """A checkout whose set-up has not fetched the jars (its own copy of the script, the
    project's venv): the submit names what is missing (it used to fail without a word)."""
    (tmp_path / "deploy" / "flink").mkdir(parents=True)
    script = tmp_path / "deploy" / "flink" / "cluster.sh"
    script.write_bytes((ROOT / "deploy" / "flink" / "cluster.sh").read_bytes())
    script.chmod(0o755)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    proc = _submit("--top-n", "5", cwd=tmp_path, root=tmp_path)
    assert proc.returncode != 0
    assert f"no Kafka connector jar in {tmp_path}/.cache/jars/flink: run deploy/setup.sh" in proc.stderr


@pytest.mark.parametrize("flags", [
    ["--redis-url", f"redis://reco:{REDIS_SECRET}@redis:6379/0"],
    [f"--redis-url=redis://:{REDIS_SECRET}@redis:6379/0"],
    ["--redis-url", f"redis://redis:6379/0?password={REDIS_SECRET}"],
    ["--kafka-property", f"sasl.jaas.config={JAAS}"],
    ["--kafka-property", f"ssl.key.password={KAFKA_SECRET}"],
])
def test_cluster_submit_refuses_secrets_as_flags(flags):
    proc = _submit("--top-n", "5", *flags)
    assert proc.returncode != 0
    assert "carries a secret" in proc.stderr and "RECO_REDIS_URL" in proc.stderr
    assert REDIS_SECRET not in proc.stdout + proc.stderr and KAFKA_SECRET not in proc.stdout + proc.stderr


def test_cluster_submit_passes_secrets_by_environment_and_file(tmp_path):
    props = write_properties(tmp_path / "kafka.properties", SASL)
    url_file = tmp_path / "redis-url"
    url_file.write_text(f"redis://reco:{REDIS_SECRET}@redis:6379/0\n")
    proc = _submit("--config", "deploy/local/demo.toml", "--kafka-properties-file", "kafka.properties",
                   "--redis-url-file=redis-url", "--kafka-property", "security.protocol=SASL_PLAINTEXT",
                   "--redis-url", "redis://redis:6379/0", "--top-n", "5", cwd=tmp_path,
                   env={"RECO_REDIS_URL": f"redis://:{REDIS_SECRET}@redis:6379/0"})
    assert proc.returncode == 0, proc.stderr
    command = proc.stdout
    assert REDIS_SECRET not in command and KAFKA_SECRET not in command
    assert " run -m localhost:1 -d -py flink_jobs/main.py " in command
    # files named relative to where the script was called from reach the job as absolute paths
    assert f"--kafka-properties-file {props}" in command and f"--redis-url-file {url_file}" in command
    assert "--config deploy/local/demo.toml" in command
    assert command.rstrip().endswith("--kafka-property security.protocol=SASL_PLAINTEXT "
                                     "--redis-url redis://redis:6379/0 --top-n 5")
