"""The Kubernetes deployment against the rest of the project: nothing here runs a cluster
(CI has none), but the settings that make the guarantee must agree with the standalone
cluster's, the job's arguments and settings file must pass the job's own validation, and
the image must be built from the versions the project pins."""

import argparse
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from flink_jobs import config as job_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The settings behind exactly-once and recovery: they must not drift between deployments.
GUARANTEE_KEYS = ("state.backend.type", "execution.checkpointing.incremental",
                  "execution.checkpointing.externalized-checkpoint-retention",
                  "execution.checkpointing.num-retained", "restart-strategy.type",
                  "restart-strategy.fixed-delay.attempts", "restart-strategy.fixed-delay.delay",
                  "heartbeat.interval", "heartbeat.timeout")


@pytest.fixture(scope="module")
def deployment():
    return yaml.safe_load((K8S / "flink-deployment.yaml").read_text())


def _standalone() -> dict:
    text = (ROOT / "deploy" / "flink" / "config.yaml").read_text()
    return yaml.safe_load(re.sub(r"@\w+@", "0", text))


def test_guarantee_settings_equal_the_standalone_clusters(deployment):
    k8s, local = deployment["spec"]["flinkConfiguration"], _standalone()
    as_flink = lambda v: str(v).lower() if isinstance(v, bool) else str(v)  # noqa: E731 (YAML true == "true")
    assert {k: as_flink(k8s[k]) for k in GUARANTEE_KEYS} == {k: as_flink(local[k]) for k in GUARANTEE_KEYS}
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir",
                "high-availability.storageDir"):
        assert not k8s[key].startswith("file:"), f"{key} must be shared storage, not a pod's disk"


def test_job_arguments_and_settings_pass_the_jobs_validation(deployment):
    job = deployment["spec"]["job"]
    args = job["args"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert job["upgradeMode"] == "savepoint"
    assert args[:2] == ["-py", "/opt/reco/flink_jobs/main.py"]
    parser = argparse.ArgumentParser()
    job_config.add_arguments(parser)
    parsed = parser.parse_args(args[2:])
    assert parsed.config == "/opt/reco/conf/job.toml"
    # the file the ConfigMap mounts there
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    generated = kustomization["configMapGenerator"][0]
    assert generated["files"] == ["job.toml"]
    volumes = deployment["spec"]["podTemplate"]["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"] == generated["name"]
    # kustomize renames the generated ConfigMap; it must be told that a FlinkDeployment refers to it
    references = [yaml.safe_load((K8S / f).read_text()) for f in kustomization["configurations"]]
    paths = [(spec["kind"], spec["path"]) for ref in references for name in ref["nameReference"]
             if name["kind"] == "ConfigMap" for spec in name["fieldSpecs"]]
    assert ("FlinkDeployment", "spec/podTemplate/spec/volumes/configMap/name") in paths
    cfg = job_config.JobConfig.load(K8S / "job.toml", env={})
    assert cfg.parallelism == job["parallelism"]
    assert cfg.delivery_guarantee == "exactly-once" and cfg.redis_write == "versioned"
    assert cfg.idle_source_timeout_ms == 0
    assert cfg.transactional_id_prefix != job_config.JobConfig().transactional_id_prefix


def test_image_matches_the_pinned_versions_and_paths(deployment):
    dockerfile = (K8S / "Dockerfile").read_text()
    pom = (ROOT / "deploy" / "jars" / "pom.xml").read_text()
    connector = re.search(r"<flink.kafka.connector.version>(.+?)<", pom).group(1)
    assert f"ARG KAFKA_CONNECTOR_VERSION={connector}\n" in dockerfile
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    flink = next(d.split("==")[1] for d in pins["dependencies"] if d.startswith("apache-flink=="))
    assert dockerfile.startswith("#") and f"FROM flink:{flink}-java17" in dockerfile
    spec = deployment["spec"]
    assert spec["flinkVersion"] == "v" + "_".join(flink.split(".")[:2])
    assert spec["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{flink}.jar"
    env = {e["name"]: e.get("value") for e in spec["podTemplate"]["spec"]["containers"][0]["env"]}
    assert env["ENABLE_BUILT_IN_PLUGINS"] == f"flink-s3-fs-presto-{flink}.jar"  # checkpoints go to s3://
    python = spec["flinkConfiguration"]["python.executable"]
    assert python == spec["flinkConfiguration"]["python.client.executable"]
    assert python == "/opt/reco/.venv/bin/python" and "uv venv --python 3.11 /opt/reco/.venv" in dockerfile


def test_image_installs_as_root_runs_as_flink_and_ships_only_the_job():
    """The flink base image ends as USER flink: the install steps need root before them,
    and the job must not run as root. The image carries the job's packages, not the tools."""
    lines = [line.split()[1] for line in (K8S / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    text = (K8S / "Dockerfile").read_text()
    first_run = text.index("\nRUN ")
    assert lines == ["root", "flink"] and text.index("USER root") < first_run
    assert text.rindex("USER flink") > text.rindex("\nRUN ")
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "/opt/reco/" in line}
    assert {"flink_jobs", "udfs", "schemas"} <= copied and not copied & {"reco_tools", "lab", "bench", "tests"}


# --- docker-compose.yml in step with deploy/local/stack.sh ---------------

STACK_SH = ROOT / "deploy" / "local" / "stack.sh"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _stack_broker_settings() -> dict[str, str]:
    """The fixed key=value lines of stack.sh's kafka_config (those naming no port or path)."""
    text = STACK_SH.read_text()
    body = text[text.index("kafka_config() {"):]
    body = body[body.index("<<CONF\n") + len("<<CONF\n"):body.index("\nCONF\n")]
    pairs = (line.split("=", 1) for line in body.splitlines() if line and not line.startswith("#"))
    return {k: v for k, v in pairs if "$" not in k + v}


def _stack_default(variable: str) -> str:
    return re.search(r"\$\{" + variable + r":-([^}]*)\}", STACK_SH.read_text()).group(1)


def _compose_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _created_topics(compose: dict, event_partitions: str) -> dict:
    """name -> (partitions, {config}) from kafka-init's kafka-topics.sh lines."""
    import shlex

    init = compose["services"]["kafka-init"]
    script = "\n".join(init["command"]).replace("${RECO_EVENT_PARTITIONS:-4}", event_partitions)
    topics = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if not words or words[0] != "topic":
            continue
        parser = argparse.ArgumentParser()
        parser.add_argument("--topic", required=True)
        parser.add_argument("--partitions", type=int, required=True)
        parser.add_argument("--config", action="append", default=[])
        args = parser.parse_args(words[1:])
        assert args.topic not in topics, f"{args.topic} created twice"
        topics[args.topic] = (args.partitions, dict(c.split("=", 1) for c in args.config))
    return topics


def test_compose_creates_the_topics_of_topic_specs_with_a_one_shot_init():
    from flink_jobs.contracts import topic_specs
    from reco_tools import topics as topics_tool

    compose = _compose()
    init = compose["services"]["kafka-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init.get("restart", "no") == "no" and "ports" not in init
    assert "healthcheck" in compose["services"]["kafka"]
    script = "\n".join(init["command"])
    assert "--if-not-exists" in script and "--replication-factor 1" in script  # idempotent, like stack.sh
    # the same default number of event partitions in stack.sh, the topics tool and compose
    default = _stack_default("RECO_EVENT_PARTITIONS")
    assert default == "4" and topics_tool.ensure_topics.__defaults__[0] == int(default)
    assert "${RECO_EVENT_PARTITIONS:-" + default + "}" in script
    for partitions in (default, "7"):
        expected = {s.name: (s.partitions, dict(s.config)) for s in topic_specs(int(partitions))}
        assert _created_topics(compose, partitions) == expected


def test_compose_broker_has_the_settings_of_stack_sh():
    """Every fixed broker setting of stack.sh, retention off included (MovieLens records carry
    1996-2016 timestamps: a time retention would delete them within minutes)."""
    settings = _stack_broker_settings()
    assert settings.get("log.retention.hours") == "-1"
    assert {"auto.create.topics.enable", "transaction.max.timeout.ms", "process.roles"} <= settings.keys()
    kafka = _compose()["services"]["kafka"]
    env = {k: _compose_value(v) for k, v in kafka["environment"].items()}
    wanted = {"KAFKA_" + k.upper().replace(".", "_"): v for k, v in settings.items()}
    assert {k: env.get(k) for k in wanted} == wanted
    assert kafka["image"] == "apache/kafka:" + _kafka_version()
    # the same host port as stack.sh's default, on loopback only
    assert kafka["ports"] == [f"127.0.0.1:{_stack_default('RECO_KAFKA_PORT')}:9092"]


def _kafka_version() -> str:
    pom = (ROOT / "deploy" / "jars" / "pom.xml").read_text()
    return re.search(r"<kafka.version>([^<]+)<", pom).group(1)


def test_compose_redis_has_the_settings_of_stack_sh():
    redis = _compose()["services"]["redis"]
    command = redis["command"]
    start = STACK_SH.read_text()
    start = start[start.index("nohup redis-server"):]
    start = start[:start.index(">")]
    for flag, value in (("--save", '""'), ("--appendonly", "no")):   # no persistence in either
        assert f"{flag} {value}" in start
        assert command[command.index(flag) + 1] == value.strip('"')
    assert command[0] == "redis-server"
    assert redis["ports"] == [f"127.0.0.1:{_stack_default('RECO_REDIS_PORT')}:6379"]


# --- Prometheus reporter in both deployments (README "Monitoring") --------

PROM_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def test_prometheus_reporter_is_on_in_both_deployments_from_the_bundled_plugin(deployment):
    import pyflink

    text = (ROOT / "deploy" / "flink" / "config.yaml").read_text().replace("@PROM_PORTS@", "9249-9258")
    local = yaml.safe_load(re.sub(r"@\w+@", "0", text))
    k8s = deployment["spec"]["flinkConfiguration"]
    for conf in (local, k8s):
        assert conf["metrics.reporter.prom.factory.class"] == PROM_FACTORY
    assert local["metrics.reporter.prom.port"] == "9249-9258"   # the JobManager and TaskManagers share a host
    # cluster.sh fills in the range from RECO_FLINK_PROM_PORT
    script = (ROOT / "deploy" / "flink" / "cluster.sh").read_text()
    assert 'PROM_PORT="${RECO_FLINK_PROM_PORT:-9249}"' in script and '-e "s#@PROM_PORTS@#$PROM_PORTS#g"' in script
    # The plugin ships in the distribution's plugins/ (the pip package's, which cluster.sh runs, and
    # the image's /opt/flink/plugins): nothing to download or enable (ENABLE_BUILT_IN_PLUGINS is for opt/).
    flink = pyflink.version.__version__
    plugin = Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus" / f"flink-metrics-prometheus-{flink}.jar"
    assert plugin.is_file()
    # the pod exposes the port and tells an annotation-driven Prometheus where to scrape
    pod = deployment["spec"]["podTemplate"]
    port = int(k8s["metrics.reporter.prom.port"])
    container = pod["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
