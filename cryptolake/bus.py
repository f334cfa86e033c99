"""The Kafka boundary: one producer and one consumer factory for every process.

Producers are idempotent with ``acks=all``; every payload is validated against its topic's
schema before it is sent, and a record that fails goes to ``dlq.<topic>`` with the reason
(nothing is skipped silently). kafka-python errors are translated into cryptolake errors.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka.serializer import Deserializer as _Deserializer

from cryptolake import topics
from cryptolake.errors import BrokerUnavailableError, DataValidationError, InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.schemas import Message, validate_for_topic
from cryptolake.settings import Settings, get_settings

if TYPE_CHECKING:
    from kafka.admin import KafkaAdminClient

log = get_logger(__name__)
_RD_LOG = get_logger("confluent_kafka")  # librdkafka's own log lines, through our JSON logging


def broker_state_file(settings: Settings | None = None) -> Path:
    """Where ``infra.broker`` records the local broker's address and pid."""
    return (settings or get_settings()).paths.kafka_dir / "broker.json"


def bootstrap_servers(settings: Settings | None = None) -> str:
    """Configured bootstrap servers, else the running local broker's, else a clear error."""
    settings = settings or get_settings()
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    state = broker_state_file(settings)
    if state.exists():
        return str(json.loads(state.read_text())["bootstrap"])
    raise InfrastructureError("no Kafka broker: run `cryptolake stack up` or set CRYPTOLAKE__KAFKA__BOOTSTRAP_SERVERS")


def translate_kafka_error(exc: Exception, what: str) -> Exception:
    """A kafka-python or librdkafka error as a cryptolake error: broker trouble is retryable, the rest is not."""
    from confluent_kafka import KafkaException
    from kafka import errors as kerr

    if isinstance(exc, KafkaException):
        err = exc.args[0] if exc.args else None
        retriable = bool(getattr(err, "retriable", lambda: False)())
        return (BrokerUnavailableError if retriable else InfrastructureError)(f"{what}: {exc}")

    # kafka-python 3 dropped NoBrokersAvailable (a failed bootstrap is a KafkaConnectionError now).
    unavailable = tuple(getattr(kerr, n) for n in ("NoBrokersAvailable", "KafkaTimeoutError", "KafkaConnectionError",
                                                    "MetadataEmptyBrokerList") if hasattr(kerr, n))
    if isinstance(exc, unavailable):
        return BrokerUnavailableError(f"{what}: {exc}")
    if isinstance(exc, kerr.KafkaError) and getattr(exc, "retriable", False):
        return BrokerUnavailableError(f"{what}: {exc}")
    return InfrastructureError(f"{what}: {exc}")


def ensure_topics(names: Iterable[str], settings: Settings | None = None, partitions: int | None = None) -> None:
    """Create topics (and their dead-letter topics) that do not exist yet."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    settings = settings or get_settings()
    wanted: list[str] = []
    for name in names:
        wanted += [name] if name.startswith("dlq.") else [name, topics.dlq(name)]
    with _admin(settings) as admin:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(wanted) if t not in existing]
        if missing:
            n = partitions or settings.kafka.default_partitions
            rf, configs = topics.replication(settings)
            # Another process may create the same topic between list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=rf, topic_configs=configs)
                                     for t in missing])
            log.info("kafka.topics_created", extra={"topics": missing, "partitions": n})


@contextlib.contextmanager
def _admin(settings: Settings) -> Iterator[KafkaAdminClient]:
    """A connected Kafka admin client, closed on exit; a failed connect is translated."""
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(settings), client_id="cryptolake-admin")
    except Exception as exc:
        raise translate_kafka_error(exc, "kafka admin connect") from exc
    try:
        yield admin
    finally:
        admin.close()


def cluster_id(settings: Settings | None = None) -> str:
    """The Kafka cluster's id: offsets mean something only within one cluster."""
    settings = settings or get_settings()
    with _admin(settings) as admin:
        try:
            return str(admin.describe_cluster()["cluster_id"])
        except Exception as exc:
            raise translate_kafka_error(exc, "kafka describe cluster") from exc


@dataclass
class ProduceStats:
    """What a producer did: sent per topic, dead-lettered per topic with reasons."""

    sent: dict[str, int] = field(default_factory=dict)
    dead_lettered: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


class Producer:
    """Validated, idempotent producer. Use as a context manager; ``flush`` before trusting stats.

    librdkafka (confluent-kafka) does the wire work in C: a send is a pydantic validation plus a
    queue append, so validated produce runs near the broker's own perf tool. Keys are partitioned
    with Java's murmur2 (``murmur2_random``), the same partitions kafka-python and Spark pick.
    A delivery failure is counted by the delivery callback and raised by :meth:`flush`.
    """

    def __init__(self, settings: Settings | None = None, *, client_id: str = "cryptolake",
                 linger_ms: int = 20, **overrides: Any) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka import Producer as RdProducer

        self.settings = settings or get_settings()
        self.stats = ProduceStats()
        self.failed: dict[str, str] = {}  # topic -> last delivery error
        self._pending = 0
        self._kafka_exception = KafkaException
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers(self.settings),
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": linger_ms,
            "batch.size": 1024 * 1024,
            "compression.type": "none",
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
            "on_delivery": self._delivered,
            "logger": _RD_LOG,
            # kafka-python style keyword overrides (``linger_ms``) map onto librdkafka names.
            **{k.replace("_", "."): v for k, v in overrides.items()},
        }
        try:
            self._producer = RdProducer(conf)
        except KafkaException as exc:
            raise translate_kafka_error(exc, "kafka producer connect") from exc

    def send_message(self, msg: Message) -> None:
        """Send an already validated message to its topic."""
        self._send(msg.TOPIC, msg.key(), msg.model_dump_json())

    def send(self, topic: str, payload: Mapping[str, Any], key: str) -> bool:
        """Validate ``payload`` for ``topic`` and send it; on failure dead-letter it. True if sent."""
        try:
            msg = validate_for_topic(topic, payload if isinstance(payload, dict) else dict(payload))
        except DataValidationError as exc:
            self.dead_letter(topic, key, json.dumps(payload, default=str), str(exc))
            return False
        self._send(topic, key, msg.model_dump_json())
        return True

    def send_raw(self, topic: str, key: str, value: str | bytes,
                 on_delivery: Callable[[Any, Any], None] | None = None) -> None:
        """Send bytes without validation (tests, raw captures); ``on_delivery(err, msg)`` on the broker's ack."""
        self._send(topic, key, value, on_delivery)

    def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None:
        """Send a rejected record to ``dlq.<topic>`` wrapped with its reason."""
        envelope = json.dumps({"topic": topic, "key": key, "reason": reason, "payload": raw})
        self._send(topics.dlq(topic), key, envelope, count=False)
        self.stats.dead_lettered[topic] = self.stats.dead_lettered.get(topic, 0) + 1
        short = reason.split(":")[0]
        self.stats.reasons[short] = self.stats.reasons.get(short, 0) + 1
        log.warning("kafka.dead_letter", extra={"topic": topic, "key": key, "reason": reason})

    def _send(self, topic: str, key: str, value: str | bytes,
              on_delivery: Callable[[Any, Any], None] | None = None, *, count: bool = True) -> None:
        while True:
            try:
                if on_delivery is None:
                    self._producer.produce(topic, value, key)
                else:
                    self._producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports until there is room
                self._producer.poll(0.05)
            except self._kafka_exception as exc:
                raise translate_kafka_error(exc, f"send to {topic}") from exc
        self._pending += 1
        if on_delivery is not None or self._pending >= 10_000:  # serve acknowledgments
            self._pending = 0
            self._producer.poll(0)
        if count:
            self.stats.sent[topic] = self.stats.sent.get(topic, 0) + 1

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed[str(msg.topic())] = str(err)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for every queued record's acknowledgment; raise if any was not delivered."""
        left = self._producer.flush(timeout)
        if left:
            raise BrokerUnavailableError(f"flush: {left} records not acknowledged within {timeout:.0f} s")
        if self.failed:
            failed, self.failed = self.failed, {}
            raise InfrastructureError(f"delivery failed: {failed}")

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports (a long-running producer calls this between sends); returns how many."""
        return int(self._producer.poll(timeout))

    def buffered(self) -> int:
        """Records queued locally, not yet acknowledged by the broker (they wait out a broker outage)."""
        return len(self._producer)

    def close(self) -> None:
        """Release the client (librdkafka closes when the handle goes; queued records were flushed)."""
        self._producer.poll(0)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.flush()
        finally:
            self.close()


class _Utf8(_Deserializer):
    """UTF-8 bytes -> str (a real Deserializer: kafka-python warns about bare functions).

    ``empty_is_none``: an empty key is no key. ``errors="replace"``: invalid UTF-8 becomes U+FFFD
    (a validating consumer then rejects the payload naming it instead of failing the poll).
    """

    def __init__(self, empty_is_none: bool = False, errors: str = "strict") -> None:
        self.empty_is_none = empty_is_none
        self.errors = errors

    def deserialize(self, topic: str, headers: Any, data: bytes | None) -> str | None:
        if data is None or (self.empty_is_none and not data):
            return None
        return data.decode("utf-8", errors=self.errors)


def consumer(*topic_names: str, group_id: str | None, settings: Settings | None = None,
             invalid_utf8: str = "strict", **overrides: Any) -> Any:
    """A KafkaConsumer reading JSON values from the start (``auto_offset_reset=earliest``).

    ``invalid_utf8="replace"``: a value that is not UTF-8 arrives with U+FFFD (to be dead-lettered).
    """
    from kafka import KafkaConsumer

    settings = settings or get_settings()
    try:
        return KafkaConsumer(
            *topic_names,
            bootstrap_servers=bootstrap_servers(settings),
            group_id=group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            key_deserializer=_Utf8(empty_is_none=True),
            value_deserializer=_Utf8(errors=invalid_utf8),
            **overrides,
        )
    except Exception as exc:
        raise translate_kafka_error(exc, "kafka consumer connect") from exc


def delete_topics(names: Iterable[str], settings: Settings | None = None) -> list[str]:
    """Delete the topics that exist among ``names``; returns the ones deleted."""
    settings = settings or get_settings()
    with _admin(settings) as admin:
        existing = set(admin.list_topics())
        doomed = [n for n in dict.fromkeys(names) if n in existing]
        if doomed:
            admin.delete_topics(doomed)
            log.info("kafka.topics_deleted", extra={"topics": doomed})
        return doomed
