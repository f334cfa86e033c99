"""The Connector interface shared by every news, social and chain source.

A connector yields validated :class:`~cryptolake.schemas.Message` records, or
:class:`Rejected` items naming why a raw item could not become one. A live connector talks
to the documented HTTP API through :class:`HttpClient` (auth from the environment, a client
side rate limit, HTTP errors translated into :mod:`cryptolake.errors`, retryable ones retried
by :func:`cryptolake.retry.call_with_retry`); a replay connector reads stored files. Both
produce the same record types, so everything downstream is source-agnostic.

Sinks decide where records go: :class:`ListSink` keeps a quarantine list (unit tests),
:class:`ProducerSink` sends to Kafka and dead-letters rejects to ``dlq.<topic>`` with the reason.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests

from cryptolake.errors import (
    AuthenticationError,
    ConfigError,
    DataValidationError,
    FatalError,
    NetworkError,
    RateLimitedError,
    ServiceUnavailableError,
)
from cryptolake.logs import get_logger, register_secret
from cryptolake.retry import RetryPolicy, call_with_retry
from cryptolake.schemas import Message, validate
from cryptolake.settings import Settings
from cryptolake.types import to_ms

log = get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, UTC-aware (the default ingest clock; tests pass a fixed one)."""
    return datetime.now(tz=UTC)


def require_env(name: str, env: Mapping[str, str] | None = None) -> str:
    """Read a secret from the environment, register it for log redaction, fail fast if missing."""
    value = (env if env is not None else os.environ).get(name, "")
    if not value:
        raise ConfigError(f"environment variable {name} is not set (needed for this connector)")
    register_secret(value)
    return value


@dataclass(frozen=True)
class Rejected:
    """A raw item that could not become a valid record, with the reason (goes to dead-letter)."""

    topic: str
    key: str
    raw: str
    reason: str


Item = Message | Rejected


def make_record(
    model: type[Message],
    raw: Any,
    mapper: Callable[[Any], dict[str, Any]],
    key_hint: str,
) -> Item:
    """Map one raw API item to ``model``; a mapping or validation failure becomes :class:`Rejected`."""
    raw_text = json.dumps(raw, default=str)[:20_000]
    try:
        payload = mapper(raw)
    except DataValidationError as exc:
        return Rejected(model.TOPIC, key_hint, raw_text, str(exc))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Rejected(model.TOPIC, key_hint, raw_text, f"malformed item: {type(exc).__name__}: {exc}")
    try:
        return validate(model, payload)
    except DataValidationError as exc:
        return Rejected(model.TOPIC, key_hint, raw_text, str(exc))


class Sink(Protocol):
    """Where a connector's records go."""

    def accept(self, msg: Message) -> None: ...

    def reject(self, item: Rejected) -> None: ...


@dataclass
class ListSink:
    """Keeps accepted records and a quarantine list of rejects (for tests and dry runs)."""

    accepted: list[Message] = field(default_factory=list)
    quarantine: list[Rejected] = field(default_factory=list)

    def accept(self, msg: Message) -> None:
        self.accepted.append(msg)

    def reject(self, item: Rejected) -> None:
        self.quarantine.append(item)


class ProducerSink:
    """Sends records to their topic with :class:`cryptolake.bus.Producer`; rejects go to ``dlq.<topic>``."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer

    def accept(self, msg: Message) -> None:
        self.producer.send_message(msg)

    def reject(self, item: Rejected) -> None:
        self.producer.dead_letter(item.topic, item.key, item.raw, item.reason)


@dataclass
class RunStats:
    """What one connector run did."""

    accepted: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)


class Connector(ABC):
    """A client for one external source. Subclasses yield records; :meth:`run` routes them to a sink."""

    name: str = "connector"
    topic: str = ""

    @abstractmethod
    def items(self) -> Iterator[Item]:
        """Every record (or reject) for the configured interval, in source order."""

    def run(self, sink: Sink, *, progress_every: int = 1000) -> RunStats:
        """Route every item to ``sink``; logs progress every ``progress_every`` items."""
        stats = RunStats()
        for item in self.items():
            if isinstance(item, Rejected):
                sink.reject(item)
                stats.rejected += 1
                stats.reasons.append(item.reason)
            else:
                sink.accept(item)
                stats.accepted += 1
            done = stats.accepted + stats.rejected
            if done % progress_every == 0:
                log.info("connector.progress", extra={"connector": self.name, "items": done})
        log.info("connector.done", extra={"connector": self.name, "accepted": stats.accepted,
                                          "rejected": stats.rejected})
        return stats


def publish(connector: Connector, settings: Settings | None = None) -> RunStats:
    """Run ``connector`` into Kafka (creating its topic and dead-letter topic if needed)."""
    from cryptolake.bus import Producer, ensure_topics

    ensure_topics([connector.topic], settings)
    with Producer(settings, client_id=f"cryptolake-{connector.name}") as producer:
        return connector.run(ProducerSink(producer))


# --- HTTP ------------------------------------------------------------------------------
def parse_retry_after(headers: Mapping[str, str], body: Any, now: float) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date), x-rate-limit-reset/X-Ratelimit-Reset, or a JSON body."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-rate-limit-reset")  # X API: epoch seconds
    if reset and reset.replace(".", "", 1).isdigit():
        return max(0.0, float(reset) - now)
    reddit_reset = headers.get("X-Ratelimit-Reset") or headers.get("x-ratelimit-reset")  # Reddit: seconds
    if reddit_reset and reddit_reset.replace(".", "", 1).isdigit():
        return max(0.0, float(reddit_reset))
    if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):  # Discord
        return max(0.0, float(body["retry_after"]))
    return None


class HttpClient:
    """A rate-limited JSON/text HTTP client that translates failures into cryptolake errors and retries."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 20.0,
        min_interval: float = 0.0,
        policy: RetryPolicy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=60.0),
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout = timeout
        self.min_interval = min_interval
        self.policy = policy
        self.sleep = sleep
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": "cryptolake/0.1 (+https://github.com/cryptolake)"})
        if headers:
            self.session.headers.update(headers)
        self._last_call = 0.0
        self.calls = 0

    def _throttle(self) -> None:
        wait = self._last_call + self.min_interval - time.monotonic()
        if wait > 0:
            self.sleep(wait)
        self._last_call = time.monotonic()

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any,
              headers: Mapping[str, str] | None, data: Any, auth: Any,
              accept: tuple[int, ...] = ()) -> requests.Response:
        self._throttle()
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        self.calls += 1
        try:
            resp = self.session.request(method, url, params=params, json=json_body, headers=headers,
                                        data=data, auth=auth, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NetworkError(f"{self.name}: {method} {path}: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise FatalError(f"{self.name}: {method} {path}: {exc}") from exc
        status = resp.status_code
        if status < 400 or status in accept:
            return resp
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text[:300]
        detail = f"{self.name}: {method} {path} -> HTTP {status}: {str(body)[:300]}"
        if status == 429:
            raise RateLimitedError(detail, retry_after=parse_retry_after(resp.headers, body, time.time()))
        if status >= 500:
            raise ServiceUnavailableError(detail, retry_after=parse_retry_after(resp.headers, body, time.time()))
        if status in (401, 403):
            raise AuthenticationError(detail)
        raise FatalError(detail)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, headers: Mapping[str, str] | None = None,
                data: Any = None, auth: Any = None, accept: tuple[int, ...] = ()) -> requests.Response:
        """One HTTP call, throttled and retried on retryable errors; ``accept`` lists error statuses returned as-is."""
        return call_with_retry(
            lambda: self._once(method, path, params, json_body, headers, data, auth, accept),
            self.policy, what=f"{self.name} {method} {path}", sleep=self.sleep,
        )

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> Any:
        """GET and parse JSON; a non-JSON body is a :class:`DataValidationError` naming the body."""
        resp = self.request("GET", path, params=params, headers=headers)
        return parse_json(resp.text, self.name)

    def post_json(self, path: str, body: Any, *, headers: Mapping[str, str] | None = None) -> Any:
        """POST a JSON body and parse the JSON answer."""
        resp = self.request("POST", path, json_body=body, headers=headers)
        return parse_json(resp.text, self.name)


def parse_json(text: str, what: str) -> Any:
    """``json.loads`` with big integers kept exact, translated into DataValidationError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataValidationError(f"{what}.body", text[:200], f"not JSON: {exc.msg}") from exc


# --- time helpers ----------------------------------------------------------------------
def iso_to_ms(value: str) -> int:
    """ISO-8601 (with Z or an offset) -> epoch ms; a naive time is refused (we never guess zones)."""
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return to_ms(ts)


def epoch_s_to_ms(value: float | int | str) -> int:
    """Unix seconds (possibly a float or a string) -> epoch ms."""
    return round(float(value) * 1000)
