import ast
from pathlib import Path

from flink_jobs import contracts

ROOT = Path(__file__).resolve().parents[2]


def test_redis_keys_byte_for_byte():
    assert contracts.user_recommendations_key(42) == "reco:v1:user:42"
    assert contracts.item_similar_key(7) == "reco:v1:item:7:similar"
    assert contracts.TRENDING_KEY == "reco:v1:trending"


def test_record_keys_are_decimal_ascii():
    assert contracts.record_key(42) == b"42"
    assert contracts.record_key(0) == b"0"


def test_topics_as_the_design_names_them():
    specs = {s.name: s for s in contracts.topic_specs(event_partitions=6)}
    assert set(specs) == {"reco.user-events.v1", "reco.items.v1", "reco.recommendations.v1",
                          "reco.item-neighbors.v1", "reco.user-events.dlq.v1"}
    assert set(specs) == set(contracts.TOPIC_RECORDS)
    assert specs["reco.user-events.v1"].partitions == 6
    compacted = {n for n, s in specs.items() if s.config.get("cleanup.policy") == "compact"}
    assert compacted == {"reco.items.v1", "reco.recommendations.v1"}


def test_redis_key_literals_appear_only_in_contracts():
    offenders = []
    for path in list(ROOT.glob("flink_jobs/**/*.py")) + list(ROOT.glob("udfs/**/*.py")):
        if path.name == "contracts.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("reco:v"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def _imports(pattern: str) -> list[tuple[str, str]]:
    out = []
    for path in ROOT.glob(pattern):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out += [(path.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                out.append((path.name, node.module))
    return out


def test_udfs_import_no_engine_or_io_library():
    banned = {"pyflink", "kafka", "redis", "flink_jobs", "reco_tools"}
    assert [f"{f}: {n}" for f, n in _imports("udfs/**/*.py") if n.split(".")[0] in banned] == []


def test_the_shipped_job_imports_none_of_the_tools():
    """flink run ships flink_jobs, udfs and schemas only (-pyfs): nothing there may need the
    tools' package or their dependencies (kafka-python, tqdm, matplotlib)."""
    banned = {"reco_tools", "kafka", "tqdm", "matplotlib", "bench"}
    found = [f"{f}: {n}" for f, n in _imports("flink_jobs/**/*.py") + _imports("udfs/**/*.py")
             if n.split(".")[0] in banned]
    assert found == []
    assert "-pyfs flink_jobs,udfs,schemas" in (ROOT / "deploy" / "flink" / "cluster.sh").read_text()
