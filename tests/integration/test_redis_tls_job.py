"""Redis over TLS under the running job (the store alone is tested over TLS in
test_redis_outage.py; this is the job on the local mini-cluster, its Python workers
connecting themselves).

- The job writes to a ``rediss://`` Redis that takes TLS only and requires a client
  certificate, with the server's certificate verified against the test CA and its name
  (``--redis-tls-verify full``) and the client certificate presented: every user's last
  version arrives.
- The job given another CA fails with a clear TLS error in its log (the certificate did not
  verify; not retried as an outage) and, with ``--restart-attempts 1``, ends with a non-zero
  exit having written nothing.

The TLS redis-server, its CA and certificates come from test_redis_outage.py's ``tls_redis``
fixture (port RECO_TEST_REDIS_TLS_PORT, 26681); Kafka is the session ``stack``'s.
"""

import json
import uuid

import pytest
import redis

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from lab.jobs import start_job
from lab.oracle import expected_versions
from lab.wait import wait_for
from reco_tools.kafka_io import event_message, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics
from test_redis_outage import tls_redis  # noqa: F401  (the fixture: a TLS-only redis-server and its certificates)

pytestmark = pytest.mark.integration
EVENTS = AvroCodec("reco.UserEvent")


def _tls_flags(d, ca="ca.pem"):
    return ["--redis-tls-ca-file", str(d / ca), "--redis-tls-cert-file", str(d / "client.pem"),
            "--redis-tls-key-file", str(d / "client.key"), "--redis-tls-verify", "full"]


def _reader(d, url):
    """A client of our own to the TLS server, verified the same way."""
    return redis.Redis.from_url(url, ssl_ca_certs=str(d / "ca.pem"), ssl_certfile=str(d / "client.pem"),
                                ssl_keyfile=str(d / "client.key"), ssl_cert_reqs="required", ssl_check_hostname=True)


def _produce(stack, seed):
    ensure_topics(stack.bootstrap, recreate=True)
    synth = Synth(SynthConfig(events=300, users=20, items=60, clusters=3, seed=seed))
    events = sorted(synth.events(), key=lambda e: e["event_time"])
    producer = make_producer(stack.bootstrap)
    produce_catalog(producer, synth.catalog(), progress=False)
    produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in events), progress=False)
    producer.close()
    return events


def test_the_job_writes_every_users_last_list_to_redis_over_verified_tls(stack, tls_redis, tmp_path):
    d, url = tls_redis
    reader = _reader(d, url)
    reader.flushdb()
    events = _produce(stack, seed=23)
    finals = {u: v[-1] for u, v in expected_versions(events).items()}
    job = start_job(stack.bootstrap, url, uuid.uuid4().hex[:8], tmp_path / "job",
                    "--parallelism", "2", "--checkpoint-interval-ms", "2000", "--top-n", "5", *_tls_flags(d))
    try:
        def caught_up():
            job.check_alive()
            docs = reader.mget([contracts.user_recommendations_key(u) for u in finals])
            return all(doc is not None and json.loads(doc)["version"] == finals[u] for u, doc in zip(finals, docs))
        wait_for(caught_up, 600, "every user's last version in the TLS Redis", poll_s=1)
        assert job.poll() is None
    finally:
        job.stop()
    assert "rediss://127.0.0.1" in job.logs()         # the settings line: the job did use the TLS URL


def test_a_job_given_the_wrong_ca_fails_with_a_tls_error_and_writes_nothing(stack, tls_redis, tmp_path):
    d, url = tls_redis
    reader = _reader(d, url)
    reader.flushdb()
    _produce(stack, seed=29)
    job = start_job(stack.bootstrap, url, uuid.uuid4().hex[:8], tmp_path / "job",
                    "--parallelism", "1", "--checkpoint-interval-ms", "2000", *_tls_flags(d, ca="other-ca.pem"),
                    "--restart-attempts", "1", "--restart-backoff-max-ms", "1000")
    try:
        wait_for(lambda: job.poll() is not None, 600, "the job to fail after its one restart", poll_s=1)
    finally:
        job.stop()
    logs = job.logs()
    assert job.poll() != 0, job.tail()
    assert "the Redis server's TLS certificate did not verify" in logs, job.tail()
    assert "Recovery is suppressed" in logs, job.tail()
    assert "RedisUnavailable" not in logs, "the TLS failure was retried as an outage"
    assert reader.dbsize() == 0, f"the job wrote {reader.keys('*')[:5]} despite the failed certificate check"
