"""The Kubernetes image without Docker (the project's machines have none): the files
deploy/k8s/Dockerfile puts into the image are laid out under a temporary root at their image
paths (/opt/reco -> <tmp>/opt/reco), and the job's entry point runs from there as the
FlinkDeployment starts it (its arguments, the ConfigMap's job.toml at its mount path, the
image's PYTHONPATH, the base image's working directory), up to a built job graph: no Kafka.
Needs a JVM and a JDK 17, as deploy/setup.sh does.

Where each file of the layout comes from (deploy/k8s/image_files.py reads the Dockerfile):
- COPY from the build context: the checkout's file, unless .dockerignore leaves it out;
- ADD of a URL: the file of that name deploy/setup.sh fetched into .cache/jars, which must
  have the ADD's --checksum;
- COPY --from=<a stage of the Dockerfile>: that stage built as its RUN builds it: its own
  context files laid out under a root of its own and its deploy/jars/build-timer-fix.sh run
  from there (with this machine's javac instead of the stage's /opt/jdk, and this project's
  venv for the image's, which has the same pins); any other RUN in a built stage fails;
- COPY --from=<an image> (uv, the JDK): tools of the build, never under /opt/reco (checked);
- the image's RUNs make the venv (emulated by this project's venv), the tools' commands and
  the owner: no file the job reads.

RECO_IMAGE_DOCKERFILE=<path> runs this against another Dockerfile, e.g. the one before the
timer-fix stage (git show <commit>:deploy/k8s/Dockerfile > /tmp/Dockerfile), which fails:
the timer-fix jar is missing."""

import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from flink_jobs import internals

pytestmark = pytest.mark.job

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = Path(os.environ.get("RECO_IMAGE_DOCKERFILE") or K8S / "Dockerfile")
IMAGE_PYTHON = "/opt/reco/.venv/bin/python"   # the FlinkDeployment's python.executable
BASE_WORKDIR = "/opt/flink"                   # the flink image's WORKDIR (and FLINK_HOME)
PROJECT = ("flink_jobs", "udfs", "reco_tools")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


image_files = _load("reco_image_files", K8S / "image_files.py")


@dataclass
class Layout:
    root: Path
    env: dict[str, str]              # the image's ENV, as written
    workdir: str
    from_images: list[tuple[str, str]]   # (image, destination) of COPY --from=<image>

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def environment(self) -> dict[str, str]:
        """The image's PYTHONPATH and RECO_* with their paths under the root; the rest of its
        ENV (PATH, uv's settings) names nothing the job reads."""
        return {key: ":".join(str(self.path(p)) if p.startswith("/") else p for p in value.split(":"))
                for key, value in self.env.items() if key == "PYTHONPATH" or key.startswith("RECO_")}


def _put(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _copy(sources: list[Path], names: list[str], dest: str, root: Path, keep) -> None:
    """Docker's COPY: a directory's contents go into the destination, a file to the
    destination or into it (a destination ending in / or several sources)."""
    target = root / dest.lstrip("/")
    into = dest.endswith("/") or len(sources) > 1
    for source, name in zip(sources, names):
        if source.is_dir():
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                rel = file.relative_to(source).as_posix()
                if keep(f"{name}/{rel}"):
                    _put(file, target / rel)
        else:
            _put(source, target / source.name if into else target)


def _fetched(url: str, checksum: str | None) -> Path:
    """The file an ADD of ``url`` downloads: the one of that name deploy/setup.sh fetched."""
    assert checksum and checksum.startswith("sha256:"), f"ADD {url} without --checksum=sha256:..."
    name = url.rsplit("/", 1)[1]
    found = sorted(internals.JARS_DIR.rglob(name))
    assert found, f"{name} (ADD {url}) is not in {internals.JARS_DIR}: run deploy/setup.sh"
    assert hashlib.sha256(found[0].read_bytes()).hexdigest() == checksum.split(":", 1)[1], \
        f"{found[0]} is not the file of ADD --checksum={checksum}"
    return found[0]


def lay_out(dockerfile: Path, root: Path, target: str | None = None) -> Layout:
    """The files of the image (``target``: of that stage) under ``root``."""
    stages = image_files.parse(dockerfile.read_text())
    by_name = {s.name: s for s in stages if s.name}
    stage = by_name[target] if target else stages[-1]
    ignore = image_files.DockerIgnore.load()
    keep = lambda rel: not ignore.ignored(rel)  # noqa: E731
    layout = Layout(root, {}, BASE_WORKDIR, [])
    root.mkdir(parents=True, exist_ok=True)
    for step in image_files.stage_chain(stages, stage):
        for ins in step.instructions:
            if ins.keyword == "WORKDIR":
                layout.workdir = ins.args[0]
            elif ins.keyword in ("COPY", "ADD") and "from" in ins.flags:
                src, dest = ins.args[:-1], ins.args[-1]
                if ins.flags["from"] in by_name:          # built in a stage: build it
                    built = root.parent / f"{root.name}-stage-{ins.flags['from']}"
                    if not built.exists():
                        _build_stage(dockerfile, ins.flags["from"], built)
                    _copy([built / s.lstrip("/") for s in src], src, dest, root, lambda rel: True)
                else:
                    layout.from_images.append((ins.flags["from"], dest))
            elif ins.keyword in ("COPY", "ADD"):
                src, dest = ins.args[:-1], ins.args[-1]
                if ins.keyword == "ADD" and all(image_files.is_url(s) for s in src):
                    _copy([_fetched(s, ins.flags.get("checksum")) for s in src], src, dest, root, keep)
                    continue
                for s in src:
                    assert keep(s) and (ROOT / s).exists(), f"{ins.keyword} {s}: not in the build context"
                _copy([ROOT / s for s in src], src, dest, root, keep)
    layout.env = image_files.environment(image_files.stage_chain(stages, stage))
    return layout


def _build_stage(dockerfile: Path, name: str, root: Path) -> None:
    """Stage ``name`` built under ``root``: its files laid out, then its RUN, which must be
    deploy/jars/build-timer-fix.sh (the only build step this knows)."""
    stages = image_files.parse(dockerfile.read_text())
    stage = next(s for s in stages if s.name == name)
    lay_out(dockerfile, root, target=name)
    for ins in stage.instructions:
        if ins.keyword != "RUN":
            continue
        words = shlex.split(ins.args[0])
        script = next((i for i, w in enumerate(words) if w.endswith("/build-timer-fix.sh")), None)
        assert script is not None, f"stage {name}: no emulation for RUN {ins.args[0]}"
        python, out = words[script + 1:script + 3]
        assert python == IMAGE_PYTHON, f"stage {name} compiles against {python}, not the image's PyFlink"
        proc = subprocess.run(["bash", str(root / words[script].lstrip("/")), sys.executable,
                               str(root / out.lstrip("/"))], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"stage {name}: {ins.args[0]}\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    layout = lay_out(DOCKERFILE, tmp_path_factory.mktemp("image") / "root")
    # what comes from other images (uv, the JDK) is a tool of the build, not part of the job
    assert not [dest for _, dest in layout.from_images if dest.startswith("/opt/reco")], layout.from_images
    return layout


def _run(layout: Layout, what: str, driver: str, args: list[str], extra_env: dict[str, str]) -> dict:
    """``driver`` on the project's venv Python, from the image's working directory, with the
    image's environment (the host's RECO_* and PYTHONPATH left out)."""
    env = {k: v for k, v in internals.child_environment().items()
           if not k.startswith("RECO_") and k not in ("PYTHONPATH", internals.WORKER_MODE)}
    env.update(layout.environment())
    env.update(extra_env)
    cwd = layout.path(layout.workdir)
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", driver, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{what} failed in the image ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Imports only what the image holds: the project's own editable install would find a package
# the image lacks in the checkout (PYTHONPATH comes first, but only for what is there).
_IMAGE_ONLY = """
import json, os, runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
def project_modules():
    return {name: getattr(module, "__file__", None) for name, module in sorted(sys.modules.items())
            if name.split(".")[0] in ("flink_jobs", "udfs", "reco_tools")}
"""

# As the FlinkDeployment's PythonDriver (-py main.py ARGS: `python main.py ARGS`), up to the
# built job: main.py's module run by path with the script's directory first on sys.path,
# then main()'s own steps without the partition check (it asks Kafka) and without execute.
_JOB = _IMAGE_ONLY + """
import argparse
script, args = sys.argv[1], sys.argv[2:]
sys.argv = [script, *args]
sys.path[0] = os.path.dirname(script)
main = runpy.run_path(script, run_name="image_check")
parser = argparse.ArgumentParser()
main["job_config"].add_arguments(parser)
cfg = main["job_config"].from_arguments(parser.parse_args(args))
env = main["build_job"](cfg, check_partitions=False)
graph = env._generate_stream_graph(clear_transformations=False)
operators = {}
for node in graph.getStreamNodes().toArray():
    factory = node.getOperatorFactory()
    if factory is not None and factory.getClass().getSimpleName() == "SimpleOperatorFactory":
        operators[node.getOperatorName()] = factory.getOperator().getClass().getName()
from flink_jobs import codec, internals
print(json.dumps({"nodes": graph.getStreamNodes().size(), "operators": operators,
                  "timer_fix_jar": str(internals.TIMER_FIX_JAR), "connector_jars": main["connector_jars"](),
                  "schema_dir": str(codec.SCHEMA_DIR), "bootstrap": cfg.kafka_bootstrap,
                  "script": main["__file__"], "modules": project_modules()}))
"""


def _deployment() -> dict:
    return yaml.safe_load((K8S / "flink-deployment.yaml").read_text())


def _mount_config_map(layout: Layout, deployment: dict) -> None:
    """The ConfigMap kustomization.yaml generates, at the FlinkDeployment's mount path."""
    pod = deployment["spec"]["podTemplate"]["spec"]
    generated = yaml.safe_load((K8S / "kustomization.yaml").read_text())["configMapGenerator"]
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    files = next(g["files"] for g in generated if g["name"] == volume["configMap"]["name"])
    for name in files:
        _put(K8S / name, layout.path(mount["mountPath"]) / name)


def _pod_environment(deployment: dict) -> dict[str, str]:
    """The container's env; a value from a Secret gets a stand-in."""
    env = deployment["spec"]["podTemplate"]["spec"]["containers"][0]["env"]
    return {e["name"]: e.get("value", "redis://redis.example:6379/0" if e["name"] == "RECO_REDIS_URL" else "x")
            for e in env}


def test_the_job_starts_from_the_files_the_image_holds(image):
    deployment = _deployment()
    job = deployment["spec"]["job"]
    assert job["args"][0] == "-py"
    assert deployment["spec"]["flinkConfiguration"]["python.executable"] == IMAGE_PYTHON
    _mount_config_map(image, deployment)
    args = [str(image.path(a)) if a.startswith("/") else a for a in job["args"][1:]]   # main.py, job.toml
    result = _run(image, "the job's entry point", _JOB, args, _pod_environment(deployment))

    root = str(image.root) + "/"
    outside = {name: file for name, file in result["modules"].items() if file and not file.startswith(root)}
    assert not outside, f"imported from outside the image: {outside}"
    assert result["script"] == str(image.path("/opt/reco/flink_jobs/main.py"))
    assert {"flink_jobs.internals", "flink_jobs.pipeline", "udfs.ranker"} <= result["modules"].keys()
    assert result["timer_fix_jar"] == str(image.path("/opt/reco/.cache/jars/flink/reco-pyflink-timers.jar"))
    assert result["connector_jars"] and all(j.startswith(f"file://{root}") for j in result["connector_jars"])
    assert result["schema_dir"].startswith(root)
    assert result["bootstrap"] == "kafka-kafka-bootstrap.kafka.svc:9092"   # job.toml, read from the mount
    assert result["nodes"] > 10
    # the timer fix is in effect: every Python operator is the patched class
    python = {name: cls for name, cls in result["operators"].items() if "Python" in cls}
    assert any(name.startswith("Ranker") for name in python), python
    assert all(cls.startswith("reco.pyflink.") for cls in python.values()), python


# Every command of pyproject.toml's [project.scripts] imports from the image's files, and
# reco-topics answers --help.
_TOOLS = _IMAGE_ONLY + """
import contextlib, importlib, io
for entry in sys.argv[1:]:
    module, _, function = entry.partition(":")
    assert callable(getattr(importlib.import_module(module), function)), entry
sys.argv[:] = ["reco-topics", "--help"]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        runpy.run_module("reco_tools.topics", run_name="__main__")
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
print(json.dumps({"help": out.getvalue(), "modules": project_modules()}))
"""


def test_the_tools_run_from_the_image(image):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    # reco-api has an image of its own (deploy/k8s/api; tests/unit/test_deploy.py starts it from
    # what that image copies); every other command is the job image's.
    assert scripts.pop("reco-api").startswith("reco_api.")
    result = _run(image, "the tools", _TOOLS, list(scripts.values()), {})
    root = str(image.root) + "/"
    assert "reco_tools.topics" in result["modules"] and "--bootstrap" in result["help"]
    outside = {name: file for name, file in result["modules"].items() if file and not file.startswith(root)}
    assert not outside, f"imported from outside the image: {outside}"
