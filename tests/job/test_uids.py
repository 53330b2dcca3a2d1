"""Every operator of the job, the Table-API Kafka sources and sinks included, has a uid of
ours: a savepoint's state maps by uid, and an id hashed from the
topology changes with any change of the job. Needs a JVM, no Kafka: the job is built, not run."""

import re

import pytest

from flink_jobs import internals
from flink_jobs.config import JobConfig
from flink_jobs.main import build_job

pytestmark = pytest.mark.job


def _graph(cfg: JobConfig, monkeypatch):
    monkeypatch.setenv(internals.WORKER_MODE, "process")   # create_environment's default, undone after
    env = build_job(cfg, check_partitions=False)
    return env._generate_stream_graph(clear_transformations=True)


def _uids(graph) -> list[tuple[str, str | None]]:
    """(operator name with the planner's node ids taken out, uid: None for a generated id), sorted."""
    pairs = []
    for node in graph.getStreamNodes().toArray():
        name = re.sub(r"\[\d+\]|\$\d+", "", node.getOperatorName())   # user_events[1], *anonymous_datastream_source$3*
        pairs.append((name, node.getTransformationUID()))
    return sorted(pairs, key=lambda p: (p[0], p[1] or ""))


def _operator_ids(graph) -> list[str]:
    """The ids a savepoint's state is stored under, as the JobGraph derives them."""
    from pyflink.java_gateway import get_gateway

    generator = get_gateway().jvm.org.apache.flink.streaming.api.graph.StreamingJobGraphGenerator
    job_graph = generator.createJobGraph(graph)   # also fails on two equal uids
    return sorted(str(pair.getGeneratedOperatorID()) for vertex in job_graph.getVerticesAsArray()
                  for pair in vertex.getOperatorIDs())


def test_every_operator_has_a_stable_uid_of_ours(monkeypatch):
    first = _graph(JobConfig(parallelism=2), monkeypatch)
    pairs = _uids(first)
    missing = [name for name, uid in pairs if not uid]
    assert not missing, f"operators whose id Flink would generate from the topology: {missing}"
    uids = dict(pairs)   # by name where the name is unique
    assert len({uid for _, uid in pairs}) == len(pairs), pairs
    # The Table-API operators carry their table's name, not the planner's running node id
    # (table.exec.uid.format's default <id>_<transformation>).
    assert uids["Source: user_events"] == "user_events-source"
    assert uids["Source: items"] == "items-source"
    for table in ("recommendations_out", "item_neighbors_out", "dead_letters_out"):
        assert uids[f"{table}: Writer"] == f"{table}-sink"
        assert uids[f"{table}: Committer"] == f"Sink Committer: {table}-sink"
    assert not any(re.match(r"\d+_", uid) for _, uid in pairs), pairs
    # the keyed operators keep the uids their state was saved under
    assert {"user-activity-v2", "item-cooccurrence-v2", "trending-v2", "ranker-v2"} <= {uid for _, uid in pairs}

    # A second build, with settings changed that leave the topology alone (what an upgrade
    # through a savepoint does), gives the same uids and the same operator ids.
    second = _graph(JobConfig(parallelism=2, top_n=7, interest_weight=0.5, consumer_group="other",
                              transactional_id_prefix="other"), monkeypatch)
    assert _uids(second) == pairs
    assert _operator_ids(second) == _operator_ids(first)


def test_the_ranker_delivers_its_lists_to_their_sinks_without_another_python_operator(monkeypatch):
    """PyFlink fuses no Python operator after the Ranker (a keyed broadcast operator) into
    its worker: a Publish operator there would cost each list a crossing and a bundle wait."""
    graph = _graph(JobConfig(parallelism=2), monkeypatch)
    nodes = {node.getId(): node for node in graph.getStreamNodes().toArray()}
    [ranker] = [node for node in nodes.values() if node.getOperatorName() == "Ranker"]
    after = sorted(re.sub(r"\[\d+\]|\$\d+", "", nodes[edge.getTargetId()].getOperatorName())
                   for edge in ranker.getOutEdges().toArray())
    assert after == ["*anonymous_datastream_source*", "*anonymous_datastream_source*"], after
