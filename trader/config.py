"""Trader configuration.

* :class:`TraderSettings`: process settings read from the environment with the
  ``CRYPTOLAKE__TRADER__`` prefix (store URL, Kafka polling). Kept here rather than in
  ``cryptolake/settings.py`` so the trader owns its knobs.
* :class:`TraderConfig`: one trading run: one account (one cash balance) trading one or more
  symbols of one exchange (and, with ``venues``, of other exchanges), with the strategy, risk and
  paper-venue configs. Frozen and
  validated; the same object drives backtest and live. ``symbol="BTC/USD"`` is accepted as
  shorthand for ``symbols=("BTC/USD",)``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SerializeAsAny, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryptolake.settings import Settings, get_settings
from cryptolake.types import TIMEFRAME_MS
from trader.domain import Instrument
from trader.execution.paper import PaperConfig
from trader.risk import RiskConfig
from trader.strategies.threshold import ThresholdConfig
from trader.strategy import StrategyConfig


def _strategy_config(value: Any) -> StrategyConfig:
    from cryptolake.errors import ConfigError
    from trader.strategies.registry import parse_strategy_config

    try:
        return parse_strategy_config(value)
    except ConfigError as exc:  # as ValueError, pydantic reports it with the field's location
        raise ValueError(str(exc)) from exc


#: A strategy's own config, chosen by its ``kind``: an open discriminated union over the registry.
StrategySpec = Annotated[SerializeAsAny[StrategyConfig], BeforeValidator(_strategy_config)]


class TraderSettings(BaseSettings):
    """Environment-driven settings of trader processes (``CRYPTOLAKE__TRADER__<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="CRYPTOLAKE__TRADER__", frozen=True, extra="ignore")

    store_url: str = Field(
        default="", description="SQLAlchemy URL of the trading store; empty = SQLite under state_dir"
    )
    group_prefix: str = Field(default="cryptolake.trader", description="Kafka consumer group prefix (+ run id)")
    poll_timeout_ms: int = Field(default=500, ge=1, description="How long one Kafka poll waits")
    max_idle_s: float = Field(
        default=30.0, gt=0, description="Live trader stops after this many seconds without messages"
    )
    max_poll_records: int = Field(default=5000, ge=1, description="Records per Kafka poll (throughput)")
    seek_margin_s: float = Field(
        default=3600.0,
        ge=0,
        description="Seek this much before start_time (tolerates producer clock skew); payloads are filtered after",
    )

    def resolved_store_url(self, settings: Settings | None = None) -> str:
        """The store URL, defaulting to ``sqlite:///<state_dir>/trader/trader.db``."""
        if self.store_url:
            return self.store_url
        path = (settings or get_settings()).paths.state_dir / "trader" / "trader.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"


class InstrumentPrecision(BaseModel):
    """Venue precision of one symbol (decimals of price ticks and quantity lots)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price_decimals: int = Field(default=2, ge=0, le=12)
    qty_decimals: int = Field(default=6, ge=0, le=12)


class TraderConfig(BaseModel):
    """Everything one trading run needs besides its data: what, with how much, and under which rules.

    One account: one cash balance in ``quote_currency``, one position per instrument (``exchange:symbol``).
    ``venues`` adds other exchanges' symbols to the same account (one portfolio across venues; the
    risk engine's ``per_venue`` limits bound what each venue holds). Precision
    defaults to ``price_decimals`` / ``qty_decimals``; ``precision`` overrides it per symbol
    (e.g. XRP/USD trades at 0.2 USD and needs more than 2 price decimals).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(default="gymcrypto", min_length=1)
    symbols: tuple[str, ...] = Field(default=("BTC/USD",), min_length=1, description="Symbols traded by the account")
    timeframe: str = Field(default="30m", description="Bar timeframe, one of cryptolake.types.TIMEFRAME_MS")
    price_decimals: int = Field(default=2, ge=0, le=12)
    qty_decimals: int = Field(default=6, ge=0, le=12)
    venues: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Other exchanges traded by the same account: exchange -> its symbols")
    precision: dict[str, InstrumentPrecision] = Field(default_factory=dict, description="Per-symbol overrides")
    quote_currency: str = Field(default="USD", min_length=1)
    initial_cash: float = Field(default=10_000.0, gt=0)
    strategies: tuple[StrategySpec, ...] = Field(
        default=(ThresholdConfig(),), min_length=1, description="Strategies run by the node, each with its config"
    )
    risk: RiskConfig = RiskConfig()
    paper: PaperConfig = PaperConfig()
    max_flat_bars: int | None = Field(
        default=6, ge=1, description="A flat, zero-volume bar beyond this many in a run is stale: not traded"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        for one, many in (("symbol", "symbols"), ("strategy", "strategies")):
            if isinstance(data, dict) and one in data:
                if many in data:
                    raise ValueError(f"give either {one} or {many}, not both")
                data = {k: v for k, v in data.items() if k != one} | {many: (data[one],)}
        return data

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, v: str) -> str:
        if v not in TIMEFRAME_MS:
            raise ValueError(f"timeframe={v!r} unknown; expected one of {sorted(TIMEFRAME_MS)}")
        return v

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s.strip() for s in v):
            raise ValueError(f"symbols={v!r} contains an empty symbol")
        if len(set(v)) != len(v):
            raise ValueError(f"symbols={v!r} contains duplicates")
        return v

    @field_validator("venues")
    @classmethod
    def _venue_symbols(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for venue, symbols in v.items():
            if not venue.strip() or ":" in venue or not symbols or len(set(symbols)) != len(symbols):
                raise ValueError(f"venues[{venue!r}]={symbols!r}: a venue needs a name without ':' and "
                                 "unique symbols")
        return v

    @model_validator(mode="after")
    def _precision_keys(self) -> TraderConfig:
        if self.exchange in self.venues:
            raise ValueError(f"venues repeats the default exchange {self.exchange!r}: list its symbols in symbols")
        known = {s for i in self.instruments for s in (i.symbol, i.key)}
        unknown = sorted(set(self.precision) - known)
        if unknown:
            raise ValueError(f"precision given for symbols {unknown} that are not in symbols={list(self.symbols)}")
        for i, strat in enumerate(self.strategies):
            extra = sorted(set(strat.symbols or ()) - known)
            if extra:
                raise ValueError(f"strategies[{i}].symbols {extra} are not in symbols={list(self.symbols)} "
                                 f"or venues={self.venues}")
        return self

    @property
    def markets(self) -> tuple[tuple[str, str], ...]:
        """Every (exchange, symbol) of the account: ``symbols`` on ``exchange``, then each venue's."""
        return (*((self.exchange, s) for s in self.symbols),
                *((v, s) for v, syms in self.venues.items() for s in syms))

    @property
    def instrument_keys(self) -> frozenset[str]:
        """The ``exchange:symbol`` keys of the traded instruments."""
        return frozenset(f"{ex}:{sym}" for ex, sym in self.markets)

    @property
    def instruments(self) -> list[Instrument]:
        """The traded instruments, in :attr:`markets` order (precision by ``exchange:symbol``, then symbol)."""
        out = []
        for ex, sym in self.markets:
            p = self.precision.get(f"{ex}:{sym}") or self.precision.get(sym)
            out.append(
                Instrument(
                    ex,
                    sym,
                    p.price_decimals if p else self.price_decimals,
                    p.qty_decimals if p else self.qty_decimals,
                )
            )
        return out

    @property
    def instrument(self) -> Instrument:
        """The single instrument of a one-symbol config (ValueError for several)."""
        if len(self.markets) != 1:
            raise ValueError(f"config trades {len(self.markets)} symbols; use .instruments")
        return self.instruments[0]

    @property
    def symbol(self) -> str:
        """The single symbol of a one-symbol config (ValueError for several)."""
        return self.instrument.symbol
