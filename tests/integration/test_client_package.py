"""The client as a consumer installs it: the wheel, without extras, in a fresh virtualenv.
It must stay small (no Flink, no numpy), carry the schemas, decode a record the job's codec
wrote and read a document the job's store wrote, from outside the checkout."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import redis

from flink_jobs import contracts, documents
from flink_jobs.codec import AvroCodec
from flink_jobs.redis_store import VersionedStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 60
RECORD = {"user_id": 42, "version": 3, "generated_at": 1_000, "event_time": 900, "model_version": 0,
          "items": [{"item_id": 7, "score": 0.8, "reason": "because you liked Heat (1995)"}]}

CONSUMER = """
import json, sys
from pathlib import Path
from reco_client import RecoClient, decode
record = decode("reco.recommendations.v1", Path(sys.argv[1]).read_bytes())
with RecoClient(redis_url=sys.argv[2]) as client:
    recs = client.recommendations(42)
print(json.dumps({"record": record, "version": recs.version, "items": [i.item_id for i in recs.items],
                  "fallback": recs.fallback, "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                  ("pyflink", "numpy", "kafka", "udfs"))}))
"""


def _run(*args, cwd=None):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def _source_tree(dest: Path) -> Path:
    """The checkout's files (tracked, or new and not ignored) copied to ``dest``: a build in
    the checkout itself would pick up a stale build/ directory."""
    files = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_the_wheel_installs_without_flink_and_reads_records_and_documents(stack, tmp_path):
    source = _source_tree(tmp_path / "src")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", source)
    wheel = next((tmp_path / "dist").glob("reco_flink-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"schemas/{p.name}" for p in (ROOT / "schemas").glob("*.avsc")} <= set(names)
    assert "reco_client/client.py" in names and not any(n.startswith(("lab/", "tests/", "bench/")) for n in names)

    venv = tmp_path / "venv"
    _run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv)
    site = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    before = _size_mb(site)
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    installed = _size_mb(site) - before
    print(f"client install: {installed:.1f} MB")
    assert installed < LIMIT_MB, f"the client installs {installed:.0f} MB with its dependencies (limit {LIMIT_MB} MB)"
    packages = {line.split("==")[0].lower() for line in _run(venv / "bin" / "python", "-m", "pip", "freeze").split()}
    assert not packages & {"apache-flink", "numpy", "kafka-python", "fastapi"}, packages

    value = tmp_path / "record.avro"
    value.write_bytes(AvroCodec(contracts.TOPIC_RECORDS[contracts.RECOMMENDATIONS_TOPIC]).encode(RECORD))
    url = stack.redis_url.rsplit("/", 1)[0] + "/14"
    redis.Redis.from_url(url).flushdb()
    VersionedStore.from_url(url).upsert(*documents.user_document(RECORD))
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    # From tmp_path, so that nothing of the checkout is importable: only the installed wheel.
    got = json.loads(_run(venv / "bin" / "python", "-I", script, value, url, cwd=tmp_path))
    assert got == {"record": RECORD, "version": 3, "items": [7], "fallback": False, "modules": []}
