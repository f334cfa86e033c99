"""Signal to order sent, p50 and p99: the paper client vs the ccxt client (local exchange), same bars, same run.

"Signal to order sent" is the time from the node receiving a bar (``TradingNode.on_event``) to the
order leaving the execution client: for paper, the venue's ``submit``; for ccxt, the instant before
``create_order`` sends its HTTP request (after the write-ahead journal write, the precision checks and
ccxt's signing), so it is the trader's own latency, not the network's. The strategy sends one market
order per bar (alternating buy and sell) over real BTC/USDT hourly candles (CryptoDataDownload export in
the shared data). Correctness first: both runs must send one order per bar.

nautilus_trader's Python order path is not measured yet (see docs/benchmarks.md for the reason).

    make bench B=bench/bench_orders.py        # or .venv/bin/python bench/bench_orders.py --bars 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.localexchange.data import load_cdd_candles
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig
from trader.domain import Bar, Instrument, Order, OrderIntent, Side
from trader.execution.ccxt_client import CcxtExecutionClient, CcxtVenueConfig
from trader.execution.paper import PaperConfig, PaperExecutionClient
from trader.node import TradingNode
from trader.orders import OrderJournal
from trader.portfolio import Portfolio
from trader.risk import RiskConfig, RiskEngine
from trader.session import WallClock
from trader.store import TradeStore
from trader.strategy import Strategy, StrategyConfig, StrategyContext

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CANDLES = DATA / "market/ohlcv_1h/ingiorn/Binance_BTCUSDT_1h.csv.gz"


class EveryBar(Strategy):
    """One market order per bar, alternating buy and sell (a latency probe, not a strategy)."""

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        side = Side.BUY if self.seq % 2 == 0 else Side.SELL
        return [OrderIntent.market(self.next_id("b"), bar, side, 0.001)]


class TimedPaper(PaperExecutionClient):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.sent_marks: list[float] = []

    def submit(self, order: Order, ts: datetime) -> Order:
        self.sent_marks.append(time.perf_counter())
        return super().submit(order, ts)


def _bars(n: int) -> list[Bar]:
    cs = load_cdd_candles(CANDLES, "BTC/USDT").candles[-n:]
    return [Bar("binance", "BTC/USDT", "1h", datetime.fromtimestamp(c.open_time / 1000, UTC),
                datetime.fromtimestamp(c.open_time / 1000, UTC) + timedelta(hours=1), c.open, c.high, c.low, c.close,
                c.volume) for c in cs]


def _measure(node: TradingNode, client: Any, bars: list[Bar]) -> list[float]:
    out = []
    for bar in bars:
        n0 = len(client.sent_marks)
        t0 = time.perf_counter()
        node.on_event(bar)
        out += [m - t0 for m in client.sent_marks[n0:]]
    return out


def _node(client: Any, inst: Instrument, clock: Any = None) -> TradingNode:
    strat = EveryBar(StrategyConfig(kind="bench", name="lat"), [inst])
    return TradingNode([strat], RiskEngine(RiskConfig(max_drawdown_pct=None)), client,
                       Portfolio(1e9, [inst]), [inst], clock=clock,
                       simulator=client if isinstance(client, PaperExecutionClient) else None)


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] * 1e3 if len(xs) > 2 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=300)
    args = ap.parse_args()
    bars = _bars(args.bars)
    inst = Instrument("binance", "BTC/USDT", 2, 8)
    paper = TimedPaper(PaperConfig(fee_currency="USDT"), [inst])
    lat_paper = _measure(_node(paper, inst), paper, bars)

    ex = LocalExchange(LocalExchangeConfig(candle_files={"BTC/USDT": CANDLES}, api_keys={"bk": "bs"},
                                           start_paused=True, balances={"USDT": "1000000000", "BTC": "1000"}))
    ex.start()
    try:
        import os

        os.environ.update({"CRYPTOLAKE__TRADER__API_KEY": "bk", "CRYPTOLAKE__TRADER__API_SECRET": "bs"})
        with tempfile.TemporaryDirectory() as tmp:
            journal = OrderJournal(TradeStore(f"sqlite:///{tmp}/j.db"), "bench")
            client = CcxtExecutionClient(CcxtVenueConfig(base_url=ex.base_url), ["BTC/USDT"], journal)
            lat_ccxt = _measure(_node(client, client.instruments[0], WallClock()), client, bars)
    finally:
        ex.stop()
    assert len(lat_paper) == len(bars) and len(lat_ccxt) == len(bars), (len(lat_paper), len(lat_ccxt))
    print(f"bars={len(bars)} (one order each)")
    for name, xs in (("paper", lat_paper), ("ccxt (local exchange)", lat_ccxt)):
        print(f"{name:24s} signal->sent p50 {_pct(xs, 50):8.3f} ms  p99 {_pct(xs, 99):8.3f} ms")
    print(f"ratio ccxt/paper p50 {_pct(lat_ccxt, 50) / _pct(lat_paper, 50):.1f}x")
    print("nautilus_trader: not measured (no harness yet; see docs/benchmarks.md)")


if __name__ == "__main__":
    main()
