"""The figures of bench/e2e.py: drains (over the whole measured drain, whatever its bursts)
and freshness quantiles."""

from bench.e2e import _quantiles, bursts, drain_rate, history_length, published_item_lists
from flink_jobs import contracts
from flink_jobs.config import JobConfig
from reco_tools.synth import Synth, SynthConfig


def test_the_drain_rate_counts_from_the_job_running_to_the_last_list():
    # 6 lists in two bursts, the last 4 s after the job ran: 1.5 lists/s, however the
    # bursts fall within that span
    times = [1.0, 1.0, 1.1, 3.9, 4.0, 4.0]
    assert drain_rate(0.0, times) == 1.5
    assert bursts(times) == 2


def test_arrivals_less_than_a_second_apart_are_one_burst():
    assert bursts([]) == 0
    assert bursts([5.0, 5.9, 6.8, 7.7]) == 1
    assert bursts([7.7, 5.0, 5.5, 9.0]) == 3   # unsorted: 5.0-5.5, 7.7 and 9.0


def test_the_history_runs_past_the_first_bucket_end_and_its_lateness_then_a_margin():
    # buckets of 1 s from the epoch: the first event's bucket ends at 11,000 ms, and the item
    # side's lists come once the watermark (100 ms behind) has passed it: at an event of 11,100
    cfg = JobConfig(bucket_ms=1_000, max_out_of_orderness_ms=100)
    events = [{"event_time": t} for t in (10_500, 10_800, 11_050, 11_100, 11_300, 12_000)]
    assert history_length(events, cfg, margin=0) == 3
    assert history_length(events, cfg, margin=2) == 5



# a synthetic stream that starts ten minutes before an hour's end: its first bucket ends
# after about 2,300 events
HOUR = 3_600_000
TEN_TO = 1_700_000_000_000 // HOUR * HOUR + HOUR - 600_000


def _first_bucket(events, cfg=JobConfig()):
    first = events[0]["event_time"]
    return first - first % cfg.bucket_ms + cfg.bucket_ms


def test_no_neighbor_list_is_awaited_before_the_first_bucket_end():
    # the job's watermark stays where its input stops: no bucket has ended, so only the
    # trending key may be waited for (an end of input would end every bucket)
    synth = Synth(SynthConfig(events=4_000, users=200, items=1_000, seed=3, start_ms=TEN_TO))
    events = list(synth.events())
    before = [e for e in events if e["event_time"] < _first_bucket(events)]
    assert published_item_lists(synth, before) == [contracts.TRENDING_KEY]


def test_the_awaited_neighbor_lists_are_of_items_consumed_before_the_first_bucket_end():
    synth = Synth(SynthConfig(events=4_000, users=200, items=1_000, seed=3, start_ms=TEN_TO))
    events = list(synth.events())
    history = history_length(events, margin=200)
    keys = published_item_lists(synth, events[:history])
    consumed = {contracts.item_similar_key(e["item_id"]) for e in events if e["event_time"] < _first_bucket(events)}
    assert keys[0] == contracts.TRENDING_KEY and len(keys) > 1
    assert set(keys[1:]) <= consumed


def test_freshness_quantiles_are_of_the_latencies_given_in_ms():
    latencies = [i / 1000 for i in range(100, 0, -1)]   # 1..100 ms, in no order
    q = _quantiles(latencies)
    assert (q(0.0), q(0.5), q(0.99), q(1.0)) == (1.0, 51.0, 100.0, 100.0)
    assert _quantiles([])(0.99) is None
