"""Validation with bounds: what decode lets into the job.

Expected outcomes come from docs/algorithm.md ("Bad input and dead letters", "Versions": versions are
max(event_time x 1024, previous + 1)) and the schema docs, written here as literals.
"""

import math
import random

import pytest

from flink_jobs.config import ConfigError, JobConfig
from flink_jobs.validation import validate_event
from udfs.versioning import next_version

CFG = JobConfig()
NOW = 1_795_000_000_000            # processing time of these tests: 2026-11-18T08:26:40Z
HOUR = 3_600_000
JAN_1_1995 = 788_918_400_000       # the documented default of earliest_event_time_ms
OK = {"event_id": "e-1", "user_id": 42, "item_id": 7, "event_type": "VIEW", "value": None,
      "event_time": NOW - 60_000}


def check(cfg=CFG, now=NOW, **changes):
    return validate_event({**OK, **changes}, cfg, now)


def test_documented_defaults():
    assert (CFG.earliest_event_time_ms, CFG.max_future_skew_ms) == (JAN_1_1995, HOUR)


@pytest.mark.parametrize("changes,fragment", [
    # time
    (dict(event_time=2**53), "event_time 9007199254740992 is 9005404254740992 ms ahead of processing time"),
    (dict(event_time=32_503_680_000_000), "ahead of processing time"),        # 3000-01-01
    (dict(event_time=0), "before earliest_event_time_ms 788918400000"),          # 1970-01-01
    (dict(event_time=1), "before earliest_event_time_ms"),
    (dict(event_time=-1), "before earliest_event_time_ms"),
    (dict(event_time=1_700_000_000), "before earliest_event_time_ms"),           # seconds, not ms
    (dict(event_time=JAN_1_1995 - 1), "before earliest_event_time_ms"),
    (dict(event_time=NOW + HOUR + 1), "more than max_future_skew_ms 3600000"),
    # values the schema or the job cannot use
    (dict(event_type="RATING", value=0.0), "RATING needs a value within [0.5, 5.0], got 0.0"),
    (dict(event_type="RATING", value=None), "RATING needs a value"),
    (dict(event_type="RATING", value=5.5), "RATING needs a value"),
    (dict(event_type="RATING", value=math.nan), "RATING needs a value"),
    (dict(event_type="VIEW", value=-1e308), "VIEW value -1e+308 outside [0, 1e+12]"),
    (dict(event_type="CLICK", value=-1.0), "CLICK value -1.0 outside"),
    (dict(event_type="PURCHASE", value=1e12 * 1.01), "PURCHASE value"),
    (dict(event_type="ADD_TO_CART", value=math.inf), "ADD_TO_CART value inf"),
    (dict(event_type="VIEW", value=math.nan), "VIEW value nan"),
    (dict(event_id="x" * 1_000_000), "event_id of 1000000 characters, more than 256"),
    (dict(event_id="x" * 257), "event_id of 257 characters"),
    (dict(user_id=2**63 - 1), "user_id 9223372036854775807 outside [0, 2^53)"),
    (dict(user_id=2**53), "user_id 9007199254740992 outside [0, 2^53)"),
    (dict(user_id=-1), "user_id -1 outside"),
    (dict(item_id=2**63 - 1), "item_id 9223372036854775807 outside"),
    (dict(item_id=-5), "item_id -5 outside"),
    (dict(event_type="LIKE"), "unknown event_type 'LIKE'"),
])
def test_hostile_events_are_refused_with_a_clear_reason(changes, fragment):
    reason = check(**changes)
    assert reason is not None and fragment in reason, reason
    assert len(reason) < 200  # a dead letter's reason never carries the hostile value whole


@pytest.mark.parametrize("changes", [
    dict(),
    dict(event_time=JAN_1_1995),                       # the earliest accepted
    dict(event_time=789_652_009_000),                  # the first MovieLens rating, 1995-01-09
    dict(event_time=1_476_640_644_000),                # its last, 2016-10-16
    dict(event_time=1_700_000_000_000),                # the synthetic load's start
    dict(event_time=NOW + HOUR),                       # exactly the allowed skew ahead
    dict(event_type="RATING", value=0.5),
    dict(event_type="RATING", value=5.0),
    dict(event_type="PURCHASE", value=0.0),
    dict(event_type="PURCHASE", value=1e12),
    dict(event_type="ADD_TO_CART", value=19.99),
    dict(event_id=""),
    dict(event_id="é" * 256),                          # 256 characters (512 UTF-8 bytes)
    dict(user_id=0, item_id=0),
    dict(user_id=2**53 - 1, item_id=2**53 - 1),
])
def test_valid_edge_values_are_accepted(changes):
    assert check(**changes) is None


def test_bounds_follow_the_configuration_and_the_clock():
    cfg = JobConfig(earliest_event_time_ms=1_600_000_000_000, max_future_skew_ms=0)
    assert check(cfg, event_time=1_599_999_999_999) is not None
    assert check(cfg, event_time=1_600_000_000_000) is None
    assert check(cfg, now=NOW, event_time=NOW) is None
    assert check(cfg, now=NOW, event_time=NOW + 1) is not None
    assert check(cfg, now=NOW + 1, event_time=NOW + 1) is None   # the clock moved on


@pytest.mark.parametrize("setting,value,fragment", [
    ("earliest_event_time_ms", 0, "earliest_event_time_ms must be within (0, 4398046511104)"),
    ("earliest_event_time_ms", -1, "earliest_event_time_ms must be within"),
    ("earliest_event_time_ms", 2**42, "earliest_event_time_ms must be within"),
    ("max_future_skew_ms", -1, "max_future_skew_ms must be within [0, 86400000]"),
    ("max_future_skew_ms", 86_400_001, "max_future_skew_ms must be within"),
])
def test_bad_bounds_are_refused_at_start(setting, value, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        JobConfig(**{setting: value})


def test_bounds_load_from_the_environment_like_every_setting():
    cfg = JobConfig.load(env={"RECO_EARLIEST_EVENT_TIME_MS": "1600000000000", "RECO_MAX_FUTURE_SKEW_MS": "0"})
    assert (cfg.earliest_event_time_ms, cfg.max_future_skew_ms) == (1_600_000_000_000, 0)


# Versions: docs/algorithm.md "Versions"; they must stay
# below 2^53, where Lua's tonumber (the Redis compare-and-set) and JSON stop being exact.
LIMIT = 2**53
LATEST_EVER = 2**42 - 1   # the latest event time any configuration and any clock can accept


def test_no_configuration_or_clock_accepts_an_event_time_past_2_to_the_42():
    widest = JobConfig(earliest_event_time_ms=1, max_future_skew_ms=86_400_000)  # the loosest valid bounds
    for now in (NOW, 2**42, 2**53, 2**62):   # even a clock centuries off
        assert check(widest, now=now, event_time=2**42) is not None
        assert check(widest, now=now, event_time=2**53) is not None
    assert check(widest, now=2**42, event_time=LATEST_EVER) is None


def test_versions_from_accepted_event_times_stay_exact():
    # The bound: an accepted event's own candidate is at most LATEST_EVER x 1024, and each
    # event adds at most one to the previous version, so after k events v <= that + k.
    assert LATEST_EVER * 1024 + 2**52 < LIMIT   # room for 2^52 events of one user
    # next_version follows the definition in docs/algorithm.md at the extremes
    v = next_version(None, LATEST_EVER)
    assert v == LATEST_EVER * 1024 == 2**52 - 1024
    for _ in range(10_000):                  # a burst of late or same-ms events
        v = next_version(v, JAN_1_1995)
    assert v == LATEST_EVER * 1024 + 10_000 < LIMIT and float(v) == v
    # random accepted times, with a TTL expiry (previous forgotten) now and then
    rng = random.Random(9)
    times = [JAN_1_1995, LATEST_EVER, NOW, NOW + HOUR]
    v, k, highest = None, 0, 0
    for _ in range(20_000):
        t = rng.choice(times) if rng.random() < 0.5 else rng.randrange(JAN_1_1995, LATEST_EVER + 1)
        assert check(now=LATEST_EVER, event_time=t) is None
        previous = None if rng.random() < 0.01 else v
        expected = max(t * 1024, (previous or 0) + 1)
        new = next_version(previous, t)
        assert new == expected and new > (previous or 0)
        k += 1
        highest = max(highest, t * 1024)
        assert new <= highest + k < LIMIT and float(new) == new
        v = new


# DecodeEvents: the codec and the bounds together, with the processing time from Flink's
# context (faked here: no JVM)
class _Counter:
    def __init__(self):
        self.n = 0

    def inc(self, n=1):
        self.n += n


class _Runtime:
    def __init__(self):
        self.counters = {}

    def get_metrics_group(self):
        return self

    def counter(self, name):
        return self.counters.setdefault(name, _Counter())


class _Ctx:
    def __init__(self, watermark: int = -2**63):
        self.watermark = watermark

    def timer_service(self):
        return self

    def current_processing_time(self):
        return NOW

    def current_watermark(self):
        return self.watermark


def test_decode_events_dead_letters_hostile_records_with_their_reason():
    from flink_jobs.codec import AvroCodec
    from flink_jobs.operators import DEAD_LETTERS, DecodeEvents

    codec = AvroCodec("reco.UserEvent")
    good = codec.encode(OK)
    future = codec.encode({**OK, "event_time": NOW + 2 * HOUR})
    negative_enum = good[:10] + good[10:].replace(b"\x00\x00", b"\x01\x00", 1)  # VIEW's index 0 -> -1
    assert codec.encode({**OK, "event_type": "VIEW"})[10:].count(b"\x00\x00") == 1
    op = DecodeEvents(CFG)
    runtime = _Runtime()
    op.open(runtime)
    out = [x for payload in (good, future, negative_enum)
           for x in op.process_element((payload, 3, 99, NOW), _Ctx())]
    assert len(out) == 3 and out[0][0] == out[0][1].user == 42   # keyed by user for UserActivity and the Ranker
    reasons = [letter["reason"] for tag, letter in out[1:] if tag is DEAD_LETTERS]
    assert "more than max_future_skew_ms" in reasons[0]
    assert "enum reco.EventType index -1" in reasons[1]
    assert (runtime.counters["eventsValid"].n, runtime.counters["eventsDeadLettered"].n) == (1, 2)


def test_an_event_whose_bucket_has_closed_is_late_and_dead_lettered():
    # docs/algorithm.md: an event is late when the watermark has passed the end of its bucket
    # (buckets of bucket_ms from the epoch); its bucket's list is already out.
    from flink_jobs.codec import AvroCodec
    from flink_jobs.operators import DEAD_LETTERS, DecodeEvents

    cfg = CFG.replace(bucket_ms=60_000)
    start = (NOW - HOUR) // 60_000 * 60_000          # a bucket [start, start + 60 s)
    codec = AvroCodec("reco.UserEvent")
    op = DecodeEvents(cfg)
    runtime = _Runtime()
    op.open(runtime)

    def decode(t, watermark):
        return list(op.process_element((codec.encode({**OK, "event_time": t}), 0, 7, t), _Ctx(watermark)))

    on_time = decode(start + 5_000, start + 59_999)   # behind the watermark, bucket still open
    assert len(on_time) == 1 and on_time[0][1].t == start + 5_000
    (tag, letter), = decode(start + 5_000, start + 60_000)   # the bucket's end reached
    assert tag is DEAD_LETTERS and letter["reason"].startswith("late: ")
    assert (letter["source_partition"], letter["source_offset"]) == (0, 7)
    assert (runtime.counters["eventsLate"].n, runtime.counters["eventsValid"].n) == (1, 1)


# --- the catalog (docs/algorithm.md "Bad input and dead letters") ----------------------------------

ITEM = {"item_id": 12, "title": "Heat (1995)", "tags": ["Action", "Crime"], "embedding": None,
        "updated_at": 1, "deleted": False}


@pytest.mark.parametrize("change, why", [
    ({"item_id": -1}, "item_id -1 outside"),
    ({"item_id": 2**53}, "outside [0, 2^53)"),
    ({"title": "x" * 1_001}, "title of 1001 characters"),
    ({"tags": [f"t{i}" for i in range(100_000)]}, "100000 tags"),
    ({"tags": ["x" * 101]}, "a tag of more than 100"),
    ({"embedding": [0.1, float("nan")]}, "NaN or infinite"),
    ({"embedding": [float("inf")]}, "NaN or infinite"),
    ({"embedding": [0.0] * 4_097}, "4097 dimensions"),
    ({"embedding": [1.0], "model_version": -3}, "model_version -3 below 0"),
    ({"embedding": [1.0], "model_version": 3, "model_size": -1}, "model_size -1 below 0"),
])
def test_a_catalog_record_out_of_bounds_is_refused(change, why):
    from flink_jobs.validation import validate_item

    assert why in validate_item({**ITEM, **change}, b"12" if "item_id" not in change else None)


def test_a_catalog_record_within_bounds_and_keyed_by_its_item_is_accepted():
    from flink_jobs.validation import validate_item

    ok = {**ITEM, "tags": [f"t{i}" for i in range(100)], "embedding": [0.5] * 4_096, "title": "x" * 1_000}
    assert validate_item(ok, b"12") is None and validate_item(ok, None) is None
    assert "does not name item 12" in validate_item(ok, b"13")


@pytest.mark.parametrize("key", [b" 7 ", b"7 ", b"0_7", b"+7", b"-0", b"07", b"00", b"7\n", "\uff17".encode(),
                                 "\u0667".encode(), b"0x7", b"7.0", b"1e3", b"9007199254740992", b"1" * 5_000])
def test_a_catalog_key_must_be_the_canonical_decimal_the_job_writes(key):
    # int() takes spaces, signs, underscores and leading zeros: a tombstone keyed b"+7" would delete item 7
    from flink_jobs.contracts import record_key
    from flink_jobs.validation import item_of_key, validate_item

    assert item_of_key(key) is None                       # a tombstone with this key deletes nothing
    assert "does not name item 7" in validate_item({**ITEM, "item_id": 7}, key)
    for item in (0, 7, 12, 2**53 - 1):
        assert item_of_key(record_key(item)) == item
    assert item_of_key(bytearray(b"12")) == 12 and item_of_key(b"") is None and item_of_key(None) is None


def test_decode_catalog_deletes_on_a_tombstone_and_logs_a_bad_record_with_its_offset(caplog):
    from flink_jobs.codec import AvroCodec
    from flink_jobs.operators import DecodeCatalog
    from udfs.records import ItemInfo

    codec = AvroCodec("reco.ItemFeatures")
    op = DecodeCatalog("int8")
    runtime = _Runtime()
    op.open(runtime)
    nan = codec.encode({**ITEM, "embedding": [1.0, float("nan")]})
    with caplog.at_level("WARNING", logger="reco.operators"):
        out = [x for record in ((codec.encode(ITEM), b"12", 0, 5), (None, b"12", 0, 6), (nan, b"12", 0, 7),
                                (b"\xc3\x01junk", b"12", 0, 8), (None, b"not-an-id", 0, 9))
               for x in op.process_element(record, None)]
    from flink_jobs.operators import LISTINGS
    from udfs.records import Listing
    assert [x for x in out if not isinstance(x, tuple) or x[0] is not LISTINGS] == [
        ItemInfo(12, "Heat (1995)", ("Action", "Crime"), False), ItemInfo(12, "", (), True)]
    # trending hears of each: listed, then deleted
    assert [tuple(x[1]) for x in out if isinstance(x, tuple) and x[0] is LISTINGS] == [
        (0, Listing(12, True)), (0, Listing(12, False))]
    assert runtime.counters["catalogRecordsInvalid"].n == 3
    logged = [r.getMessage() for r in caplog.records]
    assert [("offset 7" in m, "offset 8" in m, "offset 9" in m) for m in logged] == [
        (True, False, False), (False, True, False), (False, False, True)]
