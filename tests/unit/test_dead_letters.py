"""Dead letters always fit the job's Kafka producer, whatever the record that caused them."""

import hashlib

from flink_jobs.codec import AvroCodec
from flink_jobs.operators import dead_letter

LETTERS = AvroCodec("reco.DeadLetter")
PRODUCER_LIMIT = 1_048_576     # Kafka's default max.request.size, the job producer's
BROKER_LIMIT = 1_048_588       # Kafka's default message.max.bytes: the largest record that can arrive


def test_a_record_at_the_brokers_limit_gives_a_letter_well_below_the_producers():
    payload = bytes(range(256)) * (BROKER_LIMIT // 256)
    letter = dead_letter(payload, "x" * 5_000_000, 3, 2**40, 1_700_000_000_000)
    encoded = LETTERS.encode(letter)
    assert len(encoded) + 1_024 < PRODUCER_LIMIT // 8        # room for the record batch's own header
    assert payload.startswith(letter["payload"]) and len(letter["payload"]) >= 64 * 1024
    assert f"{len(payload)} bytes" in letter["reason"]
    assert hashlib.sha256(payload).hexdigest() in letter["reason"]
    assert LETTERS.decode(encoded)["source_offset"] == 2**40


def test_a_small_payload_is_kept_whole_with_its_reason():
    payload = b"\xc3\x01" + b"\x00" * 300
    letter = dead_letter(payload, "bad magic", 0, 7, None)
    assert letter["payload"] == payload and letter["reason"] == "bad magic"
    assert LETTERS.decode(LETTERS.encode(letter)) == {**letter, "source_topic": "reco.user-events.v1"}
