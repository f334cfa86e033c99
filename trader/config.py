"""Trader configuration.

* :class:`TraderSettings`: process settings read from the environment with the
  ``CRYPTOLAKE__TRADER__`` prefix (store URL, Kafka polling). Kept here rather than in
  ``cryptolake/settings.py`` so the trader owns its knobs.
* :class:`TraderConfig`: one trading run (instrument, starting cash, strategy, risk and
  paper-venue configs). Frozen and validated; the same object drives backtest and live.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryptolake.settings import Settings, get_settings
from cryptolake.types import TIMEFRAME_MS
from trader.domain import Instrument
from trader.execution.paper import PaperConfig
from trader.risk import RiskConfig
from trader.strategies.threshold import ThresholdConfig


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

    def resolved_store_url(self, settings: Settings | None = None) -> str:
        """The store URL, defaulting to ``sqlite:///<state_dir>/trader/trader.db``."""
        if self.store_url:
            return self.store_url
        path = (settings or get_settings()).paths.state_dir / "trader" / "trader.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"


class TraderConfig(BaseModel):
    """Everything one trading run needs besides its data: what, with how much, and under which rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(default="gymcrypto", min_length=1)
    symbol: str = Field(default="BTC/USD", min_length=1)
    timeframe: str = Field(default="30m", description="Bar timeframe, one of cryptolake.types.TIMEFRAME_MS")
    price_decimals: int = Field(default=2, ge=0, le=12)
    qty_decimals: int = Field(default=6, ge=0, le=12)
    quote_currency: str = Field(default="USD", min_length=1)
    initial_cash: float = Field(default=10_000.0, gt=0)
    strategy: ThresholdConfig = ThresholdConfig()
    risk: RiskConfig = RiskConfig()
    paper: PaperConfig = PaperConfig()

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, v: str) -> str:
        if v not in TIMEFRAME_MS:
            raise ValueError(f"timeframe={v!r} unknown; expected one of {sorted(TIMEFRAME_MS)}")
        return v

    @property
    def instrument(self) -> Instrument:
        return Instrument(self.exchange, self.symbol, self.price_decimals, self.qty_decimals)
