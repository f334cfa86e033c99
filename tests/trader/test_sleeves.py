"""One portfolio across two venues and two strategies in one trading node, on REAL hourly candles.

Binance BTC/USDT (``ingiorn/Binance_BTCUSDT_1h``) and Kraken ETH/USD (``kmerisalu/Kraken_ETHUSD_1h``),
CryptoDataDownload exports in ``../shared/data/market/ohlcv_1h``, 2019-01-01 to 2019-02-15: two venues x
(swing, breakout) = four sleeves in one account, allocated by HRP under a 0.4 maximum weight.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.schemas import OhlcvV1
from ingest.localexchange.data import parse_cdd_csv
from research.sleeves import sleeves_tearsheet
from tests.trader.test_live import ListDeadLetters, ListSource, _chunks
from trader.allocation import AllocationConfig, target_weights
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.feeds.kafka_source import Record
from trader.live import run_live
from trader.node import TradingNode
from trader.risk import RiskConfig
from trader.strategies.sleeves import (
    SleevesConfig,
    SleevesStrategy,
    rebalances_frame,
    sleeve_equity,
    sleeve_pnl,
    sleeve_summary,
    sleeve_weights,
)

FIRST, END = datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 2, 15, tzinfo=UTC)
START = datetime(2019, 1, 8, tzinfo=UTC)  # a week of warm-up before it
HOUR = timedelta(hours=1)
ALLOCATION = AllocationConfig(method="hrp", lookback=96, every_bars=48, drift=0.05, max_weight=0.4)
MEMBERS = {"swing": {"kind": "swing", "fast": 10, "slow": 40}, "brk": {"kind": "breakout", "channel": 24,
                                                                       "exit_channel": 12}}
QTY_DECIMALS = 5


def _venue_bars(path: Path, exchange: str, symbol: str) -> pd.DataFrame:
    candles = parse_cdd_csv(path)
    df = pd.DataFrame({"open_time": pd.to_datetime([c.open_time for c in candles], unit="ms", utc=True),
                       "open": [c.open for c in candles], "high": [c.high for c in candles],
                       "low": [c.low for c in candles], "close": [c.close for c in candles],
                       "volume": [c.volume for c in candles]})
    df = df[(df.open_time >= FIRST) & (df.open_time < END)]
    return df.assign(exchange=exchange, symbol=symbol, timeframe="1h").reset_index(drop=True)


@pytest.fixture(scope="module")
def bars(shared_data: Path) -> pd.DataFrame:
    hourly = shared_data / "market" / "ohlcv_1h"
    return pd.concat([_venue_bars(hourly / "ingiorn" / "Binance_BTCUSDT_1h.csv.gz", "binance", "BTC/USDT"),
                      _venue_bars(hourly / "kmerisalu" / "Kraken_ETHUSD_1h.csv.gz", "kraken", "ETH/USD")],
                     ignore_index=True)


def config(risk: RiskConfig | None = None, allocation: AllocationConfig = ALLOCATION) -> TraderConfig:
    return TraderConfig(exchange="binance", symbols=("BTC/USDT",), venues={"kraken": ("ETH/USD",)}, timeframe="1h",
                        quote_currency="USD", price_decimals=2, qty_decimals=QTY_DECIMALS,
                        strategies=(SleevesConfig(members=MEMBERS, allocation=allocation),),
                        risk=risk or RiskConfig())


def _run(bars: pd.DataFrame, cfg: TraderConfig) -> tuple[Any, TradingNode]:
    box: dict[str, TradingNode] = {}
    result = run_backtest(bars, None, cfg, run_id="sleeves", persist_run=False, start_time=START,
                          inspect=lambda n: box.update(node=n))
    return result, box["node"]


@pytest.fixture(scope="module")
def run(bars: pd.DataFrame) -> tuple[Any, TradingNode, SleevesStrategy]:
    result, node = _run(bars, config())
    strategy = node.strategies[0]
    assert isinstance(strategy, SleevesStrategy)
    return result, node, strategy


def _close(bars: pd.DataFrame, key: str, ts: datetime) -> float:
    ex, _, sym = key.partition(":")
    row = bars[(bars.exchange == ex) & (bars.symbol == sym) & (bars.open_time == pd.Timestamp(ts - HOUR))]
    return float(row.close.iloc[0])


def _open(bars: pd.DataFrame, key: str, open_time: datetime) -> float:
    ex, _, sym = key.partition(":")
    row = bars[(bars.exchange == ex) & (bars.symbol == sym) & (bars.open_time == pd.Timestamp(open_time))]
    return float(row.open.iloc[0])


def test_four_sleeves_over_two_venues_trade_in_one_account(run) -> None:
    result, _, st = run
    assert [s.label for s in st.sleeves] == ["binance:BTC/USDT swing", "binance:BTC/USDT brk",
                                             "kraken:ETH/USD swing", "kraken:ETH/USD brk"]
    fills = result.fills
    assert set(fills.exchange) == {"binance", "kraken"}
    by_sleeve = fills.client_id.str.partition("-")[0].value_counts()
    assert set(by_sleeve.index) == {"swing_0", "brk_0", "swing_1", "brk_1"} and by_sleeve.min() >= 10
    assert (fills.ts > START).all()


def test_account_equity_is_the_sum_of_the_sleeves_at_every_full_close(run) -> None:
    _, node, st = run
    sleeves = sleeve_equity(st)
    account = pd.Series({p.ts: p.equity for p in node.equity})
    assert len(sleeves) > 700
    assert np.abs(sleeves.sum(axis=1).to_numpy() - account.reindex(sleeves.index).to_numpy()).max() < 1e-9
    assert abs(sum(s.book.cash for s in st.sleeves) - node.portfolio.cash) < 1e-9
    for key, pos in node.portfolio.positions.items():
        assert abs(sum(s.book.positions[key].qty for s in st.sleeves if s.key == key) - pos.qty) < 1e-12
    summary = sleeve_summary(st, node.portfolio.last_prices)
    final = node.portfolio.equity()
    assert abs(summary.pnl.sum() - (final - 10_000.0)) < 1e-9
    assert abs(summary.fees.sum() - node.portfolio.fees_paid) < 1e-9


def test_weights_after_each_rebalance_are_the_allocators_output(run) -> None:
    _, _, st = run
    names = [s.name for s in st.sleeves]
    reb = st.rebalances
    assert reb[0].reason == "initial" and reb[0].weights == dict.fromkeys(names, 0.25)
    assert {"first estimate", "schedule"} <= {r.reason for r in reb} and len(reb) > 15
    pre = {r.ts: np.array([r.equity[n] for n in names]) for r in reb[1:]}
    by_ts = {r.ts: r for r in reb[1:]}
    prev = np.array([reb[0].equity[n] for n in names])
    returns: list[np.ndarray] = []
    target = np.full(4, 0.25)
    checked = 0
    for ts, post in st.points:
        returns.append(pre.get(ts, post) / prev - 1.0)  # returns from each sleeve's equity after the last close
        prev = post
        r = by_ts.get(ts)
        if r is None:
            continue
        got = np.array([r.weights[n] for n in names])
        held = post / post.sum()  # the sleeves' equity weights right after the rebalance
        assert np.abs(held - got).max() < 1e-12
        if len(returns) < ALLOCATION.lookback:
            assert not r.estimated and np.allclose(got, 0.25, atol=0, rtol=0)
        else:
            window = pd.DataFrame(returns[-ALLOCATION.lookback:], columns=names)
            active = (window.std(ddof=0) > 0).to_numpy()
            kept = target[~active].sum()
            bound = ALLOCATION.model_copy(update={"max_weight": min(1.0, ALLOCATION.max_weight / (1 - kept))})
            w = target_weights(window.loc[:, active], bound).reindex(names).fillna(0.0).to_numpy()
            expected = np.where(active, w * (1 - kept), target)
            assert r.estimated and np.abs(got - expected).max() < 1e-12, (ts, got, expected)
            checked += 1
        target = got
        assert got.max() <= ALLOCATION.max_weight + 1e-9 and got.min() >= 0 and abs(got.sum() - 1) < 1e-12
    assert checked > 10
    weights = sleeve_weights(st)
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-12)


def test_a_rebalance_trade_is_the_sleeves_exposure_at_its_new_weight(run, bars) -> None:
    result, node, st = run
    fills = result.fills
    r = next(r for r in st.rebalances if r.trades)
    name, sent = next(iter(r.trades.items()))
    sleeve = next(s for s in st.sleeves if s.name == name)
    own = fills[fills.client_id.str.startswith(f"{name}-") & (fills.ts < r.ts)]
    qty = float((own.qty * np.where(own.side == "buy", 1.0, -1.0)).sum())  # the sleeve's position, by hand
    price = _close(bars, sleeve.key, r.ts)
    total = sum(r.equity.values())
    account = next(p.equity for p in node.equity if p.ts == r.ts)
    assert abs(total - account) < 1e-9
    # the sleeve's equity before: its cash (initial share + transfers - its fills) plus its position
    assert qty > 0 and r.equity[name] > qty * price
    new_qty = math.floor(qty * r.weights[name] * total / r.equity[name] * 10**QTY_DECIMALS) / 10**QTY_DECIMALS
    assert sent == pytest.approx(new_qty - qty, abs=1e-12)
    fill = fills[fills.client_id.str.startswith(f"{name}-") & (fills.tag == "rebalance") & (fills.ts >= r.ts)].iloc[0]
    slip = 5 / 10_000
    next_open = _open(bars, sleeve.key, r.ts)
    expected_price = round(next_open * (1 + slip) if sent > 0 else next_open * (1 - slip), 2)
    assert fill.ts == r.ts and fill.qty == pytest.approx(abs(sent), abs=1e-12)
    assert fill.price == pytest.approx(expected_price, abs=1e-9)
    assert fill.fee == pytest.approx(round(fill.qty * fill.price * 10 / 10_000, 8), abs=1e-8)
    table = rebalances_frame(st)
    assert table[(table.ts == r.ts) & (table.sleeve == sleeve.label)].traded_qty.iloc[0] == sent


def test_report_shows_pnl_and_weights_per_sleeve_over_time(run, tmp_path) -> None:
    result, node, st = run
    pnl = sleeve_pnl(st)
    account = pd.Series({p.ts: p.equity for p in node.equity}).reindex(pnl.index) - 10_000.0
    assert np.abs(pnl.sum(axis=1).to_numpy() - account.to_numpy()).max() < 1e-9
    summary = sleeve_summary(st, node.portfolio.last_prices).set_index("sleeve")
    assert np.abs(pnl.iloc[-1] - summary.pnl.reindex(pnl.columns)).max() < 1e-9  # the last bar is a full close
    html, png = sleeves_tearsheet(tmp_path / "sleeves.html", result, st, prices=node.portfolio.last_prices,
                                  timeframe="1h", title="sleeves")
    page = html.read_text()
    assert png.exists() and "PnL per sleeve" in page and "Allocation weights" in page
    assert all(label in page for label in pnl.columns) and page.count("first estimate") == 4


def test_venue_limit_bounds_what_the_sleeves_hold_on_kraken(bars) -> None:
    limit = 3_000.0  # one kraken sleeve fully invested (about 2,500), not both
    result, node = _run(bars, config(RiskConfig(per_venue={"kraken": limit})))
    st = node.strategies[0]
    assert isinstance(st, SleevesStrategy)
    rejected = result.rejections
    assert len(rejected) > 0 and rejected.reason.str.contains("venue kraken").all()
    fills = result.fills
    kraken = [o for o in node.orders.values() if o.exchange == "kraken" and o.side.value == "buy"
              and o.status.value != "rejected"]
    assert kraken
    for o in kraken:
        before = fills[(fills.exchange == "kraken") & (fills.ts < o.created_at)]
        held = float((before.qty * np.where(before.side == "buy", 1.0, -1.0)).sum())
        price = _close(bars, "kraken:ETH/USD", o.created_at)
        assert (held + o.qty) * price <= limit + 1e-6
    sleeves = sleeve_equity(st).sum(axis=1)
    account = pd.Series({p.ts: p.equity for p in node.equity}).reindex(sleeves.index)
    assert np.abs(sleeves.to_numpy() - account.to_numpy()).max() < 1e-9


def _sum_of_sleeves_error(node: TradingNode, st: SleevesStrategy) -> float:
    sleeves = sleeve_equity(st).sum(axis=1)
    account = pd.Series({p.ts: p.equity for p in node.equity}).reindex(sleeves.index)
    return float(np.abs(sleeves.to_numpy() - account.to_numpy()).max())


def test_drift_rebalances_at_the_first_close_a_weight_strays_too_far(bars) -> None:
    allocation = ALLOCATION.model_copy(update={"every_bars": None, "drift": 0.01})
    _, node = _run(bars, config(allocation=allocation))
    st = node.strategies[0]
    assert isinstance(st, SleevesStrategy)
    names = [s.name for s in st.sleeves]
    reb = st.rebalances
    assert {r.reason for r in reb} == {"initial", "first estimate", "drift"}
    drifts = [r for r in reb if r.reason == "drift"]
    assert len(drifts) >= 2
    for prev, r in itertools.pairwise(reb):
        target = np.array([prev.weights[n] for n in names])
        strays = [ts for ts, eq in st.points
                  if prev.ts < ts < r.ts and np.abs(eq / eq.sum() - target).max() > allocation.drift]
        pre = np.array([r.equity[n] for n in names])
        if r.reason == "drift":  # it strayed at this close, or earlier while an order was on its way
            assert strays or np.abs(pre / pre.sum() - target).max() > allocation.drift
        else:
            assert not strays
    last = np.array([reb[-1].weights[n] for n in names])
    after = [ts for ts, eq in st.points if ts > reb[-1].ts and np.abs(eq / eq.sum() - last).max() > allocation.drift]
    assert not after or st.pending == "drift"  # strayed after the last one: due, waiting for an order
    assert _sum_of_sleeves_error(node, st) < 1e-9


def test_the_nodes_protective_stops_are_shared_by_the_sleeves_holding_the_instrument(bars) -> None:
    result, node = _run(bars, config(RiskConfig(trailing_stop_pct=0.03)))
    st = node.strategies[0]
    assert isinstance(st, SleevesStrategy)
    stops = result.fills[result.fills.client_id.str.startswith(f"{st.name}-")]
    assert node.counts["protective_stops"] > 5 and len(stops) == node.counts["protective_stops"]
    assert _sum_of_sleeves_error(node, st) < 1e-9  # positions x prices and cash: the split lost nothing
    assert all(s.book.positions[s.key].qty >= 0 for s in st.sleeves)
    assert abs(sum(s.book.fees_paid for s in st.sleeves) - node.portfolio.fees_paid) < 1e-9


def test_ml_sleeves_trade_each_venues_signals_on_their_own_books(bars) -> None:
    rng = np.random.default_rng(5)  # SYNTHETIC probabilities (a seeded pattern, not a model); candles real
    signals = pd.DataFrame({"exchange": bars.exchange, "symbol": bars.symbol, "bar_time": bars.open_time,
                            "probability": np.round(rng.uniform(0.2, 0.9, len(bars)), 4),
                            "available_time": bars.open_time + HOUR, "model_version": "synthetic"})
    members = {"ml": {"kind": "mlsignal", "enter_threshold": 0.75, "exit_threshold": 0.4}, **MEMBERS}
    cfg = config().model_copy(update={"strategies": (SleevesConfig(members=members, allocation=ALLOCATION),)})
    box: dict[str, TradingNode] = {}
    result = run_backtest(bars, signals, cfg, run_id="ml", persist_run=False, start_time=START,
                          model_version="synthetic", inspect=lambda n: box.update(node=n))
    node = box["node"]
    st = node.strategies[0]
    assert isinstance(st, SleevesStrategy) and len(st.sleeves) == 6
    fills = result.fills
    entries = fills[fills.client_id.str.match(r"^ml_\d-") & (fills.tag == "entry")]
    assert set(entries.exchange) == {"binance", "kraken"}
    prob = signals.set_index(["exchange", "symbol", "bar_time"]).probability
    for f in entries.itertuples():  # decided on the signal about the bar that closed at the fill's open
        assert prob[(f.exchange, f.symbol, pd.Timestamp(f.ts) - HOUR)] >= 0.75
    assert _sum_of_sleeves_error(node, st) < 1e-9
    assert abs(sum(s.book.cash for s in st.sleeves) - node.portfolio.cash) < 1e-9


def test_paper_run_of_the_same_config_makes_the_same_fills(run, bars, tmp_path) -> None:
    result, _, _ = run
    ohlcv = [OhlcvV1(schema_version=1, event_time=int(b.open_time.value // 1_000_000),
                     available_time=int(b.open_time.value // 1_000_000) + 3_600_000,
                     ingest_time=int(b.open_time.value // 1_000_000) + 3_600_500, exchange=b.exchange,
                     symbol=b.symbol, timeframe="1h", open=b.open, high=b.high, low=b.low, close=b.close,
                     volume=b.volume)
             for b in bars.sort_values(["open_time", "exchange"]).itertuples(index=False)]
    venue = {"binance": 0, "kraken": 1}
    recs: dict[int, list[Record]] = {0: [], 1: []}
    for m in ohlcv:
        p = venue[m.exchange]
        recs[p].append(Record(topics.MARKET_OHLCV, p, len(recs[p]), m.key(), m.model_dump_json()))
    streams = [_chunks(recs[0], 300), _chunks(recs[1], 170)]  # the venues' partitions drained unevenly
    batches = []
    while any(streams):
        for s in streams:
            if s:
                batches.append(s.pop(0))
    paper = run_live(config(), run_id="paper-sleeves", store_url=f"sqlite:///{tmp_path}/p.db", max_idle_s=0,
                     source=ListSource(batches), dead_letters=ListDeadLetters(), start_time=START)
    cols = ["client_id", "exchange", "symbol", "side", "price", "qty", "fee", "ts", "tag"]
    pd.testing.assert_frame_equal(paper.fills[cols].reset_index(drop=True), result.fills[cols].reset_index(drop=True))
    assert paper.metrics["final_equity"] == pytest.approx(result.metrics["final_equity"], abs=1e-9)


def test_bars_of_a_venue_the_account_does_not_trade_are_dropped_and_counted(bars) -> None:
    other = bars[bars.exchange == "kraken"].assign(exchange="coinbase")
    cfg = config()
    plain = run_backtest(pd.concat([bars, other], ignore_index=True), None, cfg, run_id="x", persist_run=False,
                         start_time=END - 48 * HOUR)
    assert plain.stats["other_instruments"] == len(other)


def test_members_with_resting_protective_orders_and_infeasible_max_weight_are_refused() -> None:
    with pytest.raises(ValueError, match="stop_loss_pct"):
        SleevesConfig(members={"swing": {"kind": "swing", "stop_loss_pct": 0.02}})
    with pytest.raises(ValueError, match="cannot sum to 1 over 4 sleeves"):
        cfg = config().model_copy(update={"strategies": (SleevesConfig(
            members=MEMBERS, allocation=AllocationConfig(max_weight=0.2)),)})
        from trader.build import build_strategies
        build_strategies(cfg)


def test_a_ccxt_trading_session_refuses_other_venues_instead_of_ignoring_them() -> None:
    from cryptolake.errors import ConfigError
    from trader.session import SessionConfig, TradingSession

    with pytest.raises(ConfigError, match=r"venues=.*kraken"):
        TradingSession(config(), SessionConfig(account_id="a"), store=None)  # type: ignore[arg-type]
