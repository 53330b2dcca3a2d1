"""The job's Python operators, the Ranker's keyed broadcast one included, are the timer
fix's classes (internals.install_timer_fix: timers kept at a restore, bundles that end on
time), also after PyFlink fuses chained Python operators."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyflink.common import Row, Types
from pyflink.datastream import StreamExecutionEnvironment

from flink_jobs import internals, pipeline
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



# In a process of its own: create_environment configures the process (its Python worker mode)
# and the gateway as a submission does.
_SUBMITTED_CLASSES = """
import json
from flink_jobs.config import JobConfig
from flink_jobs.main import build_job
graph = build_job(JobConfig(parallelism=2), check_partitions=False)._generate_stream_graph(clear_transformations=True)
classes = {}
for node in graph.getStreamNodes().toArray():
    factory = node.getOperatorFactory()
    if factory is not None and factory.getClass().getSimpleName() == "SimpleOperatorFactory":
        classes[node.getOperatorName()] = factory.getOperator().getClass().getName()
print(json.dumps(classes))
"""


def test_every_python_operator_of_the_submitted_job_is_the_patched_class():
    """As main builds the job, with the Kafka sources' Python map before Decode: PyFlink
    fuses the two into a copy of the map's operator, and builds the Ranker's in Java; all
    must be the patched classes, or (for one) Decode's bundles end every second tick."""
    env = {**internals.child_environment(), internals.WORKER_MODE: "process"}
    proc = subprocess.run([sys.executable, "-c", _SUBMITTED_CLASSES], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    classes = json.loads(proc.stdout.strip().splitlines()[-1])
    python = {name: cls for name, cls in classes.items() if "Python" in cls}
    assert any("Decode and validate" in name for name in python), classes
    assert all(cls.startswith("reco.pyflink.") for cls in python.values()), python
