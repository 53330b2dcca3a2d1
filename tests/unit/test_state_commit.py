"""The keyed state commit of a Python worker (``internals.commit_touched_keys_only``), on
PyFlink's and Beam's own state classes over a stand-in for the TaskManager's side of the
state API: no JVM. What a bundle writes must reach the TaskManager by the bundle's end,
however many keys the cache holds or pushes out meanwhile, and the commit must not visit
keys the bundle did not touch, nor wait for one key's answer before sending the next key's
writes."""

import random

import pytest
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker import bundle_processor, statecache
from apache_beam.runners.worker.sdk_worker import _Future
from pyflink.fn_execution.beam import beam_sdk_worker_main
from pyflink.fn_execution.state_impl import RemoteKeyedStateBackend

from flink_jobs import internals
from lab.worker_state import TaskManager, Worker


@pytest.fixture
def touched_only(monkeypatch):
    """The fix installed for one test: PyFlink's class is restored afterwards."""
    for name in ("commit", "cache_internal_state"):
        monkeypatch.setattr(RemoteKeyedStateBackend, name, getattr(RemoteKeyedStateBackend, name))
    monkeypatch.setattr(RemoteKeyedStateBackend, "_commits_touched_only", False, raising=False)
    internals.commit_touched_keys_only()


@pytest.fixture
def commits(monkeypatch):
    """The state objects each commit visits: PyFlink's commit commits each with Beam's,
    the fix sends each one's writes with ``internals._send_writes``."""
    seen = []
    commit, send = bundle_processor.SynchronousBagRuntimeState.commit, internals._send_writes

    def counted(self):
        seen.append(self)
        return commit(self)

    def counted_send(internal_state, *args):
        seen.append(internal_state)
        return send(internal_state, *args)
    monkeypatch.setattr(bundle_processor.SynchronousBagRuntimeState, "commit", counted)
    monkeypatch.setattr(internals, "_send_writes", counted_send)
    return seen


class Answering(TaskManager):
    """The TaskManager's side, logging each request sent and each wait for an answer."""

    def __init__(self):
        super().__init__()
        self.log = []
        log = self.log

        class Answer(_Future):
            def get(self, timeout=None):
                log.append("wait")
                return super().get(timeout)
        self.answer = lambda: Answer().set(beam_fn_api_pb2.StateResponse())

    def append_raw(self, key, data):
        super().append_raw(key, data)
        self.log.append("send")
        return self.answer()

    def clear(self, key):
        super().clear(key)
        self.log.append("send")
        return self.answer()


def test_the_cache_counts_entries_as_in_a_worker():
    # importing PyFlink's worker module (as its workers do) makes Beam's cache size in entries
    assert statecache.get_deep_size is beam_sdk_worker_main.get_deep_size
    assert statecache.get_deep_size(b"x" * 100_000) == 1


def test_every_write_of_a_bundle_reaches_the_task_manager_though_the_cache_pushes_keys_out(touched_only):
    tm, rng = TaskManager(), random.Random(5)
    worker = Worker(tm, cache=7)   # far fewer entries than keys: pushed out in mid-bundle
    expected = {}
    for _ in range(40):
        writes = [(rng.randrange(60), rng.randrange(10**6)) for _ in range(rng.randrange(1, 30))]
        worker.bundle(writes)
        expected.update(writes)
    # what a restarted worker (empty caches) reads back is what the TaskManager holds
    assert Worker(tm, cache=7).read(expected) == expected


def test_the_last_write_of_a_key_in_a_bundle_wins(touched_only):
    tm = TaskManager()
    worker = Worker(tm, cache=100)
    worker.bundle([(1, "a"), (2, "b"), (1, "c"), (3, "d"), (1, "e")])
    assert Worker(tm, cache=100).read([1, 2, 3]) == {1: "e", 2: "b", 3: "d"}


def test_a_commit_visits_the_keys_of_its_bundle_not_the_whole_cache(touched_only, commits):
    tm = TaskManager()
    worker = Worker(tm, cache=5_000)
    worker.bundle([(key, key) for key in range(5_000)])   # the cache full of parked keys
    commits.clear()
    worker.bundle([(7, "x"), (8, "y"), (7, "z")])
    # keys 7 and 8, a key possibly more than once (parked, then current): nowhere near 5,000
    assert 2 <= len(commits) <= 6
    assert Worker(tm, cache=10).read([7, 8, 9]) == {7: "z", 8: "y", 9: 9}


def test_without_the_fix_a_commit_visits_every_cached_key(commits):
    """What the fix is for, on PyFlink's own commit: one visit per parked key."""
    worker = Worker(TaskManager(), cache=5_000)
    worker.bundle([(key, key) for key in range(5_000)])
    commits.clear()
    worker.bundle([(7, "x")])
    assert len(commits) >= 5_000


def test_a_commit_sends_every_key_s_writes_before_it_waits_for_an_answer(touched_only):
    tm = Answering()
    worker = Worker(tm, cache=100)
    worker.bundle([(key, "v") for key in range(20)])
    first_wait = tm.log.index("wait")
    assert tm.log[:first_wait] == ["send"] * 40     # a clear and an append per key
    # and every answer waited for before the bundle ends (a checkpoint follows a bundle's end)
    assert tm.log[first_wait:] == ["wait"] * 40
    assert Worker(tm, cache=100).read(range(20)) == {key: "v" for key in range(20)}


def test_without_the_fix_a_commit_waits_for_each_key_s_answer():
    """What the waits cost without the fix: a round trip to the TaskManager per key."""
    tm = Answering()
    Worker(tm, cache=100).bundle([(key, "v") for key in range(20)])
    assert tm.log.count("wait") >= 20
    assert tm.log.index("wait") <= 2
