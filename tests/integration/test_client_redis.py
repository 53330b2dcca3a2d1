"""reco_client against real redis-servers: the stack's (its own database), an ACL user,
the TLS server of test_redis_outage.py, and one of its own that goes away mid-use."""

import asyncio
import socket
import subprocess
import time

import pytest
import redis

from flink_jobs import documents
from flink_jobs.config import JobConfig
from flink_jobs.redis_store import VersionedStore
from lab.wait import wait_for
from reco_client import AccessDenied, AsyncRecoClient, NotFound, RecoClient, Unavailable
from test_redis_outage import tls_redis  # noqa: F401  (the fixture: a TLS-only redis-server and its certificates)

pytestmark = pytest.mark.integration

USER = {"user_id": 42, "version": 3, "generated_at": 1_000, "event_time": 900, "model_version": 0,
        "items": [{"item_id": 7, "score": 0.8, "reason": "because you liked Heat (1995)"}]}
NEIGHBORS = {"item_id": 7, "item_count": 3.0, "event_time": 5_000, "neighbors": [{"item_id": 8, "score": 0.5, "co_count": 2.0}]}


class _Top:
    t, top = 6_000, ((9, 12), (8, 4))


@pytest.fixture
def db(stack):
    """The stack's Redis, database 15 (the job's tests use 0), emptied, with one document of each kind."""
    url = stack.redis_url.rsplit("/", 1)[0] + "/15"
    redis.Redis.from_url(url).flushdb()
    store = VersionedStore.from_url(url)
    for key, doc in (documents.user_document(USER), documents.similar_document(NEIGHBORS),
                     documents.trending_document(_Top())):
        store.upsert(key, doc)
    return url


def test_reads_each_kind_and_falls_back_to_trending_for_an_unknown_user(db):
    with RecoClient(redis_url=db) as client:
        recs = client.recommendations(42)
        assert (recs.version, recs.fallback, [i.item_id for i in recs.items]) == (3, False, [7])
        cold = client.recommendations(43, n=1)
        assert cold.fallback and [i.item_id for i in cold.items] == [9] and cold.version == 6_000
        with pytest.raises(NotFound) as caught:
            client.recommendations(43, fallback=False)
        assert caught.value.key == "reco:v1:user:43"
        assert [n.item_id for n in client.similar(7).neighbors] == [8]
        with pytest.raises(NotFound, match="no similar items for item 8"):
            client.similar(8)
        assert [t.item_id for t in client.trending().items] == [9, 8]
        redis.Redis.from_url(db).delete("reco:v1:trending")
        with pytest.raises(NotFound, match="no trending list yet"):
            client.recommendations(43)


def test_the_async_client_reads_the_same(db):
    async def read():
        async with AsyncRecoClient(redis_url=db) as client:
            return (await client.recommendations(42), await client.recommendations(5),
                    await client.similar(7), await client.trending(n=1))

    with RecoClient(redis_url=db) as client:
        expected = (client.recommendations(42), client.recommendations(5), client.similar(7), client.trending(n=1))
    assert asyncio.run(read()) == expected


def test_an_acl_user_reads_with_get_and_select_only_and_a_wrong_password_is_access_denied(db):
    admin = redis.Redis.from_url(db)
    admin.acl_setuser("reco-reader", enabled=True, passwords=["+right"], keys=["reco:*"], commands=["+get", "+ping", "+select"],
                      reset=True)
    try:
        host_db = db.split("://", 1)[1]
        with RecoClient(redis_url=f"redis://reco-reader:right@{host_db}") as client:
            assert client.recommendations(42).version == 3
        with RecoClient(redis_url=f"redis://reco-reader:n0t-1t@{host_db}") as client:
            with pytest.raises(AccessDenied, match="refused the login") as caught:
                client.recommendations(42)
            assert "n0t-1t" not in str(caught.value)
    finally:
        admin.acl_deluser("reco-reader")


def test_tls_with_the_jobs_settings(tls_redis):  # noqa: F811
    d, url = tls_redis
    tls = dict(redis_tls_cert_file=str(d / "client.pem"), redis_tls_key_file=str(d / "client.key"))
    VersionedStore.from_config(JobConfig(redis_url=url, redis_tls_ca_file=str(d / "ca.pem"), **tls)).upsert(
        *documents.user_document(USER))
    with RecoClient(redis_url=url, redis_tls_ca_file=str(d / "ca.pem"), **tls) as client:
        assert client.recommendations(42).items[0].item_id == 7
    with RecoClient(redis_url=url, redis_tls_ca_file=str(d / "other-ca.pem"), **tls) as client:
        with pytest.raises(AccessDenied, match="certificate did not verify"):
            client.recommendations(42)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_server(port, tmp_path):
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    wait_for(lambda: _answers(port), 20, f"redis-server on {port}")
    return server


def _answers(port):
    try:
        return redis.Redis(port=port, socket_connect_timeout=0.2).ping()
    except redis.ConnectionError:
        return False


def test_an_outage_fails_fast_and_the_client_reads_again_once_redis_is_back(tmp_path):
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port, tmp_path)
    try:
        VersionedStore.from_url(url).upsert(*documents.user_document(USER))
        client = RecoClient(redis_url=url, redis_connect_timeout_ms=300, redis_read_timeout_ms=300)
        assert client.recommendations(42).version == 3
        server.terminate()
        server.wait(20)
        started = time.monotonic()
        with pytest.raises(Unavailable, match=f"127.0.0.1:{port}"):
            client.recommendations(42)
        assert time.monotonic() - started < 5, "a read must fail within its timeouts, not wait out the outage"
        server = _redis_server(port, tmp_path)
        VersionedStore.from_url(url).upsert(*documents.user_document(USER))
        assert client.recommendations(42).version == 3   # the pooled connection died; the retry takes a new one
    finally:
        server.terminate()
        server.wait(20)
