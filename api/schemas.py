"""Request and response bodies of the API (they make the OpenAPI schema the tests fuzz against)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoginRequest(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(_Body):
    """API clients send the refresh token in the body; browsers send the cookie plus the CSRF header."""

    refresh_token: str | None = Field(None, min_length=1, max_length=256)


class TokenResponse(_Body):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    role: Literal["viewer", "trader", "admin"]


class Me(_Body):
    username: str
    role: Literal["viewer", "trader", "admin"]


class Health(_Body):
    status: Literal["ok"]
    version: str


class Problem(_Body):
    detail: str


class RunSummary(_Body):
    run_id: str
    mode: str
    status: str
    last_event: datetime | None


class OrderRow(_Body):
    client_id: str
    id: str | None
    exchange: str | None
    symbol: str | None
    side: str | None
    type: str | None
    qty: float | None
    price: float | None
    status: str | None
    filled_qty: float | None
    avg_fill_price: float | None
    created_at: datetime | None
    updated_at: datetime | None
    reason: str | None
    tag: str | None


class FillRow(_Body):
    id: str
    order_id: str | None
    client_id: str | None
    exchange: str | None
    symbol: str | None
    side: str | None
    price: float | None
    qty: float | None
    fee: float | None
    fee_currency: str | None
    ts: datetime | None
    liquidity: str | None
    tag: str | None


class PositionRow(_Body):
    instrument: str
    exchange: str | None
    symbol: str | None
    qty: float | None
    avg_price: float | None
    realized_pnl: float | None
    opened_at: datetime | None


class EquityRow(_Body):
    ts: datetime
    equity: float | None
    cash: float | None
    gross_exposure: float | None
    open_positions: int | None
    risk_state: str | None


class AuditRow(_Body):
    id: int
    ts: datetime
    username: str | None
    action: str
    outcome: str
    client: str | None
    detail_json: str


class UserRow(_Body):
    username: str
    role: str
    failed_logins: int
    locked: bool
    disabled: bool


class FieldProblem(_Body):
    field: str
    problem: str


class ValidationProblem(_Body):
    """A 422: which fields were wrong and why (the values are never echoed: one may be a password)."""

    detail: str
    errors: list[FieldProblem]


class TableFreshness(_Body):
    table: str
    version: int
    last_commit: datetime
    age_s: float
    operation: str


class StrategyInfo(_Body):
    name: str
    config: dict[str, Any]


class AccountState(_Body):
    """A trading session's account as its journal has it. ``pending``: controls written, not yet applied
    (``kill`` stays set until a resume)."""

    account: str
    state: str
    halt_reason: str
    fills: int
    last_bar: datetime | None
    strategies: list[StrategyInfo]
    params: dict[str, dict[str, Any]]
    pending: list[str]


class ControlRequest(_Body):
    reason: str = Field(min_length=1, max_length=200, description="Why: kept in the audit log and the halt reason")


class ControlAck(_Body):
    account: str
    action: Literal["pause", "resume", "flatten", "kill"]
    reason: str
    requested_by: str


class ParamsRequest(_Body):
    values: dict[str, Any] = Field(min_length=1, max_length=50,
                                   description="Strategy config fields to change (not kind, name or symbols)")


class ParamsAck(_Body):
    account: str
    strategy: str
    config: dict[str, Any]
    requested_by: str


class ModelVersion(_Body):
    version: str
    kind: str
    trained_at: datetime
    oos_start: datetime
    promoted: bool
    gate_passed: bool
    gate_reason: str


class Drift(_Body):
    """PSI of the champion's signal probabilities: its first ``window`` out-of-sample against its last."""

    status: Literal["stable", "moderate", "drifted", "unknown"]
    psi: float | None
    reference: int
    current: int
    window: int
    detail: str


class ModelHealth(_Body):
    champion: ModelVersion | None
    versions: list[ModelVersion]
    drift: Drift


class RegimeSwitch(_Body):
    ts: datetime
    regime: str
    chosen: str
    previous: str
    reason: str


class RegimeState(_Body):
    exchange: str
    symbol: str
    timeframe: str
    as_of: datetime
    regime: str
    reason: str
    preferred: str
    selected: str
    by_regime: dict[str, str]
    bars: int
    timeline: list[RegimeSwitch]


class BacktestRequest(_Body):
    strategy: dict[str, Any] = Field(description="A strategy config: its 'kind' (a registry name or reference), fields")
    symbols: list[str] | None = Field(None, min_length=1, max_length=20, description="Default: the market's symbols")
    start: datetime | None = Field(None, description="First bar open time (default: the lake's first)")
    end: datetime | None = Field(None, description="End, exclusive (default: after the lake's last bar)")
    cash: float = Field(10_000.0, gt=0, le=1e12, description="Initial cash, in the quote currency")


class BacktestJobRow(_Body):
    id: str
    requested_by: str
    strategy: str
    symbols: list[str]
    started_at: datetime
    status: Literal["running", "finished", "failed"]
    finished_at: datetime | None
    run_id: str | None
    error: str | None
    metrics: dict[str, float]


class BacktestRun(_Body):
    run_id: str
    status: str
    last_event: datetime | None
    tearsheet: bool


class BacktestList(_Body):
    jobs: list[BacktestJobRow]
    runs: list[BacktestRun]


class AlertRow(_Body):
    seq: int
    ts: datetime
    kind: str
    title: str
    body: str
    severity: str
