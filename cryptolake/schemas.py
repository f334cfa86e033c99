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
from pydantic_core import ErrorDetails, PydanticCustomError

from cryptolake import topics
from cryptolake.bars import MALFORMED, PROBLEM_REASONS, candle_problems, problem_field
from cryptolake.errors import DataValidationError
from cryptolake.ids import signal_id
from cryptolake.types import TIMEFRAME_MS

MAX_NAME_CHARS = 64  # an exchange or symbol name longer than this is garbage, not a market


def _name(v: str) -> str:
    """A non-empty exchange or symbol name of at most MAX_NAME_CHARS characters."""
    if not v.strip():
        raise ValueError("must not be empty")
    if len(v) > MAX_NAME_CHARS:
        raise ValueError(f"longer than {MAX_NAME_CHARS} characters")
    return v


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
    """One candle. ``event_time`` = open time, ``available_time`` = close time.

    Prices and volume are checked with the one candle rule (:mod:`cryptolake.bars`): a malformed
    candle (a non-finite number) is refused; an inconsistent one (high < low, ...) is a faithful
    record of a bad print and passes, for silver to flag.
    """

    TOPIC: ClassVar[str] = topics.MARKET_OHLCV
    exchange: str
    symbol: str
    timeframe: str
    open: float
    high: float
    low: float
    close: float
    volume: float

    @field_validator("exchange", "symbol")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        return _name(v)

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

    @model_validator(mode="after")
    def _not_malformed(self) -> OhlcvV1:
        ohlcv = (self.open, self.high, self.low, self.close, self.volume)
        malformed = [p for p in candle_problems(*ohlcv) if p in MALFORMED]
        if malformed:
            name, value = problem_field(malformed[0], *ohlcv)
            # A model-level error has no location: the field travels in the context (see error_detail).
            raise PydanticCustomError(
                "candle_malformed", "{problem}: {reason}",
                {"field": name, "value": value, "problem": malformed[0], "reason": PROBLEM_REASONS[malformed[0]]},
            )
        return self

    def key(self) -> str:
        return topics.market_key(self.exchange, self.symbol)


class SignalV1(Message):
    """A model's view of the next bar. ``event_time`` = bar open time; ``available_time`` = when scored.

    Wire version 2 added ``signal_id`` (:func:`cryptolake.ids.signal_id` of the model version and
    the bar key), so a re-published signal is recognisably the same one; a version-1 payload has no
    id and is refused naming ``schema_version``. The class keeps its name: it is the signal contract.
    """

    TOPIC: ClassVar[str] = topics.SIGNALS
    SCHEMA_VERSION: ClassVar[int] = 2
    signal_id: str
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

    @model_validator(mode="after")
    def _id_of_model_and_bar(self) -> SignalV1:
        expected = signal_id(self.model_version, self.exchange, self.symbol, self.timeframe, self.event_time)
        if self.signal_id != expected:
            raise ValueError(f"signal_id must be {expected}, the id of model_version and the bar key")
        return self

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
        raise DataValidationError(*error_detail(exc.errors()[0])) from exc


def error_detail(err: ErrorDetails) -> tuple[str, Any, str]:
    """``(field, value, reason)`` of one pydantic error, for :class:`DataValidationError`.

    A model-level check names its field in the error's context (pydantic gives it no location).
    """
    ctx = err.get("ctx") or {}
    if "field" in ctx:
        return str(ctx["field"]), ctx.get("value"), err.get("msg", "invalid")
    field = ".".join(str(p) for p in err.get("loc", ())) or "payload"
    # A missing field's "input" is the whole payload: the value of a missing field is None.
    value = None if err.get("type") == "missing" else err.get("input")
    return field, value, err.get("msg", "invalid")


def validate_for_topic(topic: str, payload: Any) -> Message:
    """Validate ``payload`` against the schema registered for ``topic``."""
    try:
        model = SCHEMAS[topic]
    except KeyError as exc:
        raise DataValidationError("topic", topic, "no schema registered for this topic") from exc
    return validate(model, payload)


# --- alternative data (issue #5): news, social, macro, chain ---------------------------
def _non_blank(name: str, v: str) -> str:
    if not v or not v.strip():
        raise ValueError(f"{name} must not be empty")
    return v


def _not_before_event(msg: Message) -> None:
    if msg.available_time < msg.event_time:
        raise ValueError("available_time must not be before event_time")


class NewsArticleV1(Message):
    """A news article or headline. ``event_time`` = publication, ``available_time`` = when it was public."""

    TOPIC: ClassVar[str] = topics.NEWS_ARTICLES
    source: str  # "newsapi", "gdelt", "rss:<feed>", "replay:cryptonews" ...
    doc_id: str
    url: str
    title: str
    body: str = ""
    author: str | None = None
    language: str | None = None
    subject: str | None = None
    provider_sentiment: float | None = None  # a source's own (machine-made) score, kept for sanity checks

    @field_validator("source", "doc_id")
    @classmethod
    def _ids(cls, v: str) -> str:
        return _non_blank("id", v)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        return v

    @model_validator(mode="after")
    def _has_text(self) -> NewsArticleV1:
        if not (self.title.strip() or self.body.strip()):
            raise ValueError("an article needs a title or a body")
        _not_before_event(self)
        return self

    def key(self) -> str:
        return f"{self.source}:{self.doc_id}"


class SocialPostV1(Message):
    """A social post, comment or channel message with its engagement counters (None = not reported)."""

    TOPIC: ClassVar[str] = topics.SOCIAL_POSTS
    platform: Literal["reddit", "x", "telegram", "discord"]
    post_id: str
    kind: Literal["post", "comment", "tweet", "message"]
    channel: str  # subreddit, telegram/discord channel id, or the search query for X
    author: str | None = None
    author_followers: int | None = None
    text: str
    url: str | None = None
    parent_id: str | None = None
    score: int | None = None  # upvotes / likes / reactions
    replies: int | None = None
    reposts: int | None = None
    views: int | None = None
    language: str | None = None
    provider_sentiment: float | None = None

    @field_validator("post_id", "channel")
    @classmethod
    def _ids(cls, v: str) -> str:
        return _non_blank("id", v)

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _non_blank("text", v)

    @model_validator(mode="after")
    def _times(self) -> SocialPostV1:
        _not_before_event(self)
        return self

    def key(self) -> str:
        return f"{self.platform}:{self.post_id}"


class MacroObservationV1(Message):
    """One macro series observation (FRED). ``available_time`` = the vintage's realtime_start."""

    TOPIC: ClassVar[str] = topics.MACRO_OBSERVATIONS
    source: str
    series_id: str
    date: str  # observation date, YYYY-MM-DD
    value: float | None  # None = the source reports the value as missing (FRED ".")

    @field_validator("series_id")
    @classmethod
    def _series(cls, v: str) -> str:
        return _non_blank("series_id", v)

    @field_validator("value")
    @classmethod
    def _finite_value(cls, v: float | None) -> float | None:
        return None if v is None else _finite("value", v)

    def key(self) -> str:
        return f"{self.source}:{self.series_id}:{self.date}"


def _hex_address(name: str, v: str | None, *, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v.startswith("0x") or len(v) != 42:
        raise ValueError(f"{name} must be a 0x-prefixed 20-byte hex address")
    int(v, 16)
    return v.lower()


def _decimal_string(name: str, v: str) -> str:
    if not v.isdigit():
        raise ValueError(f"{name} must be a non-negative decimal integer string")
    return v


class ChainTx(BaseModel):
    """A transaction inside a block message (values as decimal strings: they exceed int64)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    hash: str
    from_address: str
    to_address: str | None
    value: str  # wei
    gas: int
    gas_price: int

    @field_validator("from_address")
    @classmethod
    def _from(cls, v: str) -> str:
        return _hex_address("from_address", v) or v

    @field_validator("to_address")
    @classmethod
    def _to(cls, v: str | None) -> str | None:
        return _hex_address("to_address", v, optional=True)

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        return _decimal_string("value", v)


class ChainBlockV1(Message):
    """One block with its transactions. ``event_time`` = ``available_time`` = block timestamp."""

    TOPIC: ClassVar[str] = topics.CHAIN_BLOCKS
    chain: str
    number: int
    hash: str
    parent_hash: str
    miner: str
    gas_used: int
    gas_limit: int
    base_fee_per_gas: int | None = None
    tx_count: int
    transactions: tuple[ChainTx, ...]

    @model_validator(mode="after")
    def _consistent(self) -> ChainBlockV1:
        if self.tx_count != len(self.transactions):
            raise ValueError(f"tx_count {self.tx_count} != {len(self.transactions)} transactions")
        if self.gas_used > self.gas_limit:
            raise ValueError("gas_used exceeds gas_limit")
        _not_before_event(self)
        return self

    def key(self) -> str:
        return f"{self.chain}:{self.number}"


class ChainTransferV1(Message):
    """A value transfer: native (``token_address`` = "native", ``log_index`` = -1) or an ERC-20 Transfer log."""

    TOPIC: ClassVar[str] = topics.CHAIN_TRANSFERS
    chain: str
    token_address: str
    tx_hash: str
    log_index: int
    block_number: int
    from_address: str
    to_address: str
    value: str  # raw integer units (wei or token base units)

    @field_validator("from_address", "to_address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return _hex_address("address", v) or v

    @field_validator("token_address")
    @classmethod
    def _token(cls, v: str) -> str:
        return v if v == "native" else (_hex_address("token_address", v) or v)

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        return _decimal_string("value", v)

    def key(self) -> str:
        return f"{self.chain}:{self.tx_hash}:{self.log_index}"


class ChainDailyStatV1(Message):
    """A daily network statistic (explorer charts). Knowable only once the UTC day has closed."""

    TOPIC: ClassVar[str] = topics.CHAIN_DAILY_STATS
    chain: str
    source: str
    metric: str  # tx_count, avg_gas_price_wei, gas_used, gas_limit, ether_price_usd
    day: str  # YYYY-MM-DD
    value: float

    @field_validator("value")
    @classmethod
    def _finite_value(cls, v: float) -> float:
        return _finite("value", v)

    @model_validator(mode="after")
    def _day_closed(self) -> ChainDailyStatV1:
        if self.available_time < self.event_time + 86_400_000:
            raise ValueError("a daily statistic is available only after its day closes")
        return self

    def key(self) -> str:
        return f"{self.chain}:{self.metric}:{self.day}"


for _alt in (NewsArticleV1, SocialPostV1, MacroObservationV1, ChainBlockV1, ChainTransferV1, ChainDailyStatV1):
    register_schema(_alt)


# --- market data from exchange connectors (owned by ingest/exchange) -------------------------
class _MarketMessage(Message):
    """Market payloads keyed ``exchange:symbol``; exchange and symbol must be non-empty."""

    exchange: str
    symbol: str

    @field_validator("exchange", "symbol")
    @classmethod
    def _market_non_empty(cls, v: str) -> str:
        return _name(v)

    def key(self) -> str:
        return topics.market_key(self.exchange, self.symbol)


class TradeV1(_MarketMessage):
    """One public trade. ``event_time`` = trade time; ``available_time`` = when the venue published it."""

    TOPIC: ClassVar[str] = topics.MARKET_TRADES
    trade_id: str
    price: float
    amount: float
    side: Literal["buy", "sell"] | None = None
    source: Literal["ws", "rest"] = "ws"

    @field_validator("price", "amount")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError("must be a positive finite number")
        return v


class BookMetricsV1(_MarketMessage):
    """Order-book metrics at the end of an interval (``event_time`` = interval end)."""

    TOPIC: ClassVar[str] = topics.MARKET_BOOK
    last_update_id: int
    best_bid: float
    best_ask: float
    mid: float
    spread: float
    spread_bps: float
    microprice: float
    depth_bid: dict[str, float]
    depth_ask: dict[str, float]
    imbalance: dict[str, float]
    updates: int
    resyncs: int

    @model_validator(mode="after")
    def _not_crossed(self) -> BookMetricsV1:
        if not (math.isfinite(self.best_bid) and math.isfinite(self.best_ask)) or self.best_bid >= self.best_ask:
            raise ValueError("best_bid must be below best_ask (a crossed book is never published)")
        return self


class TickerV1(_MarketMessage):
    """Best bid/ask and last price of a venue."""

    TOPIC: ClassVar[str] = topics.MARKET_TICKER
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    base_volume: float | None = None


class VenueFlagV1(_MarketMessage):
    """Cross-venue validation of one venue in one interval."""

    TOPIC: ClassVar[str] = topics.MARKET_VENUE_FLAGS
    price: float
    median: float | None
    deviation_bps: float | None
    deviates: bool
    stale: bool
    threshold_bps: float


class WhaleTradeV1(_MarketMessage):
    """A trade whose notional exceeded the whale threshold."""

    TOPIC: ClassVar[str] = topics.MARKET_WHALES
    trade_id: str
    price: float
    amount: float
    notional: float
    threshold: float
    side: Literal["buy", "sell"] | None = None


for _market in (TradeV1, BookMetricsV1, TickerV1, VenueFlagV1, WhaleTradeV1):
    register_schema(_market)
