"""Backtests over the lake: any strategy over silver's bars, optionally with a model's signals.

What ``cryptolake backtest`` and the market pipeline's trade task read: bars through
``cryptolake/sql/trading_bars.sql`` (every silver bar, so the trader's candle rule skips and counts
the invalid ones exactly as the Kafka feed does), signals through ``trading_signals.sql`` and, for a
selector, the ``gold.alt_features`` rows of the run's coins through ``trading_alt.sql``
(:func:`trader.altdata.load_alt`; a run without them records why in ``alt``). A config with ``venues``
reads each venue's bars; a ``sleeves`` portfolio also gets its sleeves' tearsheet (``LakeBacktest.sleeves``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.queries import sql_text
from cryptolake.settings import Settings, get_settings
from trader.altdata import load_alt, with_alt
from trader.backtest import run_backtest
from trader.build import warmup_for
from trader.config import TraderConfig
from trader.domain import timeframe_delta
from trader.node import TradingNode
from trader.report import write_report
from trader.results import BacktestResult
from trader.strategies.sleeves import SleevesStrategy


@dataclass(frozen=True)
class LakeBacktest:
    """A finished backtest over the lake and where its report is."""

    result: BacktestResult
    report_path: Path
    tearsheet: Path
    start: datetime
    end: datetime
    bars: int
    alt: dict[str, Any] = field(default_factory=dict)  # the alt side input: status, rows, why (AltLoad.record)
    sleeves: Path | None = None  # a sleeves portfolio's tearsheet (weights and PnL per sleeve over time)


def _query(name: str, params: dict[str, Any], settings: Settings) -> pd.DataFrame:
    from cryptolake import duck

    con = duck.connect(settings)
    try:
        missing = {"trading_bars": "silver_bars", "trading_signals": "gold_signals"}[name]
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if missing not in tables:
            raise DataValidationError("lake", missing, "table not in the lake: run `make main` (or the DAG) first")
        frame: pd.DataFrame = con.execute(sql_text(name), params).df()
    finally:
        con.close()
    return frame


def _by_venue(config: TraderConfig) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for exchange, symbol in config.markets:
        out.setdefault(exchange, []).append(symbol)
    return out


def trading_bars(config: TraderConfig, start: datetime, end: datetime, settings: Settings) -> pd.DataFrame:
    """Every silver bar of the config's series (on each of its venues) opening in ``[start, end)``, in time order."""
    frames = [_query("trading_bars", {"exchange": exchange, "timeframe": config.timeframe, "symbols": symbols,
                                      "start": start, "end": end}, settings)
              for exchange, symbols in _by_venue(config).items()]
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True).sort_values(["open_time", "exchange", "symbol"], ignore_index=True)


def trading_signals(config: TraderConfig, model_version: str, start: datetime, end: datetime,
                    settings: Settings) -> pd.DataFrame:
    """The signals ``model_version`` published for the config's series about bars in ``[start, end)``."""
    frames = [_query("trading_signals", {"exchange": exchange, "timeframe": config.timeframe, "symbols": symbols,
                                         "model_version": model_version, "start": start, "end": end}, settings)
              for exchange, symbols in _by_venue(config).items()]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


_FAR_PAST = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
_FAR_FUTURE = datetime.fromisoformat("2100-01-01T00:00:00+00:00")


def run_lake_backtest(
    config: TraderConfig,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    model_version: str | None = None,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    store_url: str | None = None,
    alt: bool = True,
    inspect: Callable[[TradingNode], None] | None = None,
) -> LakeBacktest:
    """Backtest ``config`` over the lake's bars in ``[start, end)`` (default: all of them); write a report.

    The run is stored in ``store_url`` (default: the trader's store), where the dashboard lists it.
    ``alt``: give the selectors the lake's ``gold.alt_features`` rows of the run (warm-up included) where
    it has them; the result's ``alt`` (and the log line ``trader.alt_side_input``) says what they got.
    ``inspect`` gets the node after the run (what its strategies recorded, such as a selector's choices)."""
    settings = settings or get_settings()
    if start is not None and end is not None and end <= start:
        raise DataValidationError("end", end.isoformat(), f"must be after start {start.isoformat()}")
    tf = timeframe_delta(config.timeframe)
    read_from = _FAR_PAST if start is None else start - warmup_for(config) * tf
    bars = trading_bars(config, read_from, end or _FAR_FUTURE, settings)
    open_times = pd.to_datetime(bars.open_time, utc=True)
    start = start or (open_times.min().to_pydatetime() if len(bars) else _FAR_PAST)
    in_window = bars[open_times >= pd.Timestamp(start)]
    if in_window.empty:
        raise DataValidationError("symbols", list(config.symbols),
                                  f"no {config.timeframe} bars of {config.exchange} in silver.bars from {start}")
    end = end or (pd.Timestamp(in_window.open_time.max()) + tf).to_pydatetime()
    signals = trading_signals(config, model_version, start, end, settings) if model_version else None
    names = "+".join(s.name or s.kind.rsplit(":", 1)[-1] for s in config.strategies)
    run_id = f"backtest-{names}-{start:%Y%m%d%H%M}-{end:%Y%m%d%H%M}"
    side = load_alt(config, open_times.min().to_pydatetime(), end, settings, enabled=alt).log(run_id)
    config = with_alt(config, side.alt)
    until = pd.Timestamp(in_window.open_time.max()).to_pydatetime()
    nodes: list[TradingNode] = []
    result = run_backtest(bars, signals, config, run_id=run_id, start_time=start, until_bar_time=until,
                          model_version=model_version, progress=progress, store_url=store_url,
                          inspect=nodes.append)
    result.stats["alt_status"] = side.status
    if inspect is not None:
        inspect(nodes[0])
    folder = settings.paths.artifacts_dir / "backtests" / run_id
    report = write_report(folder / "report.html", result, initial_cash=config.initial_cash,
                          title=f"cryptolake backtest: {names}", bars=in_window)
    sheet, _ = backtest_tearsheet(folder / "tearsheet.html", result, in_window, config, title=f"{names} backtest",
                                  alt=side.record())
    sleeves = None
    for strategy in nodes[0].strategies:
        if isinstance(strategy, SleevesStrategy):
            from research.sleeves import sleeves_tearsheet  # matplotlib: only for a sleeves run

            eq_index = pd.DatetimeIndex(pd.to_datetime(result.equity.ts, utc=True))
            sleeves, _ = sleeves_tearsheet(folder / f"sleeves-{strategy.name}.html", result, strategy,
                                           prices=nodes[0].portfolio.last_prices, timeframe=config.timeframe,
                                           title=f"cryptolake sleeves: {names}",
                                           benchmark=buy_and_hold(in_window, config, eq_index))
    return LakeBacktest(result, report, sheet, start, end, len(in_window), side.record(), sleeves)


def buy_and_hold(bars: pd.DataFrame, config: TraderConfig, index: pd.DatetimeIndex) -> pd.Series:
    """Equity of ``initial_cash`` split equally over the instruments (each venue's symbols) at their first close
    and held (no costs), at the close times ``index``."""
    key = bars.exchange + ":" + bars.symbol if "exchange" in bars.columns else bars.symbol  # one column per venue
    closes = bars.assign(ts=pd.to_datetime(bars.open_time, utc=True) + timeframe_delta(config.timeframe),
                         key=key).pivot_table(index="ts", columns="key", values="close").reindex(index).ffill().bfill()
    return config.initial_cash * (closes / closes.iloc[0]).mean(axis=1)


def backtest_tearsheet(path: Path, result: BacktestResult, bars: pd.DataFrame, config: TraderConfig, *,
                       title: str, choices: pd.DataFrame | None = None, alt: dict[str, Any] | None = None
                       ) -> tuple[Path, Path]:
    """The run's tearsheet: equity against an equal-weight buy-and-hold of its symbols and cash; with
    ``choices`` (a selector's switches) its strategy timeline and the switches with their reasons; with
    ``alt`` (:meth:`trader.altdata.AltLoad.record`) what alt data the run had, or why none."""
    from research.tearsheet import write_tearsheet
    from trader.metrics import periods_per_year

    eq = result.equity.set_index(pd.to_datetime(result.equity.ts, utc=True))
    hold = buy_and_hold(bars, config, pd.DatetimeIndex(eq.index))
    trades = result.trades[["symbol", "entry_time", "exit_time", "entry_price", "exit_price", "qty", "pnl", "fees"]]
    metrics = {**result.metrics, "buy_and_hold_return": float(hold.iloc[-1] / config.initial_cash - 1),
               "cash_return": 0.0}
    timeline, tables = None, {}
    if choices is not None and len(choices):
        ts = pd.to_datetime(choices.ts, utc=True)
        wide = choices.assign(ts=ts).pivot_table(index="ts", columns="symbol", values="chosen", aggfunc="last")
        timeline = wide.reindex(wide.index.union(eq.index)).ffill().reindex(eq.index).fillna("cash")
        tables = {"Selector switches (regime and reason)": choices}
    if alt is not None:
        tables["Alt data side input (gold.alt_features)"] = pd.DataFrame(
            [{"field": k, "value": str(v)} for k, v in alt.items()])
    return write_tearsheet(path, title=f"cryptolake {title}", equity=eq.equity.astype(float), benchmark=hold,
                           metrics=metrics, trades=trades, exposure=(eq.open_positions > 0).astype(float),
                           timeline=timeline, tables=tables, ppy=periods_per_year(config.timeframe))
