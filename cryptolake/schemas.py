"""Versioned message schemas: validated on produce and again on landing.

Every payload carries ``schema_version`` and the three UTC times of ARCHITECTURE.md as
epoch milliseconds: ``event_time`` (when it happened), ``available_time`` (when it became
knowable) and ``ingest_time`` (when we received it). A record that fails validation raises
:class:`~cryptolake.errors.DataValidationError` naming the field and value; producers send it
to the dead-letter topic with that reason.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.types import TIMEFRAME_MS


class Message(BaseModel):
    """Base of every Kafka payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TOPIC: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    schema_version: int
    event_time: int
    available_time: int
    ingest_time: int

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != cls.SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version, expected {cls.SCHEMA_VERSION}")
        return v

    @field_validator("event_time", "available_time", "ingest_time")
    @classmethod
    def _plausible_epoch_ms(cls, v: int) -> int:
        # 2009-01-01 .. 2100-01-01 in ms: catches seconds-vs-ms mix-ups.
        if not 1_230_768_000_000 <= v <= 4_102_444_800_000:
            raise ValueError("not an epoch-milliseconds time between 2009 and 2100")
        return v

    def key(self) -> str:
        """The Kafka message key."""
        raise NotImplementedError


def _finite(name: str, v: float) -> float:
    if v is None or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number")
    return v


class OhlcvV1(Message):
    """One candle. ``event_time`` = open time, ``available_time`` = close time."""

    TOPIC: ClassVar[str] = topics.MARKET_OHLCV
    exchange: str
    symbol: str
    timeframe: str
    open: float
    high: float
    low: float
    close: float
    volume: float

    @field_validator("open", "high", "low", "close", "volume")
    @classmethod
    def _finite_numbers(cls, v: float) -> float:
        return _finite("price/volume", v)

    @field_validator("exchange", "symbol")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, v: str) -> str:
        if v not in TIMEFRAME_MS:
            raise ValueError(f"unknown timeframe, expected one of {sorted(TIMEFRAME_MS)}")
        return v

    @model_validator(mode="after")
    def _close_after_open(self) -> OhlcvV1:
        if self.available_time != self.event_time + TIMEFRAME_MS[self.timeframe]:
            raise ValueError("available_time must equal event_time + timeframe (the candle's close)")
        return self

    def key(self) -> str:
        return topics.market_key(self.exchange, self.symbol)


class SignalV1(Message):
    """A model's view of the next bar. ``event_time`` = bar open time; ``available_time`` = when scored."""

    TOPIC: ClassVar[str] = topics.SIGNALS
    exchange: str
    symbol: str
    timeframe: str
    probability: float
    direction: Literal[-1, 0, 1]
    model_version: str

    @field_validator("probability")
    @classmethod
    def _probability(cls, v: float) -> float:
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError("probability must be in [0, 1]")
        return v

    def key(self) -> str:
        return topics.market_key(self.exchange, self.symbol)


SCHEMAS: dict[str, type[Message]] = {OhlcvV1.TOPIC: OhlcvV1, SignalV1.TOPIC: SignalV1}


def register_schema(model: type[Message]) -> type[Message]:
    """Register a message model for its topic (class decorator for other packages' schemas)."""
    SCHEMAS[model.TOPIC] = model
    return model


def validate(model: type[Message], payload: Any) -> Message:
    """Parse ``payload`` (a dict) as ``model`` or raise DataValidationError naming the first bad field."""
    if not isinstance(payload, dict):
        raise DataValidationError("payload", payload, "must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "payload"
        value = err.get("input")
        raise DataValidationError(field, value, err.get("msg", "invalid")) from exc


def validate_for_topic(topic: str, payload: Any) -> Message:
    """Validate ``payload`` against the schema registered for ``topic``."""
    try:
        model = SCHEMAS[topic]
    except KeyError as exc:
        raise DataValidationError("topic", topic, "no schema registered for this topic") from exc
    return validate(model, payload)
