"""The Redis store's retry wrapper, without a Redis server: a fake client that fails as
told, and a few lines of RESP on a local socket for real connection errors and timeouts."""

import socket
import threading

import pytest
import redis
import redis.retry

from flink_jobs import documents
from flink_jobs.config import JobConfig
from flink_jobs.redis_store import (REQUIRED_ACL, RedisAccessError, RedisUnavailable, RetryPolicy, VersionedStore,
                                    client_options)

DOC = {"version": 3, "items": []}


class FakeClock:
    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(redis.retry, "sleep", c.sleep)   # redis-py's Retry sleeps through this name
    return c


class FlakyClient:
    """Stands in for redis.Redis: the script call raises ``errors`` in turn, then returns 1."""

    def __init__(self, errors, clock=None, attempt_s=0.0):
        self.errors, self.calls, self.clock, self.attempt_s = list(errors), 0, clock, attempt_s

    def register_script(self, script):
        def call(keys, args, client=None):
            self.calls += 1
            if self.clock is not None:
                self.clock.now += self.attempt_s       # each attempt takes time too
            if self.errors:
                error = self.errors.pop(0)
                if error is not None:
                    raise error
            return 1
        call.sha, call.script = "0" * 40, script
        return call

    def pipeline(self, transaction=True):
        return FlakyPipeline(self)


class FlakyPipeline:
    """A pipeline of FlakyClient: each execute() is one attempt, which fails as the client's next error."""

    def __init__(self, client):
        self.client, self.commands = client, []

    def evalsha(self, sha, numkeys, *keys_and_args):
        self.commands.append(keys_and_args[:numkeys])

    def execute(self):
        self.client.calls += 1
        self.client.round_trips = getattr(self.client, "round_trips", []) + [self.commands]
        if self.client.errors:
            error = self.client.errors.pop(0)
            if error is not None:
                raise error
        return [1] * len(self.commands)


def store_with(errors, clock, policy=RetryPolicy(base_ms=100, cap_ms=1_000, max_total_ms=10_000), attempt_s=0.0):
    seen = []
    store = VersionedStore(FlakyClient(errors, clock, attempt_s), ttl_ms=0, retry=policy,
                           on_retry=seen.append, clock=clock)
    return store, seen


def test_connection_refused_then_success_counts_the_retries(clock):
    refused = [redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")] * 3
    store, seen = store_with(refused, clock)
    assert store.upsert("reco:v1:user:1", DOC) is True
    assert store.client.calls == 4
    assert store.retries == 3 and len(seen) == 3 and all(isinstance(e, redis.ConnectionError) for e in seen)
    assert clock.sleeps == pytest.approx([0.2, 0.4, 0.8])   # redis-py's ExponentialBackoff: base * 2**n


def test_backoff_is_capped_and_the_total_time_bounded(clock):
    store, seen = store_with([redis.ConnectionError("down")] * 1000, clock,
                             RetryPolicy(base_ms=100, cap_ms=1_000, max_total_ms=5_000))
    started = clock.now
    with pytest.raises(RedisUnavailable, match=r"giving up after redis_retry_max_ms=5000") as err:
        store.upsert("reco:v1:user:1", DOC)
    assert isinstance(err.value.__cause__, redis.ConnectionError)
    assert max(clock.sleeps) == pytest.approx(1.0)           # the cap
    assert clock.now - started == pytest.approx(5.0)         # the last sleep stops at the deadline
    assert clock.sleeps[-1] < 1.0
    assert store.retries == len(seen) == len(clock.sleeps)


def test_slow_attempts_count_toward_the_bound(clock):
    # each attempt hangs for its 2 s timeout: the bound is total time, not a number of attempts
    store, _ = store_with([redis.TimeoutError("Timeout reading from socket")] * 1000, clock,
                          RetryPolicy(base_ms=100, cap_ms=1_000, max_total_ms=10_000), attempt_s=2.0)
    started = clock.now
    with pytest.raises(RedisUnavailable):
        store.upsert("reco:v1:user:1", DOC)
    assert clock.now - started <= 10.0 + 2.0                  # at most one attempt past the bound
    assert store.client.calls <= 6


def test_timeouts_are_retried_too(clock):
    store, seen = store_with([redis.TimeoutError("Timeout reading from socket"), socket.timeout()], clock)
    assert store.upsert("reco:v1:user:1", DOC)
    assert store.retries == 2


def test_a_new_call_gets_the_whole_time_again(clock):
    policy = RetryPolicy(base_ms=100, cap_ms=1_000, max_total_ms=2_000)
    store, _ = store_with([redis.ConnectionError("down")] * 3 + [None] + [redis.ConnectionError("down")] * 3,
                          clock, policy)
    assert store.upsert("reco:v1:user:1", DOC)
    clock.now += 3600
    assert store.upsert("reco:v1:user:1", DOC)
    assert store.retries == 6


@pytest.mark.parametrize("error", [redis.AuthenticationError("WRONGPASS invalid username-password pair"),
                                   redis.exceptions.AuthorizationError("NOAUTH")])
def test_a_refused_login_fails_at_once(clock, error):
    store, seen = store_with([error], clock)
    with pytest.raises(RedisAccessError, match="refused"):
        store.upsert("reco:v1:user:1", DOC)
    assert (store.retries, clock.sleeps) == (0, [])


@pytest.mark.parametrize("error", [
    redis.exceptions.NoPermissionError("this user has no permissions to access one of the keys used as arguments"),
    redis.ResponseError("The user executing the script can't run this command or subcommand script: "
                        "ae7aaa39bbf2c6b90681ddfa784e3316cebd152f, on @user_script:17."),   # Redis 7.0, verbatim
])
def test_a_missing_permission_fails_at_once_naming_what_is_needed(clock, error):
    store, _ = store_with([error], clock)
    with pytest.raises(RedisAccessError) as err:
        store.upsert("reco:v1:user:1", DOC)
    assert REQUIRED_ACL in str(err.value) and "reco:v1:user:1" in str(err.value)
    assert store.retries == 0


def test_without_a_policy_the_first_error_raises(clock):
    store = VersionedStore(FlakyClient([redis.ConnectionError("down")]), clock=clock)
    with pytest.raises(RedisUnavailable, match="1 attempts"):
        store.upsert("reco:v1:user:1", DOC)
    assert (store.retries, clock.sleeps) == (0, [])


def test_retry_policy_refuses_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(base_ms=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_ms=100, cap_ms=50)


# --- a real socket: connection refused, then a server that answers or never does ---------

class TinyRedis:
    """Just enough RESP on 127.0.0.1:port: ':1' to EVALSHA (after the error ``replies``, one
    per EVALSHA), '+OK' to anything else, or (silent) no answer at all."""

    def __init__(self, port, silent=False, replies=()):
        self.silent, self.commands, self.replies = silent, [], list(replies)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn, conn.makefile("rb") as f:
            while line := f.readline():
                args = []
                for _ in range(int(line[1:])):
                    size = int(f.readline()[1:])
                    args.append(f.read(size + 2)[:-2])
                self.commands.append(args)
                if self.silent:
                    continue
                if args[0].upper() != b"EVALSHA":
                    conn.sendall(b"+OK\r\n")
                else:
                    conn.sendall(b"-%s\r\n" % self.replies.pop(0).encode() if self.replies else b":1\r\n")

    def close(self):
        self.sock.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_connection_refused_until_the_server_comes_up():
    port = free_port()
    servers = []

    def on_retry(error):
        assert "refused" in str(error).lower() or servers
        if len(servers) == 0 and store.retries == 3:
            servers.append(TinyRedis(port))    # Redis is back after three refused attempts

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1)
    store = VersionedStore(client, retry=RetryPolicy(base_ms=5, cap_ms=20, max_total_ms=10_000), on_retry=on_retry)
    try:
        assert store.upsert("reco:v1:user:1", DOC) is True
        assert store.retries == 3
        assert [c[0] for c in servers[0].commands if c[0] == b"EVALSHA"] == [b"EVALSHA"]
    finally:
        for s in servers:
            s.close()


def test_real_read_timeout_is_retried_and_bounded():
    server = TinyRedis(free_port(), silent=True)      # accepts, never answers
    port = server.sock.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.2)
    store = VersionedStore(client, retry=RetryPolicy(base_ms=10, cap_ms=50, max_total_ms=1_000))
    import time
    started = time.monotonic()
    try:
        with pytest.raises(RedisUnavailable) as err:
            store.upsert("reco:v1:user:1", DOC)
        elapsed = time.monotonic() - started
        assert isinstance(err.value.__cause__, redis.TimeoutError)
        assert store.retries >= 2
        assert 1.0 <= elapsed < 1.0 + 0.2 + 0.5               # the bound plus one read timeout (and slack)
    finally:
        server.close()


# Error replies of Redis 7.0, verbatim (a script's own carry " script: SHA, on @user_script:N.").
SCRIPT = " script: ae7aaa39bbf2c6b90681ddfa784e3316cebd152f, on @user_script:17."
PASSING = {   # server states that pass: retried like a connection error
    "OOM": "OOM command not allowed when used memory > 'maxmemory'." + SCRIPT,
    "MASTERDOWN": "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "LOADING": "LOADING Redis is loading the dataset in memory",
    "READONLY": "READONLY You can't write against a read only replica." + SCRIPT,
    "BUSY": "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    "TRYAGAIN": "TRYAGAIN Multiple keys request during rehashing of slot",
    "NOREPLICAS": "NOREPLICAS Not enough good replicas to write.",
}
FAULTS = {    # command errors: every attempt would get them
    "WRONGTYPE": "WRONGTYPE Operation against a key holding the wrong kind of value script: "
                 "ae7aaa39bbf2c6b90681ddfa784e3316cebd152f, on @user_script:2.",
    "a Lua error": "ERR user_script:1: OOM fake script: e10e924014703ce9dff8c45b49581473a8fb4ef0, on @user_script:1.",
    "BUSYKEY": "BUSYKEY Target key name already exists.",
    "ERR": "ERR unknown command 'EVALSHA'",
}


def tiny_store(replies, **policy):
    server = TinyRedis(free_port(), replies=replies)
    client = redis.Redis(host="127.0.0.1", port=server.sock.getsockname()[1], socket_timeout=1)
    seen = []
    store = VersionedStore(client, retry=RetryPolicy(**{"base_ms": 5, "cap_ms": 20, "max_total_ms": 10_000,
                                                         **policy}), on_retry=seen.append)
    return server, store, seen


@pytest.mark.parametrize("reply", PASSING.values(), ids=PASSING.keys())
def test_a_server_in_a_passing_state_is_retried_like_an_outage(reply):
    server, store, seen = tiny_store([reply, reply])
    try:
        assert store.upsert("reco:v1:user:1", DOC) is True
        assert store.retries == len(seen) == 2 and reply.split(" ", 1)[1][:20] in str(seen[0])
        server.replies = [reply] * 2      # both upserts of a pipeline, which puts its own text in front
        assert store.upsert_many([("reco:v1:user:2", DOC), ("reco:v1:user:3", DOC)]) == [True, True]
        assert store.retries == 3
    finally:
        server.close()


@pytest.mark.parametrize("reply", PASSING.values(), ids=PASSING.keys())
def test_a_server_that_stays_in_a_passing_state_fails_the_write_within_the_budget(reply):
    server, store, seen = tiny_store([reply] * 10_000, max_total_ms=200)
    try:
        with pytest.raises(RedisUnavailable, match="giving up after redis_retry_max_ms=200"):
            store.upsert("reco:v1:user:1", DOC)
        assert store.retries == len(seen) >= 2
    finally:
        server.close()


@pytest.mark.parametrize("reply", FAULTS.values(), ids=FAULTS.keys())
def test_a_command_error_fails_at_once(reply):
    server, store, seen = tiny_store([reply])
    try:
        with pytest.raises(redis.ResponseError, match=reply.split(" ", 1)[1][:20]) as err:
            store.upsert("reco:v1:user:1", DOC)
        assert not isinstance(err.value, RedisAccessError)
        assert store.retries == len(seen) == 0
    finally:
        server.close()


# --- client options from the job's configuration ------------------------------------------

def test_timeouts_and_retry_come_from_the_configuration():
    cfg = JobConfig(redis_url="redis://reco:s3cret@127.0.0.1:1/0", redis_connect_timeout_ms=1_500,
                    redis_read_timeout_ms=2_500, redis_retry_base_ms=50, redis_retry_cap_ms=800,
                    redis_retry_max_ms=30_000)
    store = VersionedStore.from_config(cfg)
    kwargs = store.client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (1.5, 2.5)
    assert (kwargs["username"], kwargs["password"]) == ("reco", "s3cret")     # ACL user from the URL
    assert store.policy == RetryPolicy(50, 800, 30_000)
    assert not any(k.startswith("ssl") for k in kwargs)


def test_tls_options_only_for_rediss(tmp_path):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    for f in (ca, cert, key):
        f.write_text("x")
    cfg = JobConfig(redis_url="rediss://h:6380/0", redis_tls_ca_file=str(ca), redis_tls_cert_file=str(cert),
                    redis_tls_key_file=str(key))
    options = client_options(cfg)
    assert options["ssl_ca_certs"] == str(ca) and options["ssl_certfile"] == str(cert)
    assert options["ssl_keyfile"] == str(key)
    assert (options["ssl_cert_reqs"], options["ssl_check_hostname"]) == ("required", True)
    assert client_options(cfg.replace(redis_tls_verify="ca"))["ssl_check_hostname"] is False
    assert client_options(cfg.replace(redis_tls_verify="none"))["ssl_cert_reqs"] == "none"
    client = redis.Redis.from_url(cfg.redis_url, **options)
    assert client.connection_pool.connection_class is redis.SSLConnection


def test_an_unreadable_tls_file_is_named_where_the_job_runs(tmp_path):
    cfg = JobConfig(redis_url="rediss://h:6380/0", redis_tls_ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(RedisAccessError, match="redis_tls_ca_file=.*missing.pem"):
        VersionedStore.from_config(cfg)


# --- the job's operator: metrics ---------------------------------------------------------

class Metrics:
    def __init__(self):
        self.gauges = {}

    def gauge(self, name, read):
        self.gauges[name] = read


class RuntimeContext:
    def __init__(self):
        self.metrics = Metrics()

    def get_metrics_group(self):
        return self.metrics


def _publish(monkeypatch, flaky, mode):
    from flink_jobs import internals, publish

    monkeypatch.setattr(redis.retry, "sleep", lambda s: None)
    monkeypatch.setattr(redis.Redis, "from_url", classmethod(lambda cls, url, **kw: flaky))
    bundle_ends = []
    monkeypatch.setattr(internals, "at_bundle_end", bundle_ends.append)
    op = publish.Publish(JobConfig(python_execution_mode=mode), publish.Output("users", None, None,
                                                                               documents.user_document))
    ctx = RuntimeContext()
    op.open(ctx)
    return op, ctx, bundle_ends


def test_publish_writes_a_bundles_last_documents_in_one_round_trip_at_its_end_and_counts_retries(monkeypatch):
    flaky = FlakyClient([redis.ConnectionError("refused"), redis.TimeoutError("timeout")])
    op, ctx, bundle_ends = _publish(monkeypatch, flaky, "process")
    assert len(bundle_ends) == 1
    for user, version in ((7, 1), (8, 1), (7, 2)):
        list(op.process_element({"user_id": user, "version": version, "items": []}, None))
    assert flaky.calls == 0                      # nothing before the bundle ends
    bundle_ends[0]()
    assert flaky.round_trips == [[("reco:v1:user:7",), ("reco:v1:user:8",)]] * 3   # two retried, one landed
    assert ctx.metrics.gauges["redisRetries"]() == 2
    assert ctx.metrics.gauges["redisWrites"]() == 2
    bundle_ends[0]()                             # an empty bundle: no round trip
    assert flaky.calls == 3


def test_publish_in_thread_mode_writes_each_document_as_it_comes(monkeypatch):
    flaky = FlakyClient([])
    op, ctx, bundle_ends = _publish(monkeypatch, flaky, "thread")
    assert bundle_ends == []                     # no bundles in thread mode
    list(op.process_element({"user_id": 7, "version": 1, "items": []}, None))
    assert flaky.calls == 1 and ctx.metrics.gauges["redisWrites"]() == 1


def test_publish_within_a_long_bundle_writes_once_the_oldest_waits_a_bundle_time_or_the_batch_is_full(monkeypatch):
    from flink_jobs import publish

    clock = [100.0]
    monkeypatch.setattr(publish.time, "monotonic", lambda: clock[0])
    flaky = FlakyClient([])
    op, ctx, bundle_ends = _publish(monkeypatch, flaky, "process")   # bundle_time_ms 100 by default

    def send(user, version=1):
        list(op.process_element({"user_id": user, "version": version, "items": []}, None))
    send(1)
    clock[0] += 0.099
    send(2)
    assert flaky.calls == 0                      # the oldest has waited 99 ms
    clock[0] += 0.001
    send(1, 2)
    assert flaky.round_trips == [[("reco:v1:user:1",), ("reco:v1:user:2",)]]
    send(3)                                      # the clock starts again with the next one
    clock[0] += 0.05
    send(4)
    assert flaky.calls == 1
    bundle_ends[0]()
    assert flaky.round_trips[-1] == [("reco:v1:user:3",), ("reco:v1:user:4",)]
    for user in range(10, 10 + publish.MAX_BATCH):   # no time passes: the batch's size ends it
        send(user)
    assert flaky.calls == 3 and len(flaky.round_trips[-1]) == publish.MAX_BATCH
    assert ctx.metrics.gauges["redisWrites"]() == 4 + publish.MAX_BATCH
