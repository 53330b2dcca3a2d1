"""Redis outages, ACL users and TLS against real redis-server processes.

- The job on the local mini-cluster, writing as an ACL user restricted to ``reco:*``
  (:data:`flink_jobs.redis_store.REQUIRED_ACL`, from an ACL file so that it survives the
  restart), keeps running while Redis is stopped and started again mid-stream: every
  user's last version arrives, the job never restarts, and ``redisRetries`` counted the wait.
- The store as that user works; a user without the keys, or a wrong password, fails at
  once with a clear error instead of retrying.
- The store over TLS (server certificate checked, client certificate presented).
"""

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.config import JobConfig
from flink_jobs.redis_store import REQUIRED_ACL, RedisAccessError, RedisUnavailable, RetryPolicy, VersionedStore
from reco_tools.kafka_io import event_message, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics
from lab.oracle import expected_versions
from lab.jobs import MiniClusterRest, start_job
from lab.wait import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EVENTS = AvroCodec("reco.UserEvent")
PASSWORD = "reco-test-" + uuid.uuid4().hex[:12]


def _url(stack, user=None, password=None):
    auth = f"{user}:{password}@" if user else ""
    return stack.redis_url.replace("redis://", f"redis://{auth}")


@pytest.fixture(scope="module")
def acl_redis(stack, tmp_path_factory):
    """The stack's Redis restarted with an ACL file: ``default`` as before, ``reco`` with
    exactly what the store needs, ``stranger`` the same commands on other keys. Stopped
    and started again without the file at the end."""
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()     # the file holds no clear password
    aclfile = tmp_path_factory.mktemp("acl") / "users.acl"
    aclfile.write_text("user default on nopass ~* &* +@all\n"
                       f"user reco on #{digest} {REQUIRED_ACL}\n"
                       f"user stranger on #{digest} {REQUIRED_ACL.replace('~reco:*', '~other:*')}\n")
    acl_env = {"RECO_REDIS_ACLFILE": str(aclfile)}
    stack.run("stop", "redis")
    stack.run("start", "redis", env_overrides=acl_env)
    try:
        yield acl_env
    finally:
        stack.run("stop", "redis", check=False)
        stack.run("start", "redis", check=False)


# --- the store as an ACL user -----------------------------------------------------------

def test_a_user_restricted_to_reco_keys_is_enough_for_the_store(stack, acl_redis):
    admin = redis.Redis.from_url(stack.redis_url)
    admin.flushdb()
    admin.script_flush()            # as after a restart: the store must load its script itself
    store = VersionedStore.from_url(_url(stack, "reco", PASSWORD), ttl_ms=60_000)
    key = contracts.user_recommendations_key(5)
    assert store.upsert(key, {"version": 2, "items": ["a"]}) is True
    assert store.upsert(key, {"version": 1, "items": ["old"]}) is False
    assert store.get(key) == {"version": 2, "items": ["a"]}
    for key in (contracts.item_similar_key(3), contracts.TRENDING_KEY):
        assert store.upsert(key, {"version": 7})
    # and nothing else: the user cannot touch other keys or run other commands
    raw = redis.Redis.from_url(_url(stack, "reco", PASSWORD))
    with pytest.raises(redis.exceptions.NoPermissionError):
        raw.get("other:key")
    with pytest.raises(redis.exceptions.NoPermissionError):
        raw.flushdb()


def test_a_user_without_the_keys_fails_at_once_with_a_clear_error(stack, acl_redis):
    store = VersionedStore.from_url(_url(stack, "stranger", PASSWORD), retry=RetryPolicy(max_total_ms=30_000))
    started = time.monotonic()
    with pytest.raises(RedisAccessError) as err:
        store.upsert(contracts.user_recommendations_key(5), {"version": 3})
    assert time.monotonic() - started < 5 and store.retries == 0          # not retried for 30 s
    message = str(err.value)
    assert "no permissions to access one of the keys" in message and "reco:v1:user:5" in message
    assert REQUIRED_ACL in message


def test_a_wrong_password_fails_at_once_with_a_clear_error(stack, acl_redis):
    store = VersionedStore.from_url(_url(stack, "reco", "not-the-password"), retry=RetryPolicy(max_total_ms=30_000))
    started = time.monotonic()
    with pytest.raises(RedisAccessError, match="refused the login"):
        store.upsert(contracts.user_recommendations_key(5), {"version": 3})
    assert time.monotonic() - started < 5 and store.retries == 0


# --- the job through a Redis restart --------------------------------------------------

def _latest(store, users):
    try:
        docs = store.mget([contracts.user_recommendations_key(u) for u in users])
    except redis.ConnectionError:     # the reader's own connection, across the restart
        return None
    return {u: (json.loads(d)["version"] if d else None) for u, d in zip(users, docs)}


def _blocked_s(job) -> float:
    """How long the job's Redis writes have been failing so far, by its log (0: not yet)."""
    found = re.findall(r"retrying for up to \d+s more \(attempt \d+, ([\d.]+)s so far\)", job.logs())
    return max(map(float, found), default=0.0)


def test_the_job_rides_out_a_redis_restart_without_restarting(stack, acl_redis, tmp_path):
    ensure_topics(stack.bootstrap, recreate=True)
    admin = redis.Redis.from_url(stack.redis_url)
    admin.flushdb()
    synth = Synth(SynthConfig(events=400, users=30, items=80, clusters=4, seed=21))
    warmup = sorted(synth.events(), key=lambda e: e["event_time"])
    users = sorted({e["user_id"] for e in warmup})
    # one more event per user, produced while Redis is down: every user's last list is
    # computed during the outage, and a Redis that restarts empty can only hold it if the
    # blocked writes went through afterwards
    t0 = warmup[-1]["event_time"] + 1_000
    during = [{"event_id": f"outage-{u}", "user_id": u, "item_id": (u * 7) % 80 + 1, "event_type": "CLICK",
               "value": None, "event_time": t0 + 50 * i} for i, u in enumerate(users)]
    finals = {u: v[-1] for u, v in expected_versions(warmup + during).items()}
    warm_finals = {u: v[-1] for u, v in expected_versions(warmup).items()}

    producer = make_producer(stack.bootstrap)
    produce_catalog(producer, synth.catalog(), progress=False)
    produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in warmup), progress=False)
    job = start_job(stack.bootstrap, _url(stack, "reco", PASSWORD), uuid.uuid4().hex[:8], tmp_path,
                     "--parallelism", "2", "--checkpoint-interval-ms", "2000", "--top-n", "5",
                     "--redis-retry-cap-ms", "1000", "--redis-retry-max-ms", "90000")
    try:
        rest = MiniClusterRest(job)
        wait_for(lambda: _latest(admin, users) == warm_finals, 300, "the job to answer every warm-up event", 1)
        assert rest.operator_metric("redisRetries") == 0

        stack.run("stop", "redis")
        outage_started = time.monotonic()
        produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in during), progress=False)
        # an outage the job has felt: its writes have failed for 10 s by its own log
        wait_for(lambda: _blocked_s(job) >= 10, 120, "the job's Redis writes to fail for 10 s (its log)", 1)
        state_during = rest.job()["state"]
        restarts_during = rest.num_restarts()
        retries_during = rest.operator_metric("redisRetries")
        stack.run("start", "redis", env_overrides=acl_redis)   # empty: no persistence
        outage_s = time.monotonic() - outage_started

        wait_for(lambda: _latest(admin, users) == finals, 120, "every user's last version after the restart", 1)
        recovered_s = time.monotonic() - outage_started
        print(f"\nRedis down {outage_s:.1f}s; all {len(users)} users' last lists in Redis {recovered_s:.1f}s after "
              f"the stop; job state during the outage {state_during}, restarts {restarts_during}; redisRetries "
              f"{retries_during} during the outage (REST)")
        # A job that fails and restarts also gets every list there in the end (the replay
        # rewrites them): what tells the two apart is the restart.
        assert job.poll() is None
        assert rest.job()["state"] == "RUNNING"
        failures = rest.exceptions()
        assert failures == [], ("the job failed during the outage: "
                                f"{failures[0].get('exceptionName')}: {failures[0].get('stacktrace', '')[:400]}")
        assert rest.num_restarts() == 0, "the job restarted"
        assert state_during == "RUNNING" and restarts_during == 0
        retries_after = wait_for(lambda: rest.operator_metric("redisRetries"), 30, "redisRetries to be reported", 1)
        print(f"redisRetries after the outage: {retries_after}")
    finally:
        producer.close()
        job.stop()


# --- TLS ----------------------------------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server of its own with TLS only (port from RECO_TEST_REDIS_TLS_PORT, 26681),
    a test CA, a server certificate for 127.0.0.1 and client certificates required."""
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=reco-test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, extra in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", *extra, cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other-ca.pem",
             "-days", "2", "-subj", "/CN=another-ca", cwd=d)
    port = int(os.environ.get("RECO_TEST_REDIS_TLS_PORT", "26681"))
    server = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(d),
                               "--tls-cert-file", "server.pem", "--tls-key-file", "server.key",
                               "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "yes"],
                              cwd=d, stdout=open(d / "redis.log", "w"), stderr=subprocess.STDOUT)
    try:
        def up():
            if server.poll() is not None:
                pytest.fail(f"redis-server with TLS exited:\n{(d / 'redis.log').read_text()}")
            return "Ready to accept connections" in (d / "redis.log").read_text()
        wait_for(up, 20, "redis-server with TLS")
        yield d, f"rediss://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(20)


def test_tls_with_a_client_certificate(tls_redis):
    d, url = tls_redis
    cfg = JobConfig(redis_url=url, redis_tls_ca_file=str(d / "ca.pem"), redis_tls_cert_file=str(d / "client.pem"),
                    redis_tls_key_file=str(d / "client.key"))                       # redis_tls_verify "full"
    store = VersionedStore.from_config(cfg)
    key = contracts.user_recommendations_key(1)
    assert store.upsert(key, {"version": 4})
    assert store.get(key) == {"version": 4}


def test_tls_failures_that_waiting_cannot_heal_fail_at_once(tls_redis):
    d, url = tls_redis
    good = dict(redis_url=url, redis_tls_ca_file=str(d / "ca.pem"), redis_tls_cert_file=str(d / "client.pem"),
                redis_tls_key_file=str(d / "client.key"), redis_retry_max_ms=30_000)
    # TLS 1.3 refuses a client certificate after the handshake, in an alert that races the
    # client's first command (it often finds the socket closed instead): hence several tries,
    # none of which may retry.
    cases = [({"redis_tls_ca_file": str(d / "other-ca.pem")}, "certificate did not verify")]
    cases += [({"redis_tls_cert_file": "", "redis_tls_key_file": ""}, "refused the client certificate")] * 10
    for changes, message in cases:
        store = VersionedStore.from_config(JobConfig(**{**good, **changes}))
        started = time.monotonic()
        with pytest.raises(RedisAccessError, match=message):
            store.upsert(contracts.user_recommendations_key(1), {"version": 5})
        assert store.retries == 0 and time.monotonic() - started < 5, changes


def test_plain_redis_on_the_tls_port_retries_then_gives_up(tls_redis):
    d, url = tls_redis
    cfg = JobConfig(redis_url=url.replace("rediss://", "redis://"), redis_retry_max_ms=1_500, redis_retry_cap_ms=200)
    store = VersionedStore.from_config(cfg)
    with pytest.raises(RedisUnavailable, match="redis_retry_max_ms=1500"):
        store.upsert(contracts.user_recommendations_key(1), {"version": 5})
    assert store.retries > 0


def test_a_failure_that_every_restart_replays_fails_the_job_after_its_restart_attempts(stack, tmp_path):
    """Redis that never comes back (nothing listens on port 9): each restart replays the
    same lists and fails again, so after --restart-attempts the job fails with the cause
    instead of looping."""
    ensure_topics(stack.bootstrap, recreate=True)
    producer = make_producer(stack.bootstrap)
    synth = Synth(SynthConfig(events=20, users=5, items=10, clusters=2, seed=3))
    produce_catalog(producer, synth.catalog(), progress=False)
    produce(producer, contracts.USER_EVENTS_TOPIC, map(lambda e: event_message(EVENTS, e), synth.events()),
            progress=False)
    producer.close()
    # Heap state: each restart cancels the tasks, and a cancel under RocksDB can take the
    # mini-cluster's JVM down with the client (docs/operations.md, "Known problems"), which
    # would end this run with a py4j error instead of the restart strategy's verdict.
    job = start_job(stack.bootstrap, "redis://127.0.0.1:9/0", uuid.uuid4().hex[:8], tmp_path, "--parallelism", "1",
                    "--redis-retry-max-ms", "500", "--restart-attempts", "2", "--restart-backoff-max-ms", "1000",
                    "--state-backend", "hashmap")
    try:
        wait_for(lambda: job.poll() is not None, 300, "the job to fail after its restart attempts", poll_s=1)
    finally:
        job.stop()
    logs = job.logs()
    assert job.poll() != 0
    assert "Recovery is suppressed" in logs and "RedisUnavailable" in logs, job.tail()
