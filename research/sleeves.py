"""The tearsheet of a portfolio of sleeves (:mod:`trader.strategies.sleeves`): the account's equity with the
sleeves' weights and PnL over time, one row per sleeve (venue, instrument, member: capital, PnL, fees,
round trips) and every rebalance with its reason, target weights and traded quantities."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from research.tearsheet import write_tearsheet
from trader.metrics import periods_per_year
from trader.results import RunResult
from trader.strategies.sleeves import SleevesStrategy, rebalances_frame, sleeve_pnl, sleeve_summary, sleeve_weights


def sleeves_tearsheet(path: Path, result: RunResult, strategy: SleevesStrategy, *, prices: Mapping[str, float],
                      timeframe: str, title: str, benchmark: pd.Series | None = None) -> tuple[Path, Path]:
    """Write the run's tearsheet with its sleeves (``prices``: the last prices, for the sleeves' final equity;
    ``benchmark``: an equity curve to compare with, such as a buy-and-hold of the instruments)."""
    eq = result.equity.set_index(pd.to_datetime(result.equity.ts, utc=True)).equity.astype(float)
    trades = result.trades[["symbol", "entry_time", "exit_time", "entry_price", "exit_price", "qty", "pnl", "fees"]]
    tables = {"Sleeves (venue, instrument, member)": sleeve_summary(strategy, prices),
              "Rebalances (target weight per sleeve)": rebalances_frame(strategy)}
    return write_tearsheet(path, title=title, equity=eq, metrics=result.metrics, trades=trades, benchmark=benchmark,
                           weights=sleeve_weights(strategy), sleeve_pnl=sleeve_pnl(strategy), tables=tables,
                           ppy=periods_per_year(timeframe))
