"""The drain figures of bench/e2e.py: over the whole measured drain, whatever its bursts."""

from bench.e2e import bursts, drain_rate, history_length
from flink_jobs.config import JobConfig


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

