"""reco_tools/refill.py without services: the read loop against a scripted consumer, the
fallback from pipelined to single upserts, and the command line's refusals. Against real
Kafka and Redis: tests/integration/test_refill.py."""

from collections import namedtuple

import pytest
from kafka import TopicPartition

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from flink_jobs.redis_store import RedisAccessError
from reco_tools import refill

TOPIC = contracts.RECOMMENDATIONS_TOPIC
RECS = AvroCodec(contracts.TOPIC_RECORDS[TOPIC])
Record = namedtuple("Record", "offset value")


def _rec(user, version):
    return RECS.encode({"user_id": user, "version": version, "generated_at": 1, "event_time": 2,
                        "model_version": 0, "items": []})


class ScriptedConsumer:
    """Partition -> records (with offset gaps, as after compaction); each poll hands out one
    record per partition and moves the position past it (``stuck``: never moves)."""

    def __init__(self, logs, ends, stuck=()):
        self.logs = {TopicPartition(TOPIC, p): list(records) for p, records in logs.items()}
        self.ends = {TopicPartition(TOPIC, p): e for p, e in ends.items()}
        self.pos = {tp: 0 for tp in self.logs}
        self.stuck, self.paused, self.closed = set(stuck), set(), False

    def assignment(self):
        return set(self.logs)

    def beginning_offsets(self, tps):
        return {tp: 0 for tp in tps}

    def end_offsets(self, tps):
        return {tp: self.ends[tp] for tp in tps}

    def pause(self, *tps):
        self.paused.update(tps)

    def poll(self, timeout_ms):
        out = {}
        for tp, records in self.logs.items():
            if tp in self.paused or tp.partition in self.stuck or not records:
                continue
            rec = records.pop(0)
            out[tp] = [rec]
            self.pos[tp] = rec.offset + 1 if records else max(rec.offset + 1, self.ends[tp] + 5)
        return out

    def position(self, tp):
        return self.pos[tp]

    def close(self):
        self.closed = True


class FakeStore:
    def __init__(self, refuse_many=False, refuse_all=False):
        self.docs, self.refuse_many, self.refuse_all, self.calls = {}, refuse_many, refuse_all, []

    def upsert(self, key, doc):
        if self.refuse_all:
            raise RedisAccessError("NOPERM")
        self.calls.append("one")
        if key in self.docs and self.docs[key]["version"] > doc["version"]:
            return False
        self.docs[key] = doc
        return True

    def upsert_many(self, writes):
        if self.refuse_many or self.refuse_all:
            raise RedisAccessError("NOPERM script|exists")
        self.calls.append("many")
        return [self.upsert(k, d) for k, d in writes]


def test_reads_to_the_end_offsets_taken_at_start_and_counts_what_it_skips(monkeypatch):
    consumer = ScriptedConsumer(
        {0: [Record(0, _rec(1, 1)), Record(2, _rec(1, 3)), Record(3, None), Record(5, _rec(1, 9))],  # 5: after the end
         1: [Record(0, b"\xc3\x01garbage"), Record(1, _rec(2, 7)), Record(2, _rec(2, 4))],
         2: []},
        ends={0: 5, 1: 3, 2: 0})
    monkeypatch.setattr(refill, "make_consumer", lambda *a, **k: consumer)
    store, said = FakeStore(), []
    counts = refill.refill_topic("b", {}, refill.USER_LISTS, refill.Writer(store, said.append), said.append)
    assert counts == refill.Counts(read=6, written=3, older=1, tombstones=1, undecodable=1)
    assert {k: d["version"] for k, d in store.docs.items()} == {contracts.user_recommendations_key(1): 3,
                                                               contracts.user_recommendations_key(2): 7}
    assert sum("end offset" in line for line in said) == 2 and consumer.closed


def test_a_partition_that_stops_moving_is_reported_not_waited_for_forever(monkeypatch):
    consumer = ScriptedConsumer({0: [Record(0, _rec(1, 1))], 1: [Record(0, _rec(2, 1))]}, ends={0: 1, 1: 1},
                                stuck=(1,))
    monkeypatch.setattr(refill, "make_consumer", lambda *a, **k: consumer)
    with pytest.raises(refill.Unreachable, match=r"no progress .* 1@0/1"):
        refill.refill_topic("b", {}, refill.USER_LISTS, refill.Writer(FakeStore(), print), print, stall_s=0.2)
    assert consumer.closed


def test_pipelined_upserts_fall_back_to_single_ones_when_redis_refuses_them():
    said = []
    store = FakeStore(refuse_many=True)
    writer = refill.Writer(store, said.append)
    assert writer.write([("k1", {"version": 1}), ("k2", {"version": 2})]) == [True, True]
    assert writer.write([("k1", {"version": 0})]) == [False]
    assert "one upsert per record" in said[0] and len(said) == 1
    with pytest.raises(RedisAccessError):     # the job's ACL missing too: no fallback can help
        refill.Writer(FakeStore(refuse_all=True), said.append).write([("k", {"version": 1})])


def test_a_password_on_the_command_line_is_refused_without_showing_it(capsys, monkeypatch):
    monkeypatch.delenv("RECO_REDIS_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        refill.main(["--redis", "redis://reco:s3cret-pw@127.0.0.1:1/0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "RECO_REDIS_URL" in err and "s3cret-pw" not in err


def test_unreachable_redis_exits_2_before_kafka_is_asked(capsys, monkeypatch):
    monkeypatch.setenv("RECO_REDIS_URL", "redis://reco:s3cret-pw@127.0.0.1:1/0")
    monkeypatch.setattr(refill, "make_consumer", lambda *a, **k: pytest.fail("Kafka asked"))
    assert refill.main(["--bootstrap", "127.0.0.1:1"]) == 2
    out = capsys.readouterr()
    assert "cannot reach Redis at redis://reco:***@127.0.0.1:1/0" in out.err
    assert "s3cret-pw" not in out.err + out.out
