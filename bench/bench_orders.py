"""Signal to order sent, p50 and p99: the paper client vs the ccxt client (local exchange), same bars, same run.

"Signal to order sent" is the time from the node receiving a bar (``TradingNode.on_event``) to the
order leaving the execution client: for paper, the venue's ``submit``; for ccxt, the instant before
``create_order`` sends its HTTP request (after the write-ahead journal write, the precision checks and
ccxt's signing), so it is the trader's own latency, not the network's. The strategy sends one market
order per bar (alternating buy and sell) over real BTC/USDT hourly candles (CryptoDataDownload export in
the shared data). Correctness first: both runs must send one order per bar.

nautilus_trader's Python order path, in the same run on the same bars: a nautilus ``Strategy`` in a
``BacktestEngine`` (its simulated Binance venue, a cash account) sends the same one market order per bar;
the time is from the strategy's ``on_bar`` entry to its ``on_order_submitted`` (the order through
nautilus's risk engine, execution engine and execution client, which emits ``OrderSubmitted`` as it
hands the order to the venue), all synchronous on one thread. It starts at the strategy, ours at the
node's event entry (a little more work is inside ours); both end as the order leaves the client.

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


class TimedCcxt(CcxtExecutionClient):
    """Marks the instant the node hands an approved order to the client (so the submit path can be split out)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.submit_marks: list[float] = []

    def submit(self, order: Order, ts: datetime) -> Order:
        self.submit_marks.append(time.perf_counter())
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


def _nautilus(bars: list[Bar]) -> list[float]:
    """Signal (on_bar) to order submitted through nautilus_trader's Python order path; see the module docstring."""
    import pandas as pd
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import BTC, USDT
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy as NtStrategy

    inst = TestInstrumentProvider.btcusdt_binance()
    bar_type = BarType.from_str(f"{inst.id}-1-HOUR-LAST-EXTERNAL")
    df = pd.DataFrame({"open": [b.open for b in bars], "high": [b.high for b in bars], "low": [b.low for b in bars],
                       "close": [b.close for b in bars], "volume": [b.volume for b in bars]},
                      index=pd.DatetimeIndex([b.close_time for b in bars], name="timestamp"))
    engine = BacktestEngine(BacktestEngineConfig(trader_id="BENCH-001", logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(venue=Venue("BINANCE"), oms_type=OmsType.NETTING, account_type=AccountType.CASH,
                     base_currency=None, starting_balances=[Money(1_000_000_000, USDT), Money(1000, BTC)])
    engine.add_instrument(inst)
    engine.add_data(BarDataWrangler(bar_type, inst).process(df))

    class Probe(NtStrategy):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.lat: list[float] = []
            self.t0 = 0.0
            self.n = 0

        def on_start(self) -> None:
            self.subscribe_bars(bar_type)

        def on_bar(self, bar: Any) -> None:
            self.t0 = time.perf_counter()
            side = OrderSide.BUY if self.n % 2 == 0 else OrderSide.SELL
            self.n += 1
            self.submit_order(self.order_factory.market(inst.id, side, inst.make_qty(0.001)))

        def on_order_submitted(self, event: Any) -> None:
            self.lat.append(time.perf_counter() - self.t0)

    probe = Probe()
    engine.add_strategy(probe)
    engine.run()
    filled = sum(1 for o in engine.cache.orders() if o.is_closed and o.filled_qty > 0)
    engine.dispose()
    assert filled >= len(bars) - 1, f"nautilus filled {filled} of {len(bars)} orders"  # the last may wait
    return probe.lat


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
            client = TimedCcxt(CcxtVenueConfig(base_url=ex.base_url), ["BTC/USDT"], journal)
            lat_ccxt = _measure(_node(client, client.instruments[0], WallClock()), client, bars)
            submit_path = [b - a for a, b in zip(client.submit_marks, client.sent_marks, strict=True)]
    finally:
        ex.stop()
    try:
        lat_nt: list[float] | None = _nautilus(bars)
        nt_error = ""
    except Exception as exc:  # the reason it could not be measured is the result
        lat_nt, nt_error = None, f"{type(exc).__name__}: {exc}"
    assert len(lat_paper) == len(bars) and len(lat_ccxt) == len(bars), (len(lat_paper), len(lat_ccxt))
    assert lat_nt is None or len(lat_nt) == len(bars), len(lat_nt)
    print(f"bars={len(bars)} (one order each)")
    rows = [("paper", lat_paper), ("ccxt (local exchange)", lat_ccxt)]
    if lat_nt is not None:
        rows.append(("nautilus_trader", lat_nt))
    for name, xs in rows:
        print(f"{name:24s} signal->sent p50 {_pct(xs, 50):8.3f} ms  p99 {_pct(xs, 99):8.3f} ms")
    print(f"{'  of which ccxt submit':24s} submit->sent p50 {_pct(submit_path, 50):8.3f} ms  p99 "
          f"{_pct(submit_path, 99):8.3f} ms  (journal writes, precision, signing; the rest is the bar's fill poll)")
    print(f"ratio ccxt/paper p50 {_pct(lat_ccxt, 50) / _pct(lat_paper, 50):.1f}x")
    if lat_nt is not None:
        print(f"ratio paper/nautilus p50 {_pct(lat_paper, 50) / _pct(lat_nt, 50):.2f}x  "
              f"p99 {_pct(lat_paper, 99) / _pct(lat_nt, 99):.2f}x")
    else:
        print(f"nautilus_trader: not measured: {nt_error}")


if __name__ == "__main__":
    main()
