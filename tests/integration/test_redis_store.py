import uuid

import pytest
import redis

from flink_jobs import contracts
from flink_jobs.redis_store import REQUIRED_ACL, VersionedStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(stack):
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    return VersionedStore(client, ttl_ms=60_000)


def test_set_and_get_through_the_project_client(store):
    key = contracts.user_recommendations_key(42)
    doc = {"version": 1, "items": [{"item_id": 7, "score": 0.5, "reason": "r"}], "event_time": 5}
    assert store.upsert(key, doc) is True
    assert store.get(key) == doc
    assert store.client.get("reco:v1:user:42") is not None
    assert 0 < store.client.pttl(key) <= 60_000


def test_only_newer_versions_land(store):
    key = contracts.user_recommendations_key(1)
    assert store.upsert(key, {"version": 5, "items": ["v5"]})
    assert store.upsert(key, {"version": 4, "items": ["v4"]}) is False   # replayed older write
    assert store.get(key)["items"] == ["v5"]
    assert store.upsert(key, {"version": 5, "items": ["again"]}) is True   # the same version, recomputed
    assert store.get(key)["items"] == ["again"]
    assert store.upsert(key, {"version": 6, "items": ["v6"]})
    assert store.get(key) == {"version": 6, "items": ["v6"]}


def test_upsert_many_in_one_round_trip(store):
    keys = [contracts.user_recommendations_key(u) for u in range(3)]
    store.upsert(keys[1], {"version": 10})
    results = store.upsert_many([(k, {"version": 3, "k": k}) for k in keys])
    assert results == [True, False, True]
    assert store.get(keys[1]) == {"version": 10}


def test_upsert_many_needs_only_the_jobs_acl_and_reloads_a_forgotten_script(stack, store):
    user, password = f"many-{uuid.uuid4().hex[:6]}", "pw-" + uuid.uuid4().hex
    store.client.execute_command("ACL", "SETUSER", user, "on", f">{password}", *REQUIRED_ACL.split())
    try:
        limited = VersionedStore.from_url(stack.redis_url.replace("redis://", f"redis://{user}:{password}@"))
        keys = [contracts.user_recommendations_key(u) for u in range(3)]
        for round_ in (1, 2):
            store.client.script_flush()    # as a restarted server: the first EVALSHA gets NOSCRIPT
            assert limited.upsert_many([(k, {"version": round_}) for k in keys]) == [True] * 3
            assert [store.get(k) for k in keys] == [{"version": round_}] * 3
        assert limited.upsert_many([(keys[0], {"version": 1})]) == [False]
    finally:
        store.client.execute_command("ACL", "DELUSER", user)


def test_ttl_zero_means_no_expiry(stack):
    client = redis.Redis.from_url(stack.redis_url)
    store = VersionedStore(client, ttl_ms=0)
    key = contracts.item_similar_key(3)
    client.delete(key)
    store.upsert(key, {"version": 1})
    assert client.pttl(key) == -1


@pytest.mark.parametrize("doc", [{}, {"version": "3"}, {"version": True}])
def test_documents_need_an_integer_version(store, doc):
    with pytest.raises(ValueError, match="version"):
        store.upsert(contracts.TRENDING_KEY, doc)


def test_unconditional_writes_let_a_replay_move_a_key_back(stack):
    # The mode the chaos test uses to show it catches a broken guarantee.
    client = redis.Redis.from_url(stack.redis_url)
    store = VersionedStore(client, ttl_ms=0, versioned=False)
    key = contracts.user_recommendations_key(9)
    client.delete(key)
    store.upsert(key, {"version": 5})
    assert store.upsert(key, {"version": 4}) is True
    assert store.get(key) == {"version": 4}
