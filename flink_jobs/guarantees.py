"""What exactly-once needs from Flink, set by the job itself so that a cluster left at its
defaults gives it too, and the check that refuses to start where it cannot hold.

The job's own options override the cluster's (config.yaml) for this job only: checkpoints
in EXACTLY_ONCE mode and aligned (unaligned ones lost bucket sums after a TaskManager kill,
bench/RESULTS.md "Exactly-once: chaos runs"), the state backend (RocksDB with incremental
checkpoints by default), checkpoints kept on cancel (so a job can resume from its last one),
and bounded restarts.
"""

from __future__ import annotations

from flink_jobs.config import JobConfig

RETAINED_CHECKPOINTS = 3


def flink_options(cfg: JobConfig, checkpoint_dir: str | None) -> dict[str, str]:
    """The Flink options the job sets; ``checkpoint_dir``: where checkpoints go (None: the
    cluster's execution.checkpointing.dir stays in force)."""
    options = {
        "execution.checkpointing.interval": f"{cfg.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.timeout": f"{cfg.checkpoint_timeout_ms} ms",
        "execution.checkpointing.unaligned.enabled": "false",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": str(RETAINED_CHECKPOINTS),
        "state.backend.type": cfg.state_backend,
        "execution.checkpointing.incremental": str(cfg.state_backend == "rocksdb").lower(),
        # Bounded restarts: a failure that every restart replays (a record no retry gets
        # through) ends in a failed job with the cause, not a loop. The backoff starts over
        # after an hour without failure, so rare failures over a long life are all retried.
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1 s",
        "restart-strategy.exponential-delay.max-backoff": f"{cfg.restart_backoff_max_ms} ms",
        "restart-strategy.exponential-delay.attempts-before-reset-backoff": str(cfg.restart_attempts),
        "restart-strategy.exponential-delay.reset-backoff-threshold": "1 h",
    }
    if checkpoint_dir:
        options["execution.checkpointing.dir"] = checkpoint_dir
    return options


def problems(cfg: JobConfig, checkpoint_dir: str | None, on_cluster: bool,
             broker_transaction_max_ms: int | None) -> list[str]:
    """Why exactly-once cannot hold with these settings ([] when it can).
    ``checkpoint_dir``: the one in force (the job's or the cluster's); ``on_cluster``: submitted
    with flink run, not on a local mini-cluster; ``broker_transaction_max_ms``: the brokers'
    transaction.max.timeout.ms (None: unknown)."""
    found = []
    if on_cluster and not checkpoint_dir:
        found.append("no checkpoint directory: neither checkpoint_dir nor the cluster's execution.checkpointing.dir "
                     "is set, so checkpoints live in the JobManager's memory and a resume after its loss (or a "
                     "cancel) starts over; set checkpoint_dir (RECO_CHECKPOINT_DIR) to a URI every Flink process "
                     "reaches, e.g. s3://bucket/reco/checkpoints or file:///shared/reco/checkpoints")
    if broker_transaction_max_ms is not None and cfg.transaction_timeout_ms > broker_transaction_max_ms:
        found.append(f"transaction_timeout_ms ({cfg.transaction_timeout_ms}) is above the brokers' "
                     f"transaction.max.timeout.ms ({broker_transaction_max_ms}): the sinks could not start their "
                     f"transactions; lower transaction_timeout_ms or raise the brokers' limit")
    return found


def summary(cfg: JobConfig, checkpoint_dir: str | None, broker_transaction_max_ms: int | None) -> str:
    """One line for the log: the effective guarantees."""
    return (f"exactly-once: {cfg.delivery_guarantee} Kafka sinks, {cfg.redis_write} Redis writes; checkpoints every "
            f"{cfg.checkpoint_interval_ms} ms (EXACTLY_ONCE, aligned, timeout {cfg.checkpoint_timeout_ms} ms) to "
            f"{checkpoint_dir or 'the JobManager memory'}, {RETAINED_CHECKPOINTS} retained on cancel; state "
            f"{cfg.state_backend}{' (incremental)' if cfg.state_backend == 'rocksdb' else ''}; up to "
            f"{cfg.restart_attempts} restarts, backoff to {cfg.restart_backoff_max_ms} ms; Kafka transactions time "
            f"out after {cfg.transaction_timeout_ms} ms (brokers allow "
            f"{broker_transaction_max_ms if broker_transaction_max_ms is not None else 'an unknown maximum'})")
