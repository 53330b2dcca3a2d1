"""reco_tools/refill.py without services: the read loop against a scripted consumer, the
fallback from pipelined to single upserts, and the command line's refusals. Against real
Kafka and Redis: tests/integration/test_refill.py."""

from collections import namedtuple

import pytest
from kafka import TopicPartition

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from reco_tools import refill

TOPIC = contracts.RECOMMENDATIONS_TOPIC
RECS = AvroCodec(contracts.TOPIC_RECORDS[TOPIC])
Record = namedtuple("Record", "offset value key", defaults=(b"k",))


def _rec(user, version):
    return RECS.encode({"user_id": user, "version": version, "generated_at": 1, "event_time": 2,
                        "model_version": 0, "items": []})


class ScriptedConsumer:
    """Partition -> records (with offset gaps, as after compaction); each poll hands out one
    record per partition and moves the position past it (``stuck``: never moves). ``seek``
    starts a partition over, as a second pass does."""

    def __init__(self, logs, ends, stuck=()):
        self.logs = {TopicPartition(TOPIC, p): list(records) for p, records in logs.items()}
        self.ends = {TopicPartition(TOPIC, p): e for p, e in ends.items()}
        self.next = {tp: 0 for tp in self.logs}     # index of the next record to hand out
        self.pos = {tp: 0 for tp in self.logs}
        self.stuck, self.paused, self.closed = set(stuck), set(), False

    def assignment(self):
        return set(self.logs)

    def beginning_offsets(self, tps):
        return {tp: 0 for tp in tps}

    def end_offsets(self, tps):
        return {tp: self.ends[tp] for tp in tps}

    def seek(self, tp, offset):
        self.next[tp] = sum(1 for r in self.logs[tp] if r.offset < offset)
        self.pos[tp] = offset

    def pause(self, *tps):
        self.paused.update(tps)

    def resume(self, *tps):
        self.paused.difference_update(tps)

    def poll(self, timeout_ms):
        out = {}
        for tp, records in self.logs.items():
            i = self.next[tp]
            if tp in self.paused or tp.partition in self.stuck or i >= len(records):
                continue
            rec = records[i]
            self.next[tp] = i + 1
            out[tp] = [rec]
            self.pos[tp] = rec.offset + 1 if i + 1 < len(records) else max(rec.offset + 1, self.ends[tp] + 5)
        return out

    def position(self, tp):
        return self.pos[tp]

    def close(self):
        self.closed = True


class FakeStore:
    def __init__(self):
        self.docs, self.written = {}, 0

    def upsert_many(self, writes):
        landed = []
        for key, doc in writes:
            self.written += 1
            landed.append(key not in self.docs or self.docs[key]["version"] <= doc["version"])
            if landed[-1]:
                self.docs[key] = doc
        return landed


def test_writes_each_keys_last_record_before_the_end_offsets_taken_at_start(monkeypatch):
    consumer = ScriptedConsumer(
        {0: [Record(0, _rec(1, 1), b"1"), Record(2, _rec(1, 3), b"1"), Record(3, None, b"3"),
             Record(5, _rec(1, 9), b"1")],                                      # 5: after the end
         1: [Record(0, b"\xc3\x01garbage", b"4"), Record(1, _rec(2, 7), b"2"), Record(2, _rec(2, 4), b"2"),
             Record(3, _rec(5, 2), b"5")],
         2: []},
        ends={0: 5, 1: 4, 2: 0})
    monkeypatch.setattr(refill, "make_consumer", lambda *a, **k: consumer)
    store, said = FakeStore(), []
    store.docs[contracts.user_recommendations_key(5)] = {"version": 3}   # the job got there first
    counts = refill.refill_topic("b", {}, refill.USER_LISTS, store, said.append)
    # user 1: only version 3 (1 is superseded, 9 came after the end); user 2: its last record
    # (4: records of a key are the job's in order, so the last is what it wrote last)
    assert counts == refill.Counts(read=7, written=2, older=1, superseded=2, tombstones=1, undecodable=1)
    assert store.written == 3
    assert {k: d["version"] for k, d in store.docs.items()} == {contracts.user_recommendations_key(1): 3,
                                                               contracts.user_recommendations_key(2): 4,
                                                               contracts.user_recommendations_key(5): 3}
    assert sum("end offset" in line for line in said) == 4 and consumer.closed   # per partition and pass


def test_a_partition_that_stops_moving_is_reported_not_waited_for_forever(monkeypatch):
    consumer = ScriptedConsumer({0: [Record(0, _rec(1, 1))], 1: [Record(0, _rec(2, 1))]}, ends={0: 1, 1: 1},
                                stuck=(1,))
    monkeypatch.setattr(refill, "make_consumer", lambda *a, **k: consumer)
    with pytest.raises(refill.Unreachable, match=r"no progress .* 1@0/1"):
        refill.refill_topic("b", {}, refill.USER_LISTS, FakeStore(), print, stall_s=0.2)
    assert consumer.closed


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
