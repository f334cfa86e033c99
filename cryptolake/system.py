"""The living system's one config: venues, symbols, timeframes, the trader's strategies, alternative data.

``cryptolake up`` reads it from a TOML file (default ``infra/system.toml``, or ``CRYPTOLAKE_SYSTEM_FILE``);
environment variables ``CRYPTOLAKE_SYSTEM__<FIELD>[__<SUB>]`` override any top-level field or a field of
a table (values are TOML/JSON literals, e.g. ``CRYPTOLAKE_SYSTEM__SYMBOLS='["BTC/USDT"]'`` or
``CRYPTOLAKE_SYSTEM__REPLAY__SPEED=600``). The model is frozen; a bad value is a
:class:`~cryptolake.errors.ConfigError` naming the field and the value. Relative data paths resolve
against the shared data root (``CRYPTOLAKE_SHARED_DATA``). Secrets (API keys) are never fields here.
"""

from __future__ import annotations

import json
import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cryptolake.errors import ConfigError
from cryptolake.settings import DEFAULT_SHARED_DATA, PROJECT_ROOT
from cryptolake.types import TIMEFRAME_MS

DEFAULT_FILE = PROJECT_ROOT / "infra" / "system.toml"
ENV_PREFIX = "CRYPTOLAKE_SYSTEM__"
DEFAULT_1M = "market/ohlcv_1m/nautilus_trader/btc-perp-20211231-20220201_1m.csv.gz"  # Binance BTCUSDT 1m


def shared_data_root() -> Path:
    """The shared real-data root (``CRYPTOLAKE_SHARED_DATA`` or the default beside the project)."""
    return Path(os.environ.get("CRYPTOLAKE_SHARED_DATA") or DEFAULT_SHARED_DATA)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReplaySpec(_Frozen):
    """The local exchange's replay of real candles (the default venue)."""

    candles: dict[str, Path] = Field(
        default_factory=lambda: {"BTC/USDT": Path(DEFAULT_1M)},
        description="Unified symbol -> real candle file (relative = under the shared data root)")
    speed: float = Field(60.0, gt=0, description="Replay speed multiple of real time (60 = one 1m candle per second)")
    start_index: int = Field(500, ge=1, description="Candles of history already visible when the replay starts")
    drift_at: datetime | None = Field(None, description="SYNTHETIC drift from this candle open time (UTC) on")
    drift_scale: float = Field(1.0, gt=0, description="SYNTHETIC drift: returns and volume scaled by this")

    @field_validator("candles")
    @classmethod
    def _resolve(cls, value: dict[str, Path]) -> dict[str, Path]:
        if not value:
            raise ValueError("at least one SYMBOL = file is needed")
        out = {}
        for symbol, path in value.items():
            full = path if path.is_absolute() else shared_data_root() / path
            if not full.exists():
                raise ValueError(f"{symbol}: candle file {str(full)!r} does not exist")
            out[symbol] = full
        return out

    @field_validator("drift_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{value.isoformat()!r} has no UTC offset (write e.g. 2022-01-05T00:00:00Z)")
        return value.astimezone(UTC) if value is not None else None


class VenueSpec(_Frozen):
    """One venue the market connector watches: the local exchange, or any ccxt.pro exchange id."""

    name: str = Field("localex", min_length=1, description="Venue name written into the records")
    kind: Literal["local", "ccxt"] = Field("local", description="local = the replaying local exchange")
    exchange_id: str = Field("binance", min_length=1, description="ccxt exchange id (local: binance)")
    base_url: str = Field("", description="kind=ccxt: point every API URL here (empty = the real venue)")
    sandbox: bool = Field(False, description="kind=ccxt: the venue's testnet")

    @model_validator(mode="after")
    def _local_is_binance(self) -> VenueSpec:
        if self.kind == "local" and self.exchange_id != "binance":
            raise ValueError(f"exchange_id={self.exchange_id!r}: the local exchange speaks binance only")
        return self


class StrategySpec(_Frozen):
    """One paper trader: a registered strategy (or module:Class) and its config fields."""

    kind: str = Field(..., min_length=1, description="Registered strategy name, module:Class or file.py:Class")
    account: str = Field("paper", min_length=1, description="Account id (the journal that survives restarts)")
    params: dict[str, Any] = Field(default_factory=dict, description="Strategy config fields")
    cash: float = Field(10_000.0, gt=0, description="Initial paper cash")


# the long-running alternative-data connectors
AltSource = Literal["news", "reddit", "chain", "x", "telegram", "discord", "evm"]


class AltDataSpec(_Frozen):
    """One alternative-data connector; the local replay server unless its API keys are in the environment."""

    source: AltSource
    enabled: bool = Field(True, description="Run this connector under `up` (false: declared but off)")
    poll_interval_s: float = Field(30.0, gt=0, description="Seconds between polls of the source")


class StreamSpec(_Frozen):
    """The continuous pipeline: one Spark driver landing ``market.ohlcv``, updating silver and gold, and scoring."""

    enabled: bool = Field(True, description="Run `cryptolake stream` (landing, silver+gold, scorer) under `up`")
    trigger_seconds: float = Field(1.0, gt=0, description="Processing-time trigger of the streaming queries")
    score: bool = Field(True, description="Also score new gold rows with the market's champion, once one exists")
    hot: bool = Field(True, description="Also run `cryptolake stream hot` (the low-latency hot path: candle -> "
                      "gold row -> signal in one process, no JVM) with the market's champion, once one exists")


class SignalTraderSpec(_Frozen):
    """The paper trader of the champion's signals (`cryptolake trade signals`), run once the market has a champion."""

    enabled: bool = Field(True, description="Paper-trade the streamed market's champion's signals under `up` "
                          "(the ML signal strategy with the thresholds the main job's trade task chose for it)")
    account: str = Field("paper-signals", min_length=1, description="Account id (the process is trader-ACCOUNT)")
    cash: float = Field(10_000.0, gt=0, description="Initial paper cash")


class MonitoringSpec(_Frozen):
    """`cryptolake monitor` (consumer lag, table freshness) and Prometheus scraping every process."""

    monitor: bool = Field(True, description="Run `cryptolake monitor` under `up`")
    prometheus: bool = Field(True, description="Run Prometheus (Debian's package) scraping every /metrics of `up`")
    scrape_interval_s: float = Field(5.0, gt=0, description="Prometheus scrape and rule evaluation interval")


class AirflowSpec(_Frozen):
    """Airflow under `up`: PostgreSQL, API server, scheduler and DAG processor (LocalExecutor), supervised."""

    enabled: bool | Literal["auto"] = Field(
        "auto", description="Run Airflow under `up`: auto = when PostgreSQL and Airflow are installed; true = "
        "required (an error when missing)")
    landing_interval_s: int = Field(900, ge=10, description="Data interval of the market_landing DAG while up "
                                    "(caught up from the start of `up`)")
    dag_refresh_s: int = Field(30, ge=1, description="How often the DAG processor re-parses the DAG folder")
    retrain_interval_s: int = Field(300, ge=10, description="Data interval of the model_retraining DAG while up: "
                                    "each run judges the streamed market's bars landed in it for drift")


class SupervisorSpec(_Frozen):
    """How the supervisor restarts a process that died."""

    backoff_initial_s: float = Field(1.0, gt=0, description="First restart delay")
    backoff_max_s: float = Field(30.0, gt=0, description="Restart delay cap (doubles up to here)")
    crash_loop_restarts: int = Field(5, ge=1, description="Restarts within crash_loop_window_s that mark it failed")
    crash_loop_window_s: float = Field(120.0, gt=0, description="Window of the crash-loop rule")
    stable_after_s: float = Field(30.0, gt=0, description="Running this long resets the back-off")
    stop_timeout_s: float = Field(20.0, gt=0, description="SIGTERM, then SIGKILL after this long")
    ready_timeout_s: float = Field(120.0, gt=0, description="How long `up` waits for every process to be ready")
    broker_check_s: float = Field(5.0, ge=0, description="Seconds between checks of the Kafka broker, restarted "
                                  "when down (0 = the supervisor leaves the broker alone)")


class SystemConfig(_Frozen):
    """Everything `cryptolake up` starts."""

    symbols: tuple[str, ...] = Field(("BTC/USDT",), min_length=1, description="Symbols collected and traded")
    timeframes: tuple[str, ...] = Field(("1m",), min_length=1, description="Candle timeframes collected")
    venues: tuple[VenueSpec, ...] = Field((VenueSpec(),), min_length=1, description="Venues the connector watches")
    replay: ReplaySpec = Field(default_factory=ReplaySpec, description="The local exchange's replay")
    strategies: tuple[StrategySpec, ...] = Field((), description="Paper traders (one process each)")
    altdata: tuple[AltDataSpec, ...] = Field((), description="Alternative-data connectors")
    trades: bool = Field(False, description="Also stream trades (venues with a trade feed; not candle replays)")
    books: bool = Field(False, description="Also stream order-book metrics (venues with a depth feed)")
    stream: StreamSpec = Field(default_factory=StreamSpec, description="The streaming landing, features and scorer")
    signals: SignalTraderSpec = Field(default_factory=SignalTraderSpec, description="The champion's signal trader")
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec, description="Monitor and Prometheus")
    airflow: AirflowSpec = Field(default_factory=AirflowSpec, description="The scheduler and its services")
    supervisor: SupervisorSpec = Field(default_factory=SupervisorSpec, description="Restart policy")

    @field_validator("timeframes")
    @classmethod
    def _timeframes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [t for t in value if t not in TIMEFRAME_MS]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a timeframe; one of {sorted(TIMEFRAME_MS)}")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if "/" not in s or s != s.strip()]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a unified symbol like BTC/USDT")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SystemConfig:
        names = [v.name for v in self.venues]
        if len(set(names)) != len(names):
            raise ValueError(f"venues: duplicate venue name in {names}")
        accounts = [s.account for s in self.strategies]
        if self.signals.account in accounts:
            raise ValueError(f"signals.account={self.signals.account!r}: a [[strategies]] entry trades that account")
        if any(v.kind == "local" for v in self.venues):
            missing = [s for s in self.symbols if s not in self.replay.candles]
            if missing:
                raise ValueError(f"symbols: {missing[0]!r} has no candle file under [replay.candles]")
        return self


def _env_value(raw: str) -> Any:
    """A TOML/JSON literal from the environment; a bare word is a string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``CRYPTOLAKE_SYSTEM__A__B=value`` -> ``{"a": {"b": value}}``."""
    out: dict[str, Any] = {}
    for key, raw in (environ if environ is not None else dict(os.environ)).items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _env_value(raw)
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(config)"
        value = err.get("input")
        lines.append(f"{loc}={value!r}: {err['msg']}" if not isinstance(value, dict) else f"{loc}: {err['msg']}")
    return "; ".join(lines)


def load_system(path: Path | None = None, environ: dict[str, str] | None = None) -> SystemConfig:
    """The system config from ``path`` (default: ``CRYPTOLAKE_SYSTEM_FILE`` or infra/system.toml) plus env overrides."""
    env = environ if environ is not None else dict(os.environ)
    path = path or Path(env.get("CRYPTOLAKE_SYSTEM_FILE") or DEFAULT_FILE)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"system config {str(path)!r} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"system config {str(path)!r} is not valid TOML: {exc}") from exc
    data = _merge(data, env_overrides(env))
    try:
        return SystemConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"system config {path}: {_describe(exc, data)}") from exc
