"""The one place where retryable failures are retried, with exponential back-off and jitter."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from cryptolake.errors import RetryableError
from cryptolake.logs import get_logger

P = ParamSpec("P")
T = TypeVar("T")
log = get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how slowly to retry. ``max_attempts`` counts the first call."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.1

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1``; a server's Retry-After wins if longer."""
        backoff = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        backoff *= 1 + random.uniform(0, self.jitter)
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return backoff


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy = RetryPolicy(),
    *,
    what: str = "call",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on :class:`RetryableError` wait and retry up to the policy; re-raise anything else."""
    attempt = 1
    while True:
        try:
            return fn()
        except RetryableError as exc:
            if attempt >= policy.max_attempts:
                log.error("retry.exhausted", extra={"what": what, "attempts": attempt, "error": str(exc)})
                raise
            wait = policy.delay(attempt, exc.retry_after)
            log.warning(
                "retry.scheduled",
                extra={"what": what, "attempt": attempt, "wait_s": round(wait, 3), "error": str(exc),
                       "error_type": type(exc).__name__},
            )
            sleep(wait)
            attempt += 1


def retry(
    policy: RetryPolicy = RetryPolicy(), *, what: str | None = None
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator form of :func:`call_with_retry`."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return call_with_retry(lambda: fn(*args, **kwargs), policy, what=what or fn.__qualname__)

        return wrapper

    return decorate
