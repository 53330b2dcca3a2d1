"""Every use of PyFlink's internals, in one place: an upgrade of PyFlink has this module
(and ``deploy/jars/timer-fix``, which it loads) to check, and nothing else.

- ``keyed``: a key-by without PyFlink's Python key-selector operator;
- ``side_output``: a side output without PyFlink's identity operator after it;
- ``install_timer_fix``: Python operators whose timers survive a restore and whose bundles
  end on time;
- ``use_worker_processes``: Python operators in worker processes on a local mini-cluster;
- ``at_bundle_end``: a function's own work at the end of each bundle (before a checkpoint);
- ``commit_touched_keys_only``: a bundle's state commit that does not grow with the cache
  and does not wait for the TaskManager key by key;
- ``python_execution_options``, ``subtask``, ``epoch_millis``: Python operators inside the
  TaskManager (thread mode), and what its runtime context and row conversion get wrong;
- ``Tally``: a metric of a value kept in Python that the TaskManager can read safely in
  thread mode;
- ``submitted_by_flink_cli``: whether ``flink run`` started the client;
- ``describe_topic``, ``broker_config``: the Kafka admin client of the connector jar, through
  PyFlink's JVM;
- ``configured``: an option of the configuration the job runs with.

Each relies on a private attribute, a private environment switch or a patched class of
PyFlink 2.2.1; ``tests/job/test_timer_fix.py``, ``tests/job/test_uids.py`` and
``tests/unit/test_state_commit.py`` fail when an upgrade breaks them.
"""

from __future__ import annotations

import os
import site
import sys
from functools import reduce
from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyflink.common import Types
from pyflink.datastream import DataStream, KeyedStream, OutputTag, StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway

ROOT = Path(__file__).resolve().parent.parent
# Where deploy/setup.sh puts the jars (RECO_JARS_DIR moves them, for every script and the job).
JARS_DIR = Path(os.environ.get("RECO_JARS_DIR") or ROOT / ".cache" / "jars")
TIMER_FIX_JAR = JARS_DIR / "flink" / "reco-pyflink-timers.jar"
_PATCHED = ("ExternalPythonProcessOperator", "ExternalPythonKeyedProcessOperator", "ExternalPythonKeyedCoProcessOperator")
WORKER_MODE = "_python_worker_execution_mode"   # PyFlink's private switch: "process" or "loopback"


def use_worker_processes() -> None:
    """On the local mini-cluster PyFlink runs every Python operator inside the client's own
    process ("loopback"): one core for the whole job, and the client's collect iterator and
    the operators share one interpreter. Worker processes use every core. A cluster always
    runs them as processes; this only changes the local case."""
    os.environ.setdefault(WORKER_MODE, "process")


def python_execution_options(mode: str, local: bool) -> dict[str, str]:
    """Flink options for Python operators in ``mode`` ("process" or "thread"). In thread mode
    the interpreter embedded in the TaskManager starts from the base Python's paths; on this
    machine (``local``) it needs this venv's packages (pemja, the dependencies) and the
    checkout's, as the worker processes get them."""
    options = {"python.execution-mode": mode}
    if mode == "thread" and local:
        options["python.pythonpath"] = os.pathsep.join([*site.getsitepackages(), str(ROOT)])
    return options


_AT_BUNDLE_END: list = []


def at_bundle_end(callback) -> None:
    """``callback()`` whenever a Python operator of this worker process ends a bundle (process
    mode), before the bundle's results go back to the TaskManager. A checkpoint barrier
    passes an operator only after its bundle has ended, so what ``callback`` does lands
    before that checkpoint. Bundles end every ``bundle_time_ms``/``bundle_size`` and at each
    barrier. A worker's operators all share the callbacks: each runs at any of their bundle
    ends (earlier than needed, never later).

    PyFlink gives functions no such hook: this wraps its private ``Operation.finish``, which
    the worker calls for every operation at the end of each bundle. Thread mode has no
    bundles (its operators do not call it): flush as you go there."""
    from pyflink.fn_execution.datastream.process import operations

    if not _AT_BUNDLE_END:
        finish = operations.Operation.finish

        def finish_then_flush(self):
            for flush in _AT_BUNDLE_END:
                flush()
            finish(self)
        operations.Operation.finish = finish_then_flush
    _AT_BUNDLE_END.append(callback)


def commit_touched_keys_only() -> None:
    """Make the keyed state commit at each bundle end visit only the keys of that bundle.

    A keyed Python operator of a worker process parks each key's state objects in an LRU of
    ``python.state.cache-size`` entries when the key changes, and PyFlink 2.2.1 commits at
    every bundle end by visiting every parked object, written or not: with a cache of tens
    of thousands of keys that is milliseconds per operator and bundle, ten bundles a second
    at live rates. Only objects of keys processed since the last commit can hold writes
    (the ones parked since, and the current key's; an object pushed out of the LRU is
    committed then), so the commit visits those. Committing an object twice is harmless:
    a commit sends the pending writes and forgets them.

    Beam's commit of a value (a bag underneath: a clear and an append) waits for the
    TaskManager's answer before the next key's writes are sent: a round trip per key and
    bundle, one after another. The TaskManager applies a worker's state requests in the
    order they were sent (one gRPC stream, each request handled before the next; Beam's own
    commit relies on it between the clear and the append), so the commit sends every key's
    writes first and then waits for all the answers, before the bundle ends. Thread mode
    keeps state in the TaskManager (no Beam worker is loaded): nothing to do there."""
    if "apache_beam" not in sys.modules:
        return
    from apache_beam.runners.worker.bundle_processor import SynchronousBagRuntimeState as Bag
    from pyflink.fn_execution.state_impl import RemoteKeyedStateBackend as Backend

    if getattr(Backend, "_commits_touched_only", False):
        return
    park = Backend.cache_internal_state

    def cache_internal_state(self, encoded_key, internal_kv_state):
        park(self, encoded_key, internal_kv_state)
        self.__dict__.setdefault("_touched", []).append(internal_kv_state.get_internal_state())

    def commit(self):
        answers = []
        for internal_state in self.__dict__.pop("_touched", ()):
            _send_writes(internal_state, answers, Bag)
        for state in self._all_states.values():
            _send_writes(state._internal_state, answers, Bag)
        for answer in answers:
            answer.get()

    Backend.cache_internal_state = cache_internal_state
    Backend.commit = commit
    Backend._commits_touched_only = True


def _send_writes(internal_state, answers: list, bag: type) -> None:
    """Beam's commit of a ``bag`` (its SynchronousBagRuntimeState) without its wait: the
    answers to wait for go to ``answers``. Then the reset PyFlink's ``commit_internal_state``
    does. Any other kind of state (map states) commits as PyFlink's would."""
    if type(internal_state) is not bag:
        from pyflink.fn_execution.state_impl import RemoteKeyedStateBackend
        RemoteKeyedStateBackend.commit_internal_state(internal_state)
        return
    handler, key = internal_state._state_handler, internal_state._state_key
    if internal_state._cleared:
        answers.append(handler.clear(key))
    if internal_state._added_elements:
        answers.append(handler.extend(key, internal_state._value_coder.get_impl(), internal_state._added_elements))
    internal_state._cleared = False
    internal_state._added_elements = []


def subtask(runtime_context) -> tuple[int, int]:
    """(index of this subtask, parallelism) of an operator. In thread mode PyFlink 2.2.1's
    runtime context asks the Java RuntimeContext for methods Flink 2 moved to its TaskInfo
    (``getIndexOfThisSubtask``: AttributeError); the TaskInfo has both."""
    try:
        return runtime_context.get_index_of_this_subtask(), runtime_context.get_number_of_parallel_subtasks()
    except AttributeError:
        info = runtime_context._runtime_context.getTaskInfo()
        return info.getIndexOfThisSubtask(), info.getNumberOfParallelSubtasks()


class Tally:
    """A number an operator keeps in Python (``read``), reported as the metric ``name``.

    In process mode it is a gauge: the worker calls ``read`` when a bundle ends and ships the
    value. In thread mode PyFlink 2.2.1 registers a gauge as a Java object that calls into
    the TaskManager's embedded interpreter from whichever thread reads it: the REST API's
    metric fetcher, a reporter's scrape. When a task is cancelled or fails over while its
    interpreter closes, such a read crashes the whole TaskManager (SIGSEGV in ``take_gil``,
    or an abort in ``pthread_mutex_lock``), and every task on it. So in thread mode it is a
    counter that the task's own thread moves to the value (``report``, after the value
    changed) and that the TaskManager reads without entering Python."""

    def __init__(self, group, name: str, read) -> None:
        self.read = read
        if type(group).__module__.startswith("pyflink.fn_execution.metrics.embedded"):
            self.counter, self.reported = group.counter(name), 0
        else:
            self.counter = None
            group.gauge(name, read)

    def report(self) -> None:
        if self.counter is not None:
            value = int(self.read())
            if value != self.reported:
                self.counter.inc(value - self.reported)
                self.reported = value


def epoch_millis(instant) -> int:
    """Milliseconds since the epoch of a TIMESTAMP_LTZ field of a table's row: PyFlink's
    ``Instant`` in process mode; in thread mode PyFlink 2.2.1 hands the Java ``Instant`` over
    unconverted."""
    to_millis = getattr(instant, "to_epoch_milli", None)
    return to_millis() if to_millis is not None else instant.toEpochMilli()


def child_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) for a child process that starts a PyFlink job of its
    own: a job that ran in this process in loopback mode leaves PYFLINK_GATEWAY_DISABLED set,
    and inherited it stops the child from starting its own JVM."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k != "PYFLINK_GATEWAY_DISABLED"}


def submitted_by_flink_cli() -> bool:
    """True when ``flink run`` started this client (its Java side opened PyFlink's gateway
    and passed its port), False when the client started its own JVM (a local mini-cluster)."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def keyed(stream: DataStream, key_and_record) -> KeyedStream:
    """A stream of ``Row(key, record)`` (``key_and_record``: its row type), keyed by ``key``;
    the keyed operator sees ``record``.

    The operator before has put the key there. PyFlink's ``key_by`` would add a Python
    operator that does it (``Row(selector(x), x)``), chained to the one before only when that
    one has no other output (no side output either): one more crossing between the JVM and
    Python per record, and one more bundle to wait for. The partitioning is what ``key_by``
    does after that operator (its KeyByKeySelector on field 0)."""
    key_type = Types.ROW([key_and_record.get_field_types()[0]]).get_java_type_info()
    return KeyedStream(stream._j_data_stream.keyBy(get_gateway().jvm.KeyByKeySelector(), key_type),
                       key_and_record.get_field_types()[1], stream)


def side_output(stream: DataStream, tag: OutputTag) -> DataStream:
    """``stream``'s side output ``tag``, without the identity Python operator PyFlink's
    ``get_side_output`` adds after it (a crossing per record): the side output's records are
    of the tag's type already, which is all that operator restates."""
    return DataStream(stream._j_data_stream.getSideOutput(tag.get_java_output_tag()))


def install_timer_fix(env) -> None:
    """Python timers that survive a restore, and bundles that end on time, for the jobs that
    ``env`` runs; call it once, any time before the job is submitted.

    PyFlink 2.2.1 receives a timer that a Python function registers on a gRPC thread and
    registers it later, from the task's mailbox; only a watermark drains the pending ones
    first. At a checkpoint barrier the operator finishes its bundle (the bundle's keyed state
    is written to the backend) and snapshots before those mails run. A restore from that
    checkpoint then brings back state whose timer was never registered: a user's bucket of
    pairs that no timer flushes, so it reaches the item side after its list was published.

    ``deploy/jars/timer-fix`` subclasses PyFlink's keyed operators to register the pending
    timers between the bundle's end and the snapshot (and to refuse a cancelled operator's
    late state requests, StateRequestGuard). It also makes every Python operator end its
    bundles within ``bundle_time_ms`` (BundleTime.java): PyFlink 2.2.1 ends them every second
    tick of its bundle timer, so that a record waited up to twice that in each operator. This
    ships its jar with the job, and each stream graph the environment generates gets every
    PyFlink Python operator replaced by the patched class (``_patch_python_operators``):
    after PyFlink fused chained operators and built the keyed broadcast ones in Java, so the
    order in which the job is built does not matter (graphs that ``execute`` and
    ``execute_async`` submit; ``execute_and_collect`` builds its graph in Java and is not
    patched). deploy/jars/build-timer-fix.sh compiles
    the jar against the installed PyFlink, so the two always match."""
    if not TIMER_FIX_JAR.is_file():
        raise SystemExit(f"{TIMER_FIX_JAR} is missing: run deploy/setup.sh")
    if TIMER_FIX_JAR.as_uri() not in (configured(env, "pipeline.jars") or ""):
        env.add_jars(TIMER_FIX_JAR.as_uri())
    # On the class: a stream's get_execution_environment() wraps the same Java environment in
    # a new Python object. Graphs of environments without the jar are left as PyFlink builds them.
    if not getattr(StreamExecutionEnvironment, "_reco_patches_graphs", False):
        generate = StreamExecutionEnvironment._generate_stream_graph   # what execute(_async) call

        def generate_patched(self, *args, **kwargs):
            graph = generate(self, *args, **kwargs)
            if TIMER_FIX_JAR.as_uri() in (configured(self, "pipeline.jars") or ""):
                _patch_python_operators(graph)
            return graph
        StreamExecutionEnvironment._generate_stream_graph = generate_patched
        StreamExecutionEnvironment._reco_patches_graphs = True


_PYFLINK_OPERATORS = "org.apache.flink.streaming.api.operators.python.process."


def _patch_python_operators(graph) -> None:
    """Replaces each of PyFlink's Python operators in ``graph`` (process mode; thread mode's
    embedded ones are left alone) by the timer fix's subclass, built from the same
    configuration, function, types, side outputs and partition count (what PyFlink's
    DelegateOperatorTransformation.configureOperator gives it)."""
    jvm = get_gateway().jvm
    for node in graph.getStreamNodes().toArray():
        factory = node.getOperatorFactory()
        if factory is None or factory.getClass().getSimpleName() != "SimpleOperatorFactory":
            continue
        built = factory.getOperator()
        name = built.getClass().getName()
        if name.removeprefix(_PYFLINK_OPERATORS) not in _PATCHED:
            continue
        patched = getattr(jvm.reco.pyflink, built.getClass().getSimpleName())
        head = (built.getConfiguration(), built.getPythonFunctionInfo())
        if name.endswith("KeyedCoProcessOperator"):
            fixed = patched(*head, built.getLeftInputType(), built.getRightInputType(), built.getProducedType())
        elif name.endswith("KeyedProcessOperator"):
            # Not read back by any getter; a Python window's operator has a window's one.
            field = built.getClass().getDeclaredField("namespaceSerializer")
            field.setAccessible(True)
            fixed = patched(*head, built.getInputTypeInfo(), built.getProducedType(), field.get(built))
        else:
            fixed = patched(*head, built.getInputTypeInfo(), built.getProducedType())
        fixed.addSideOutputTags(built.getSideOutputTags())
        settings = built.getInternalParameters()
        if settings.get("NUM_PARTITIONS") is not None:
            fixed.setNumPartitions(int(settings.get("NUM_PARTITIONS")))
        if not fixed.getInternalParameters().equals(settings):
            raise RuntimeError(f"the timer fix cannot rebuild {node.getOperatorName()}: PyFlink's operator has "
                               f"settings it does not copy ({settings})")
        replacement = jvm.org.apache.flink.streaming.api.operators.SimpleOperatorFactory.of(fixed)
        replacement.setChainingStrategy(factory.getChainingStrategy())
        node.setOperatorFactory(replacement)


class KafkaAdminError(RuntimeError):
    """Kafka did not answer the admin client's request (the message says why)."""


def _admin(shaded_prefix: str, properties: dict[str, str]):
    jvm = get_gateway().jvm
    admin_class = reduce(getattr, (shaded_prefix + "org.apache.kafka.clients.admin.AdminClient").split("."), jvm)
    props = jvm.java.util.Properties()
    for key, value in properties.items():
        props.setProperty(key, value)
    return admin_class.create(props)


def _cause(exc: Py4JJavaError):
    """The Java exception behind a failed admin call (its futures wrap it in an ExecutionException)."""
    return exc.java_exception.getCause() or exc.java_exception


def _configs(admin, shaded_prefix: str, kind: str, name: str, wait: tuple) -> dict[str, str]:
    """Every configuration entry (defaults included) of the ``kind`` (TOPIC, BROKER) resource ``name``."""
    jvm = get_gateway().jvm
    resource_class = reduce(getattr, (shaded_prefix + "org.apache.kafka.common.config.ConfigResource").split("."), jvm)
    resource = resource_class(getattr(getattr(resource_class, "Type"), kind), name)
    resources = jvm.java.util.ArrayList()
    resources.add(resource)
    entries = admin.describeConfigs(resources).all().get(*wait).get(resource).entries()
    return {entry.name(): entry.value() for entry in entries.toArray()}


def describe_topic(shaded_prefix: str, properties: dict[str, str], topic: str,
                   timeout_s: float) -> tuple[int, dict[str, str] | None]:
    """The partitions of ``topic`` and its configuration (every entry, defaults included;
    None when Kafka refused to show it, e.g. no DescribeConfigs right), ``(0, {})`` when it
    does not exist; KafkaAdminError when Kafka did not answer. Asked with
    the Kafka admin client inside the connector jar (its classes relocated under
    ``shaded_prefix``), in the JVM PyFlink already runs: the same client and security
    settings as the job's sources, and no Python Kafka client in the job."""
    jvm = get_gateway().jvm
    admin = _admin(shaded_prefix, properties)
    wait = (int(timeout_s) + 5, jvm.java.util.concurrent.TimeUnit.SECONDS)
    try:
        topics = jvm.java.util.ArrayList()
        topics.add(topic)
        partitions = admin.describeTopics(topics).allTopicNames().get(*wait).get(topic).partitions().size()
        try:
            return partitions, _configs(admin, shaded_prefix, "TOPIC", topic, wait)
        except Py4JJavaError as exc:
            if _cause(exc).getClass().getSimpleName() == "TopicAuthorizationException":
                return partitions, None
            raise
    except Py4JJavaError as exc:
        cause = _cause(exc)
        if cause.getClass().getSimpleName() == "UnknownTopicOrPartitionException":
            return 0, {}
        raise KafkaAdminError(cause.toString()) from None
    finally:
        admin.close(jvm.java.time.Duration.ofSeconds(5))


def broker_config(shaded_prefix: str, properties: dict[str, str], timeout_s: float) -> dict[str, str] | None:
    """The configuration of one of the cluster's brokers (defaults included), None when Kafka
    refused to show it (no DescribeConfigs right on the cluster); KafkaAdminError when Kafka
    did not answer. Same client as ``describe_topic``."""
    jvm = get_gateway().jvm
    admin = _admin(shaded_prefix, properties)
    wait = (int(timeout_s) + 5, jvm.java.util.concurrent.TimeUnit.SECONDS)
    try:
        node = admin.describeCluster().nodes().get(*wait).toArray()[0]
        return _configs(admin, shaded_prefix, "BROKER", str(node.id()), wait)
    except Py4JJavaError as exc:
        cause = _cause(exc)
        if cause.getClass().getSimpleName() in ("ClusterAuthorizationException", "TopicAuthorizationException"):
            return None
        raise KafkaAdminError(cause.toString()) from None
    finally:
        admin.close(jvm.java.time.Duration.ofSeconds(5))


def configured(env, key: str) -> str | None:
    """The value of Flink option ``key`` the job would run with (the client's configuration:
    its config.yaml, -D options, the job's own), or None."""
    return env._j_stream_execution_environment.getConfiguration().toMap().get(key)
