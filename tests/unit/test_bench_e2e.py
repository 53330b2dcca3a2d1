"""The drain figures of bench/e2e.py: over the whole drain, whatever its bursts."""

from bench.e2e import bursts, drain_rate


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
