"""The trade task: the interval's bars and signals traded on paper from Kafka and backtested from the lake.

The account carries over: the run for ``[start, end)`` continues the account saved at ``start`` by the
run before it (cash, positions, resting orders) and saves the account it ends with at ``end``. A
first run (no account saved before ``start``) opens a fresh account; a missing interval in between
is refused rather than silently skipped. Paper and backtest start from the same account and must
agree on every fill and on the account they end with.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from pipeline.backtest import trading_bars, trading_signals
from pipeline.interval import Interval, run_dir
from pipeline.results import ScoreResult, TradeCheck, TradeResult, finite
from trader.backtest import run_backtest
from trader.build import warmup_for
from trader.config import TraderConfig, TraderSettings
from trader.domain import timeframe_delta
from trader.export import export_run
from trader.live import run_live
from trader.report import write_report
from trader.results import RunResult
from trader.snapshot import AccountSnapshot
from trader.store import TradeStore

log = get_logger(__name__)
FILL_COLUMNS = ["id", "client_id", "symbol", "side", "price", "qty", "fee", "ts", "liquidity", "tag"]


def trader_config(settings: Settings) -> TraderConfig:
    """The paper account of the market pipeline: every configured symbol in one account."""
    return TraderConfig(
        exchange=settings.market.exchange,
        symbols=tuple(settings.market.symbols),
        timeframe=settings.market.timeframe,
        price_decimals=8,  # XRP and EOS trade well below 1-10 USD
        max_flat_bars=settings.market.max_flat_bars,
    )


def carried_account(store: TradeStore, account: str, start: datetime) -> AccountSnapshot | None:
    """The account saved at ``start``; None for a first run; an error when intervals are missing."""
    snap = store.account(account, start)
    if snap is not None:
        return snap
    earlier = [t for t in store.account_times(account) if t < start]
    if earlier:
        raise DataValidationError(
            "account", account,
            f"was last saved at {earlier[-1].isoformat()}, not at {start.isoformat()}: run the intervals between first",
        )
    return None


def _same_fills(a: RunResult, b: RunResult) -> bool:
    return bool(a.fills[FILL_COLUMNS].reset_index(drop=True).equals(b.fills[FILL_COLUMNS].reset_index(drop=True)))


def trade(interval: Interval, settings: Settings, scored: ScoreResult) -> TradeResult:
    """Trade the interval on paper (Kafka) and in the backtest (lake); save the account at its end."""
    config = trader_config(settings)
    account_id = f"{settings.pipeline.account}@{config.exchange}"
    store = TradeStore(TraderSettings().resolved_store_url(settings))
    start = max(interval.start, datetime.fromisoformat(scored.score_from))
    account = carried_account(store, account_id, start)
    tf = timeframe_delta(config.timeframe)
    bars = trading_bars(config, start - warmup_for(config) * tf, interval.end, settings)
    in_window = bars[pd.to_datetime(bars.open_time, utc=True) >= pd.Timestamp(start)]
    if in_window.empty:
        raise DataValidationError("bars", 0, f"no bars of {list(config.symbols)} in [{start}, {interval.end})")
    signals = trading_signals(config, scored.model_version, start, interval.end, settings)
    until = pd.Timestamp(in_window.open_time.max()).to_pydatetime()
    tag = f"{account_id}-{interval.tag}"
    version = scored.model_version
    live = run_live(config, settings=settings, run_id=f"paper-{tag}", max_idle_s=60.0, start_time=start,
                    until_bar_time=until, model_version=version, account=account)
    backtest = run_backtest(bars, signals, config, run_id=f"backtest-{tag}", start_time=start,
                            until_bar_time=until, model_version=version, account=account)
    identical = _same_fills(live, backtest)
    ended = [r.account for r in (live, backtest)]
    if not identical or ended[0] is None or ended[1] is None or ended[0].to_json() != ended[1].to_json():
        raise DataValidationError("fills", f"{len(live.fills)} paper vs {len(backtest.fills)} backtest",
                                  "the paper trader and the backtester disagree on the same bars")
    end_account = replace(ended[0], as_of=interval.end)
    store.save_account(account_id, live.run_id, end_account)
    exported = export_run(live.run_id, settings=settings)
    calibration = pd.DataFrame(scored.calibration) if scored.calibration else None
    report = write_report(
        run_dir(settings, interval) / "trading.html", live,
        initial_cash=live.metrics["initial_cash"], calibration=calibration,
        title=f"cryptolake {account_id}: {interval.start:%Y-%m-%d} to {interval.end:%Y-%m-%d}", bars=in_window,
    )
    log.info("trade.done", extra={"run_id": live.run_id, "fills": len(live.fills), "account_as_of": str(interval.end)})
    return TradeResult(
        run_id=live.run_id, account=account_id,
        continued_from=account.as_of.isoformat() if account is not None else None,
        account_as_of=interval.end.isoformat(), metrics=finite(live.metrics),
        stats=finite({k: v for k, v in live.stats.items() if isinstance(v, int | float | str)}),
        by_symbol=finite(live.by_symbol.to_dict(orient="records")),
        check=TradeCheck(len(live.fills), len(backtest.fills), identical, str(in_window.open_time.min()),
                         str(until), int(live.stats.get("skipped_bars", 0))),
        exported=exported, report_path=str(report),
    )
