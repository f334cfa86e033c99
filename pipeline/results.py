"""The typed results the market pipeline's tasks return (they travel through XCom as dataclasses).

Each downstream task receives its upstream task's result object, never a file. Field names are
those the main job's summary (:mod:`pipeline.report`) reads from the recorded JSON of each result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any


@dataclass(frozen=True)
class IngestResult:
    """What the replay published for the interval."""

    candles_in_interval: int
    produced: int
    dead_lettered: int
    skipped_already_published: int
    corruption_drill: bool
    per_symbol: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LandResult:
    """What landing wrote to bronze and quarantine (the landing job's own counters)."""

    landing: dict[str, Any]
    dead_letters: dict[str, Any]


@dataclass(frozen=True)
class TrainResult:
    """The model the interval is scored with: trained now, or the champion reused."""

    model_version: str
    retrained: bool
    reason: str
    trained_at: str
    oos_start: str
    lookback_start: str
    rows: int
    samples: dict[str, int]
    segments: dict[str, list[str]]
    metrics: dict[str, Any]
    calibration: list[dict[str, Any]]
    table_versions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreResult:
    """What the scorer scored for the interval (``score_from`` is never before the model's out-of-sample start)."""

    model_version: str
    score_from: str
    score_until: str
    scored: int
    inserted: int
    published: int
    up_signals: int
    first_bar: str | None
    last_bar: str | None
    calibration: list[dict[str, Any]] = field(default_factory=list)
    per_symbol: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TradeCheck:
    """Paper (Kafka) and backtest (lake) over the same bars: they must agree on every fill."""

    paper_fills: int
    backtest_fills: int
    identical: bool
    first_bar: str | None
    last_bar: str | None
    skipped_bars: int = 0


@dataclass(frozen=True)
class TradeResult:
    """The interval's trading: metrics, the account it continued and the account it ended with."""

    run_id: str
    account: str
    continued_from: str | None
    account_as_of: str
    metrics: dict[str, Any]
    stats: dict[str, Any]
    by_symbol: list[dict[str, Any]]
    check: TradeCheck
    exported: dict[str, int]
    report_path: str
    strategy: dict[str, Any] = field(default_factory=dict)  # the selector chosen on validation, its switches
    benchmarks: dict[str, Any] = field(default_factory=dict)  # against buy-and-hold and cash
    tearsheet: str = ""


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (XCom is strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return finite(value.item())
    return value


def as_record(obj: Any) -> dict[str, Any]:
    """A result (dataclass or dict) as a JSON-able dict, for the run summary and logs."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, dict):
        return obj
    raise TypeError(f"cannot record task result of type {type(obj).__name__}")
