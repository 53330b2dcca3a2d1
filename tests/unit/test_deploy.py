"""The Kubernetes deployment against the rest of the project: nothing here runs a cluster
(CI has none), but the settings that make the guarantee must agree with the standalone
cluster's, the job's arguments and settings file must pass the job's own validation, and
the image must be built from the versions the project pins."""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from flink_jobs import config as job_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
API = K8S / "api"


def _load(name: str, path: Path):
    """A script of deploy/k8s (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


image_files = _load("reco_image_files", K8S / "image_files.py")       # the Dockerfile and .dockerignore, read
render_topics = _load("reco_render_topics", K8S / "render_topics.py")  # topics.yaml from the contracts
# The settings behind exactly-once and recovery: they must not drift between deployments.
GUARANTEE_KEYS = ("state.backend.type", "execution.checkpointing.incremental",
                  "execution.checkpointing.externalized-checkpoint-retention",
                  "execution.checkpointing.num-retained", "heartbeat.interval", "heartbeat.timeout")


@pytest.fixture(scope="module")
def deployment():
    return yaml.safe_load((K8S / "flink-deployment.yaml").read_text())


def _standalone() -> dict:
    text = (ROOT / "deploy" / "flink" / "config.yaml").read_text()
    return yaml.safe_load(re.sub(r"@\w+@", "0", text))


def test_the_standalone_template_parses_as_yaml_before_its_placeholders_are_filled():
    conf = yaml.safe_load((ROOT / "deploy" / "flink" / "config.yaml").read_text())
    assert conf["rest.port"] == "@REST_PORT@" and conf["python.executable"] == "@VENV@/bin/python"


def test_no_cluster_configuration_overrides_the_jobs_restart_strategy(deployment):
    # the job sets a bounded one itself (flink_jobs/guarantees.py)
    for conf in (deployment["spec"]["flinkConfiguration"], _standalone()):
        assert not [k for k in conf if k.startswith("restart-strategy")]


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
    flink = next(d.split("==")[1] for d in pins["optional-dependencies"]["job"] if d.startswith("apache-flink=="))
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
    and the job must not run as root. The image carries the job's packages and the tools
    (reco-topics, ...; their extra installed), not the lab, the benchmarks or the tests."""
    lines = [line.split()[1] for line in (K8S / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    text = (K8S / "Dockerfile").read_text()
    first_run = text.index("\nRUN ")
    assert lines == ["root", "flink"] and text.index("USER root") < first_run
    assert text.rindex("USER flink") > text.rindex("\nRUN ")
    stages = image_files.parse(text)
    image = image_files.stage_chain(stages, stages[-1])
    copied = {ins.args[0] for stage in image for ins in stage.instructions
              if ins.keyword == "COPY" and "from" not in ins.flags and ins.args[-1].startswith("/opt/reco/")}
    assert {"flink_jobs", "udfs", "schemas", "reco_tools"} <= copied and not copied & {"lab", "bench", "tests", "data"}
    installs = [ins.args[0] for stage in image for ins in stage.instructions
                if ins.keyword == "RUN" and "uv pip install" in ins.args[0]]
    assert any("-r /opt/reco/pyproject.toml --extra job --extra tools" in run for run in installs)
    assert any("--no-deps -e /opt/reco" in run for run in installs)   # the tools' commands


def test_image_builds_the_timer_fix_in_a_jdk_stage_as_setup_does():
    """The job exits without the timer-fix jar (internals.install_timer_fix), and the base
    image has a JRE only: a stage built FROM the image's Python stage (its PyFlink) adds a
    JDK of the same Java and runs deploy/jars/build-timer-fix.sh, as deploy/setup.sh does;
    the image copies its jar where internals.TIMER_FIX_JAR looks, beside the connector."""
    from flink_jobs import internals

    text = (K8S / "Dockerfile").read_text()
    stages = image_files.parse(text)
    final = stages[-1]
    image = image_files.stage_chain(stages, final)
    # no RECO_JARS_DIR in the image: internals.JARS_DIR is /opt/reco/.cache/jars, a checkout's
    assert "RECO_JARS_DIR" not in image_files.environment(image)
    jars = "/opt/reco/.cache/jars/" + internals.TIMER_FIX_JAR.parent.name + "/"   # .../flink/, main.CONNECTOR_DIR too
    built = [ins for ins in final.instructions if ins.keyword == "COPY" and ins.flags.get("from")]
    jars_built = [ins for ins in built if ins.args[0].endswith(".jar")]
    assert len(jars_built) == 1, "the image copies no timer-fix jar from a build stage: the job would exit"
    timer_fix = jars_built[0]
    assert timer_fix.args[-1] == jars and timer_fix.args[0].endswith("/" + internals.TIMER_FIX_JAR.name)
    stage = next(s for s in stages if s.name == timer_fix.flags["from"])
    assert [s.name for s in image_files.stage_chain(stages, stage)][:-1] == [image[0].name]   # FROM the Python stage
    jdk = [ins.flags["from"] for ins in stage.instructions if ins.keyword == "COPY" and ins.flags.get("from")]
    java = re.search(r"FROM flink:\S+-java(\d+)", text).group(1)
    assert len(jdk) == 1 and jdk[0].startswith(f"eclipse-temurin:{java}-jdk")
    [run] = [ins.args[0] for ins in stage.instructions if ins.keyword == "RUN"]
    words = run.split()
    script = words.index("/build/deploy/jars/build-timer-fix.sh")
    assert words[script + 1:script + 3] == ["/opt/reco/.venv/bin/python", timer_fix.args[0]]
    sources = {ins.args[0]: ins.args[-1] for ins in stage.instructions if ins.keyword == "COPY" and not ins.flags}
    assert sources == {"deploy/jars/build-timer-fix.sh": "/build/deploy/jars/",
                       "deploy/jars/timer-fix": "/build/deploy/jars/timer-fix"}   # the script finds its sources
    # the connector, checksum-pinned, in the same folder
    [connector] = [ins for ins in final.instructions if ins.keyword == "ADD"]
    assert connector.flags.get("checksum", "").startswith("sha256:") and connector.args[-1] == jars


def test_dockerignore_keeps_the_context_to_what_the_image_copies():
    """Without .dockerignore the build context carried .venv, .cache, .run and .git (about
    1 GB). Every path the Dockerfile copies must stay in, with every file under it."""
    ignore = image_files.DockerIgnore.load()
    sources = [src for dockerfile in (K8S / "Dockerfile", API / "Dockerfile")
               for src in image_files.context_sources(image_files.parse(dockerfile.read_text()))]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists() and not ignore.ignored(source), f"the Dockerfile copies {source}: .dockerignore drops it"
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
        dropped = [f for f in files if ignore.ignored(f.relative_to(ROOT).as_posix())
                   and "__pycache__" not in f.parts and f.suffix != ".pyc"]
        assert not dropped, f".dockerignore drops files the Dockerfile copies: {dropped}"
    for path in (".venv/bin/python", ".cache/jars/flink/x.jar", ".run/kafka/x", ".git/HEAD", "data/x.csv",
                 "lab/demo.py", "bench/e2e.py", "tests/conftest.py", "flink_jobs/__pycache__/main.cpython-311.pyc"):
        assert ignore.ignored(path), path
    context = list(ignore.context_files(ROOT))
    size = sum((ROOT / f).stat().st_size for f in context)
    assert size < 2_000_000, f"a build context of {size} bytes: {sorted({f.split('/')[0] for f in context})}"


def test_one_image_name_in_the_manifest_the_dockerfile_and_the_docs(deployment):
    """The name docker build tags is the one the FlinkDeployment runs: <registry>/reco-flink
    at the project's version (<registry> replaced before applying)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    name = f"<registry>/reco-flink:{version}"
    assert deployment["spec"]["image"] == name
    build = f"docker build -f deploy/k8s/Dockerfile -t {name} ."
    for doc in (K8S / "Dockerfile", ROOT / "README.md", ROOT / "docs" / "operations.md"):
        text = doc.read_text()
        assert build in text, f"{doc.relative_to(ROOT)} builds another image name than {name}"
        others = set(re.findall(r"[\w./<>-]*reco-flink:[\w.-]+", text)) - {name}
        assert not others, f"{doc.relative_to(ROOT)} names {others}"


# --- the topics on Kubernetes: Strimzi KafkaTopics from the contracts ------

def _topics_yaml() -> list[dict]:
    return list(yaml.safe_load_all((K8S / "topics.yaml").read_text()))


def test_topics_yaml_is_rendered_from_topic_specs():
    """deploy/k8s/topics.yaml is render_topics.py's output for flink_jobs.contracts.topic_specs,
    with the deployment's own settings (event partitions, replicas, cluster) read back from the
    file: a change of the contracts fails here until the file is rendered again."""
    from flink_jobs.contracts import USER_EVENTS_TOPIC, topic_specs

    resources = [r for r in _topics_yaml() if r]
    events = next(r for r in resources if r["spec"]["topicName"] == USER_EVENTS_TOPIC)
    settings = dict(event_partitions=events["spec"]["partitions"], replicas=events["spec"]["replicas"],
                    cluster=events["metadata"]["labels"]["strimzi.io/cluster"],
                    namespace=events["metadata"]["namespace"])
    assert (K8S / "topics.yaml").read_text() == render_topics.render(**settings), \
        "deploy/k8s/topics.yaml is stale: .venv/bin/python deploy/k8s/render_topics.py"
    as_topics = {r["spec"]["topicName"]: (r["spec"]["partitions"], r["spec"].get("config", {})) for r in resources}
    assert as_topics == {s.name: (s.partitions, dict(s.config)) for s in topic_specs(settings["event_partitions"])}
    assert {r["kind"] for r in resources} == {"KafkaTopic"}
    assert settings["replicas"] >= 3   # exactly-once needs topics that survive a broker


def test_topics_are_applied_with_the_job_and_fit_its_parallelism(deployment):
    """kustomization.yaml applies topics.yaml (the job refuses to start without its topics);
    the events topic has partitions for the job's parallelism (the job refuses fewer); job.toml
    reads the Strimzi cluster that creates them."""
    from flink_jobs.contracts import USER_EVENTS_TOPIC

    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "topics.yaml" in kustomization["resources"]
    events = next(r for r in _topics_yaml() if r and r["spec"]["topicName"] == USER_EVENTS_TOPIC)
    cfg = job_config.JobConfig.load(K8S / "job.toml", env={})
    assert events["spec"]["partitions"] >= max(cfg.parallelism, deployment["spec"]["job"]["parallelism"])
    cluster, namespace = events["metadata"]["labels"]["strimzi.io/cluster"], events["metadata"]["namespace"]
    assert cfg.kafka_bootstrap.startswith(f"{cluster}-kafka-bootstrap.{namespace}.svc:")


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


# --- the read API's image and Deployment ---------------------------------------------

def _api_manifests() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((API / "api.yaml").read_text())}


def test_the_api_image_serves_from_what_it_copies(tmp_path):
    """The API's image copies a few packages into /src and pip-installs them with the api
    extra: laid out here the same way, the app starts from those files alone (no module of
    the checkout outside them), answers /healthz (503: no Redis here) and serves the page."""
    stages = image_files.parse((API / "Dockerfile").read_text())
    for ins in stages[-1].instructions:
        if ins.keyword == "COPY" and "from" not in ins.flags:
            *sources, dest = ins.args
            for src in sources:
                target = tmp_path / dest.lstrip("/") / (Path(src).name if dest.endswith("/") else "")
                if (ROOT / src).is_dir():
                    shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / src, target)
    install = next(ins.args[0] for ins in stages[-1].instructions if ins.keyword == "RUN")
    assert 'pip install --no-cache-dir "/src[api]"' in install
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not {d.split(">")[0].split("=")[0] for d in extras["api"]} & {"apache-flink", "numpy"}
    code = """
import json, sys
from fastapi.testclient import TestClient
from reco_api.server import app_from_env
with TestClient(app_from_env()) as client:   # as a context: the app's lifespan opens its client
    health, page = client.get("/healthz"), client.get("/")
mods = {m: getattr(sys.modules[m], "__file__", None) for m in list(sys.modules)
        if m.split(".")[0] in ("reco_api", "reco_client", "flink_jobs", "schemas", "udfs", "reco_tools", "pyflink")}
print(json.dumps({"health": health.status_code, "page": page.status_code, "html": page.text[:200], "modules": mods}))
"""
    env = {"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin",
           "RECO_REDIS_URL": "redis://127.0.0.1:1/0", "RECO_REDIS_CONNECT_TIMEOUT_MS": "200"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["health"] == 503 and result["page"] == 200 and "<html" in result["html"].lower()
    outside = {m: f for m, f in result["modules"].items() if f and not f.startswith(str(tmp_path / "src"))}
    assert not outside, f"imported from outside the image's files: {outside}"
    assert not any(m.split(".")[0] in ("udfs", "reco_tools", "pyflink") for m in result["modules"])


def test_the_api_deployment_runs_the_image_with_the_jobs_redis_secret_and_probes_healthz(deployment):
    from reco_api.app import create_app
    from reco_client import Settings

    manifests = _api_manifests()
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == f"<registry>/reco-api:{version}"
    assert f"docker build -f deploy/k8s/api/Dockerfile -t <registry>/reco-api:{version} ." in \
        (API / "Dockerfile").read_text()
    env = {e["name"]: e for e in container["env"]}
    job_env = {e["name"]: e for e in deployment["spec"]["podTemplate"]["spec"]["containers"][0]["env"]}
    assert env["RECO_REDIS_URL"]["valueFrom"] == job_env["RECO_REDIS_URL"]["valueFrom"]
    paths = create_app(Settings()).openapi()["paths"]
    assert container["readinessProbe"]["httpGet"]["path"] in paths
    port = container["ports"][0]["containerPort"]
    assert f'"--port", "{port}"' in (API / "Dockerfile").read_text()
    assert manifests["Service"]["spec"]["selector"] == manifests["Deployment"]["spec"]["selector"]["matchLabels"]


# --- the standalone cluster's shape (deploy/flink/cluster.sh) ---------------------------------

@pytest.mark.parametrize("setting, value", [("RECO_FLINK_TASKMANAGERS", "0"), ("RECO_FLINK_TASKMANAGERS", "two"),
                                            ("RECO_FLINK_SLOTS", "0"), ("RECO_FLINK_SLOTS", "-1")])
def test_cluster_script_refuses_a_bad_shape_before_starting_anything(tmp_path, setting, value):
    proc = subprocess.run([str(ROOT / "deploy" / "flink" / "cluster.sh"), "start"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "RECO_RUN_DIR": str(tmp_path), setting: value}, timeout=30)
    assert proc.returncode == 1
    assert f"{setting}={value} is not" in proc.stderr
    assert not any(tmp_path.iterdir())   # no conf written, nothing started


def test_cluster_submit_ships_the_connector_from_reco_jars_dir(tmp_path):
    """RECO_JARS_DIR moves the jars for every script (deploy/setup.sh puts them there):
    submit ships the connector found there, and says where it looked when there is none."""
    def submit(jars: Path):
        return subprocess.run([str(ROOT / "deploy" / "flink" / "cluster.sh"), "submit"], capture_output=True,
                              text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "RECO_JARS_DIR": str(jars), "RECO_FLINK_DRY_RUN": "1",
                                   "RECO_FLINK_REST_PORT": "1", "RECO_RUN_DIR": str(tmp_path / "run")})

    missing = submit(tmp_path / "none")
    assert missing.returncode == 1 and f"no Kafka connector jar in {tmp_path / 'none'}/flink" in missing.stderr
    connector = tmp_path / "jars" / "flink" / "flink-sql-connector-kafka-0.0.0.jar"
    connector.parent.mkdir(parents=True)
    connector.write_bytes(b"")
    proc = submit(tmp_path / "jars")
    assert proc.returncode == 0, proc.stderr
    assert f" -j {connector} " in proc.stdout
