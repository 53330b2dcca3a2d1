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
    assert {"flink_jobs", "udfs", "schemas"} <= copied and "reco_tools" not in copied
