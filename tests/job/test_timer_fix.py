"""The job's keyed Python operators, the Ranker's keyed broadcast one included, are built from
the timer fix (internals.install_timer_fix), also after PyFlink fuses chained Python operators."""

import pytest
from pyflink.common import Row, Types
from pyflink.datastream import StreamExecutionEnvironment

from flink_jobs import pipeline
from flink_jobs.config import JobConfig

pytestmark = pytest.mark.job


def test_every_keyed_python_operator_registers_its_timers_before_a_snapshot():
    env = StreamExecutionEnvironment.get_execution_environment()
    raw = env.from_collection([(b"", 0, 0, 0)], type_info=pipeline.RAW_EVENT)
    catalog = env.from_collection([Row(b"", b"1", 0, 0)], type_info=pipeline.RAW_ITEM)
    outputs = pipeline.build(raw, catalog, JobConfig(parallelism=2))
    for stream in (outputs.recommendations, outputs.item_neighbors, outputs.trending):
        stream.map(lambda x: x, output_type=Types.PICKLED_BYTE_ARRAY())
    graph = env._generate_stream_graph(clear_transformations=True)
    classes = {}
    for node in graph.getStreamNodes().toArray():
        factory = node.getOperatorFactory()
        if factory is not None and factory.getClass().getSimpleName() == "SimpleOperatorFactory":
            classes[node.getOperatorName()] = factory.getOperator().getClass().getName()
    keyed = {name: cls for name, cls in classes.items() if "Keyed" in cls}
    assert {"UserActivity", "ItemCooccurrence", "Trending", "Ranker"} <= {n.split(",")[0] for n in keyed}, classes
    # The Ranker's keyed broadcast operator is built by a Java translator; the patched class
    # replaces it in the generated graph, with PyFlink's side outputs and settings.
    assert all(cls.startswith("reco.pyflink.") for cls in keyed.values()), keyed
    ranker = next(node for node in graph.getStreamNodes().toArray() if node.getOperatorName().startswith("Ranker"))
    tags = sorted(tag.getId() for tag in ranker.getOperatorFactory().getOperator().getSideOutputTags().toArray())
    assert tags == ["item-neighbors"], tags
