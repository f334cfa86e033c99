"""The Kafka boundary: one producer and one consumer factory for every process.

Producers are idempotent with ``acks=all``; every payload is validated against its topic's
schema before it is sent, and a record that fails goes to ``dlq.<topic>`` with the reason
(nothing is skipped silently). kafka-python errors are translated into cryptolake errors.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptolake import topics
from cryptolake.errors import BrokerUnavailableError, DataValidationError, InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.schemas import Message, validate_for_topic
from cryptolake.settings import Settings, get_settings

if TYPE_CHECKING:
    from kafka.admin import KafkaAdminClient

log = get_logger(__name__)


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
    """A kafka-python error as a cryptolake error: broker trouble is retryable, the rest is not."""
    from kafka import errors as kerr

    if isinstance(exc, kerr.NoBrokersAvailable | kerr.KafkaTimeoutError | kerr.KafkaConnectionError):
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


@dataclass
class ProduceStats:
    """What a producer did: sent per topic, dead-lettered per topic with reasons."""

    sent: dict[str, int] = field(default_factory=dict)
    dead_lettered: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


class Producer:
    """Validated, idempotent producer. Use as a context manager; ``flush`` before trusting stats."""

    def __init__(self, settings: Settings | None = None, *, client_id: str = "cryptolake",
                 linger_ms: int = 20, **overrides: Any) -> None:
        from kafka import KafkaProducer

        self.settings = settings or get_settings()
        self.stats = ProduceStats()
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap_servers(self.settings),
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=linger_ms,
                batch_size=256 * 1024,
                compression_type=None,
                key_serializer=lambda k: k.encode("utf-8"),
                value_serializer=lambda v: v if isinstance(v, bytes) else v.encode("utf-8"),
                **overrides,
            )
        except Exception as exc:
            raise translate_kafka_error(exc, "kafka producer connect") from exc

    def send_message(self, msg: Message) -> None:
        """Send an already validated message to its topic."""
        self._send(msg.TOPIC, msg.key(), msg.model_dump_json())

    def send(self, topic: str, payload: Mapping[str, Any], key: str) -> bool:
        """Validate ``payload`` for ``topic`` and send it; on failure dead-letter it. True if sent."""
        try:
            msg = validate_for_topic(topic, dict(payload))
        except DataValidationError as exc:
            self.dead_letter(topic, key, json.dumps(payload, default=str), str(exc))
            return False
        self._send(topic, key, msg.model_dump_json())
        return True

    def send_raw(self, topic: str, key: str, value: str | bytes) -> None:
        """Send bytes without validation (used by tests and by replaying raw captures)."""
        self._send(topic, key, value)

    def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None:
        """Send a rejected record to ``dlq.<topic>`` wrapped with its reason."""
        envelope = json.dumps({"topic": topic, "key": key, "reason": reason, "payload": raw})
        self._producer.send(topics.dlq(topic), key=key, value=envelope)
        self.stats.dead_lettered[topic] = self.stats.dead_lettered.get(topic, 0) + 1
        short = reason.split(":")[0]
        self.stats.reasons[short] = self.stats.reasons.get(short, 0) + 1
        log.warning("kafka.dead_letter", extra={"topic": topic, "key": key, "reason": reason})

    def _send(self, topic: str, key: str, value: str | bytes) -> None:
        try:
            self._producer.send(topic, key=key, value=value)
        except Exception as exc:
            raise translate_kafka_error(exc, f"send to {topic}") from exc
        self.stats.sent[topic] = self.stats.sent.get(topic, 0) + 1

    def flush(self, timeout: float = 60.0) -> None:
        try:
            self._producer.flush(timeout=timeout)
        except Exception as exc:
            raise translate_kafka_error(exc, "flush") from exc

    def close(self) -> None:
        self._producer.close(timeout=30)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.flush()
        finally:
            self.close()


def consumer(*topic_names: str, group_id: str | None, settings: Settings | None = None, **overrides: Any) -> Any:
    """A KafkaConsumer reading JSON values from the start (``auto_offset_reset=earliest``)."""
    from kafka import KafkaConsumer

    settings = settings or get_settings()
    try:
        return KafkaConsumer(
            *topic_names,
            bootstrap_servers=bootstrap_servers(settings),
            group_id=group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            key_deserializer=lambda k: k.decode("utf-8") if k else None,
            value_deserializer=lambda v: v.decode("utf-8"),
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
