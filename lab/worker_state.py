"""A keyed Python operator's state as a worker process holds it, on PyFlink's and Beam's own
state classes, over an in-memory stand-in for the TaskManager's side of the state API: no
JVM. For tests/unit/test_state_commit.py and bench/state_commit.py."""

import contextlib
import importlib

from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker.sdk_worker import GlobalCachingStateHandler, _Future
from apache_beam.runners.worker.statecache import StateCache
from pyflink.fn_execution.coders import BigIntCoder, PickleCoder
from pyflink.fn_execution.state_impl import RemoteKeyedStateBackend

# Loaded as in a worker: PyFlink's worker module makes Beam's state cache count entries
# (python.state.cache-size), not bytes (tests/unit/test_state_commit.py checks it does).
importlib.import_module("pyflink.fn_execution.beam.beam_sdk_worker_main")

TOKEN = [beam_fn_api_pb2.ProcessBundleRequest.CacheToken(
    user_state=beam_fn_api_pb2.ProcessBundleRequest.CacheToken.UserState(), token=b"user-state")]


def _done():
    return _Future().set(beam_fn_api_pb2.StateResponse())


class TaskManager:
    """The TaskManager's side of the state API: raw bytes per state key, as appended."""

    def __init__(self):
        self.store: dict[bytes, bytes] = {}

    @contextlib.contextmanager
    def process_instruction_id(self, bundle_id):
        yield

    def get_raw(self, key, continuation_token):
        return self.store.get(key.SerializeToString(), b""), None

    def append_raw(self, key, data):
        k = key.SerializeToString()
        self.store[k] = self.store.get(k, b"") + data
        return _done()

    def clear(self, key):
        self.store[key.SerializeToString()] = b""
        return _done()


class Worker:
    """One keyed operator's state as a worker process holds it: PyFlink's backend over
    Beam's caching handler (both ``cache`` entries), one pickled value state."""

    def __init__(self, tm: TaskManager, cache: int):
        self.handler = GlobalCachingStateHandler(StateCache(cache), tm)
        self.backend = RemoteKeyedStateBackend(self.handler, BigIntCoder(), None, cache, 1000, 1000)
        self.state = self.backend.get_value_state("counts", PickleCoder())
        self.bundles = 0

    def bundle(self, writes):
        """``writes``: (key, value) pairs, in order; then the bundle's commit."""
        self.bundles += 1
        with self.handler.process_instruction_id(f"bundle-{self.bundles}", TOKEN):
            for key, value in writes:
                self.backend.set_current_key(key)
                self.state.update(value)
            self.backend.commit()

    def read(self, keys):
        with self.handler.process_instruction_id("read", TOKEN):
            values = {}
            for key in keys:
                self.backend.set_current_key(key)
                values[key] = self.state.value()
            return values
