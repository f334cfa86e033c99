"""The cryptolake error hierarchy.

Third-party errors (ccxt, py4j, Kafka, Delta, HTTP) are translated into these at the
boundary (``raise OurError(...) from e``). Only :class:`RetryableError` subclasses are
retried, and only by :func:`cryptolake.retry.retry`.
"""

from __future__ import annotations

from typing import Any


class CryptolakeError(Exception):
    """Base class of every error cryptolake raises on purpose."""


class RetryableError(CryptolakeError):
    """A transient failure: the same call may succeed later (network, rate limit, busy broker)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(CryptolakeError):
    """A failure a person must fix (bad config, bad credentials, invalid request)."""


# --- retryable -------------------------------------------------------------------------
class NetworkError(RetryableError):
    """The remote end could not be reached or timed out."""


class RateLimitedError(RetryableError):
    """The remote end asked us to slow down (HTTP 429, ccxt RateLimitExceeded)."""


class ServiceUnavailableError(RetryableError):
    """The remote end is up but not serving (HTTP 5xx, exchange maintenance)."""


class BrokerUnavailableError(RetryableError):
    """Kafka could not be reached or did not acknowledge in time."""


class CommitConflictError(RetryableError):
    """A concurrent Delta commit won; re-reading and retrying is safe."""


# --- fatal -----------------------------------------------------------------------------
class ConfigError(FatalError):
    """A setting is missing or invalid."""


class AuthenticationError(FatalError):
    """Credentials are missing, wrong or lack a permission."""


class DataValidationError(FatalError):
    """A record failed validation. Names the field, the offending value and why."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field}={value!r}: {reason}")


class SchemaMismatchError(FatalError):
    """A table or message does not have the schema its spec declares."""


class TableNotFoundError(FatalError):
    """A Delta table that must exist does not."""


class ModelNotFoundError(FatalError):
    """The model registry has no model for the version (or no champion for the time) asked for."""

    def __init__(self, version: str, reason: str) -> None:
        self.version = version
        self.reason = reason
        super().__init__(f"model {version!r}: {reason}")


class ExchangeError(FatalError):
    """The exchange rejected a request for a reason retrying will not fix."""


class InsufficientFundsError(ExchangeError):
    """The account cannot pay for the order."""


class OrderRejectedError(ExchangeError):
    """The order was refused (by the venue or by the risk engine)."""


class OrderNotFoundError(ExchangeError):
    """The venue does not know the order id."""


class InfrastructureError(FatalError):
    """A local component (JVM, broker, jars, Airflow DB) is missing or broken."""
