"""The one way to wait for an outcome: poll for evidence, fail with what was awaited."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """What was awaited never came (an AssertionError, so a test reports it as a failure)."""


def wait_for(predicate: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.3) -> T:
    """The first truthy value of ``predicate()``, polled every ``poll_s`` seconds; raises
    WaitTimeout naming ``what`` after ``timeout_s``. ``predicate`` may raise to give up early
    (a process it depends on exited, say)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)
