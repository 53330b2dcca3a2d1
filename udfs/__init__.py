"""The recommendation math: pure functions on plain data, no engine, no I/O.

Everything here is deterministic given its inputs (event time, never wall time), so a
replay after a restore recomputes the same results. Operators in ``flink_jobs`` keep
these values in Flink state and call these functions.
"""
