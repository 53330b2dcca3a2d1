"""internals.Tally: a gauge in process mode; in thread mode a counter that the task's thread
moves to the value, so that no metrics thread calls into the TaskManager's interpreter
(tests/chaos/test_thread_mode.py has the crash it prevents)."""

from pyflink.fn_execution.metrics.process.metric_impl import GenericMetricGroup

from flink_jobs.internals import Tally


class JavaCounter:
    """Stands for the Java counter behind PyFlink's thread-mode counter."""

    def __init__(self):
        self.count, self.calls = 0, 0

    def inc(self, n):
        self.count += n
        self.calls += 1


class EmbeddedGroup:
    """Stands for PyFlink's thread-mode metric group (its module imports pemja, which needs
    the TaskManager): counters are Java objects; a gauge would be a Java object that calls
    back into Python."""

    __module__ = "pyflink.fn_execution.metrics.embedded.metric_impl"

    def __init__(self):
        self.counters, self.gauges = {}, {}

    def counter(self, name):
        from pyflink.fn_execution.metrics.embedded.counter_impl import CounterImpl
        return CounterImpl(self.counters.setdefault(name, JavaCounter()))

    def gauge(self, name, obj):
        self.gauges[name] = obj


def test_in_thread_mode_a_tally_is_a_counter_that_follows_the_value_up_and_down():
    group, value = EmbeddedGroup(), [0]
    tally = Tally(group, "catalogItems", lambda: value[0])
    assert group.gauges == {}, "no Python callable for a metrics thread to call"
    counter = group.counters["catalogItems"]
    for v in (5, 12, 3, 3, 0, 7):
        value[0] = v
        tally.report()
        assert counter.count == v
    assert counter.calls == 5, "one call into the TaskManager per change, none when unchanged"


def test_in_process_mode_a_tally_is_a_gauge_read_when_the_bundle_ends():
    group, value = GenericMetricGroup(None, None), [4]   # as PyFlink builds an operator's group
    tally = Tally(group, "catalogItems", lambda: value[0])
    assert group._flink_gauge["catalogItems"]() == 4
    value[0] = 9
    tally.report()   # nothing to do: the worker reads the gauge itself
    assert group._flink_gauge["catalogItems"]() == 9
