"""The trade task: the interval's bars and signals traded on paper from Kafka and backtested from the lake.

The account trades one strategy: the regime selector (:mod:`trader.strategies.selector`) over the model's
cost-aware ML signal and the library's bar strategies, with the ML thresholds and the member per regime
chosen on the model's **validation** segment only (:func:`selector_for`, :mod:`research.selection`),
never on the bars it then trades. The result reports the run against an equal-weight buy-and-hold of
the symbols and against holding cash, whatever the outcome, and a tearsheet shows the selector's
choices. The selector gets the lake's ``gold.alt_features`` rows of the interval (warm-up included) as
its point-in-time side input where the lake has them; paper and backtest get the same rows, and the
result's ``strategy.alt`` says what was loaded or why nothing was (:func:`trader.altdata.load_alt`).

The account carries over: the run for ``[start, end)`` continues the account saved at ``start`` by the
run before it (cash, positions, resting orders) and saves the account it ends with at ``end``. A
first run (no account saved before ``start``) opens a fresh account; a missing interval in between
is refused rather than silently skipped. Paper and backtest start from the same account and must
agree on every fill and on the account they end with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from pipeline.backtest import backtest_tearsheet, buy_and_hold, trading_bars, trading_signals
from pipeline.interval import Interval, run_dir
from pipeline.results import ScoreResult, TradeCheck, TradeResult, finite
from research.selection import SelectorChoice, choose_selector
from trader.altdata import load_alt, with_alt
from trader.backtest import run_backtest
from trader.build import warmup_for
from trader.config import TraderConfig, TraderSettings
from trader.domain import timeframe_delta
from trader.export import export_run
from trader.live import run_live
from trader.node import TradingNode
from trader.report import write_report
from trader.results import BacktestResult, RunResult
from trader.snapshot import AccountSnapshot
from trader.store import TradeStore
from trader.strategies.selector import SelectorConfig, SelectorStrategy

log = get_logger(__name__)
FILL_COLUMNS = ["id", "client_id", "symbol", "side", "price", "qty", "fee", "ts", "liquidity", "tag"]
#: Bumped when the choice rule (research.selection) changes, so a cached choice is not reused across it.
RULE_VERSION = 1
#: The library's bar strategies the selector may choose besides the ML signal (default configs).
CANDIDATES: dict[str, dict[str, Any]] = {"swing": {"kind": "swing"}, "day": {"kind": "daytrade"},
                                         "breakout": {"kind": "breakout"}}


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


def valid_bars(bars: pd.DataFrame, max_flat_bars: int | None) -> pd.DataFrame:
    """The bars the node trades: the candle rule's valid ones, without stale flat runs, per symbol in time order."""
    from cryptolake.bars import candle_checks, is_flat, stale_flags

    bars = bars.sort_values(["symbol", "open_time"], kind="stable").reset_index(drop=True)
    cols = [bars[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume")]
    bad = np.zeros(len(bars), dtype=bool)
    for hit in candle_checks(*cols).values():
        bad |= hit
    if max_flat_bars:
        flat = np.asarray(is_flat(*cols), dtype=bool)
        for idx in bars.groupby("symbol").indices.values():
            bad[idx] |= stale_flags(flat[idx], max_flat_bars)
    return bars[~bad].reset_index(drop=True)


def validation_frames(config: TraderConfig, model_version: str, settings: Settings
                      ) -> tuple[dict[str, pd.DataFrame], bool, str]:
    """Per symbol, the valid bars of the model's validation segment with its probabilities there (NaN where it
    gave none), bars before the segment for the indicators' warm-up (``validation`` False); whether the model
    may trade (its gate) and why."""
    from models.dataset import load_training_set
    from pipeline.training import market_registry

    registry = market_registry(settings)
    entry = registry.entry(model_version)
    may_trade, why = entry.may_trade
    vs, ve = (pd.Timestamp(x).to_pydatetime() for x in entry.metadata["segments"]["valid"])
    tf = timeframe_delta(config.timeframe)
    warm = max(warmup_for(config.model_copy(update={"strategies": (SelectorConfig(members=CANDIDATES),)})), 1)
    bars = valid_bars(trading_bars(config, vs - warm * tf, ve, settings), config.max_flat_bars)
    if bars.empty:
        raise DataValidationError("validation bars", 0, f"no valid bars of {list(config.symbols)} in [{vs}, {ve})")
    model = registry.load(model_version)
    feats = load_training_set(config.symbols, vs - (model.window + 1) * tf, ve, entry.trained_at, settings,
                              exchanges=[config.exchange]).frame
    probs = model.predict(feats)
    probs = probs[pd.to_datetime(probs.ts, utc=True) >= pd.Timestamp(vs)][["symbol", "ts", "probability"]]
    bars["open_time"] = pd.to_datetime(bars.open_time, utc=True)
    frame = bars.merge(probs.rename(columns={"ts": "open_time"}), on=["symbol", "open_time"], how="left")
    frame["validation"] = frame.open_time >= pd.Timestamp(vs)
    return ({str(sym): f.reset_index(drop=True) for sym, f in frame.groupby("symbol", sort=False)}, may_trade,
            why)


def selector_for(config: TraderConfig, model_version: str, settings: Settings) -> SelectorChoice:
    """The selector for ``model_version``'s signals, chosen on its validation segment (cached per model,
    candidates and costs: every interval the model trades gets the same strategy)."""
    key = json.dumps({"model": model_version, "candidates": CANDIDATES, "paper": config.paper.model_dump(mode="json"),
                      "symbols": list(config.symbols), "rule": RULE_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = settings.paths.artifacts_dir / "strategies" / f"selector-{digest}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        record = saved["record"]
        return SelectorChoice(SelectorConfig.model_validate(saved["config"]), None, pd.DataFrame(record["scores"]),
                              record["reasons"], record["validation"], saved=record)
    frames, may_trade, why = validation_frames(config, model_version, settings)
    instruments = {i.symbol: i for i in config.instruments}
    choice = choose_selector(frames, {s: instruments[s] for s in frames}, paper=config.paper, members=CANDIDATES,
                             with_ml=may_trade)
    if not may_trade:
        choice.reasons["ml"] = f"not a candidate: the model failed its gate ({why})"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": json.loads(key), "config": choice.config.model_dump(mode="json"),
                                "record": finite(choice.record())}, indent=2, default=str))
    log.info("trade.selector", extra={"model_version": model_version, "by_regime": choice.config.by_regime})
    return choice


def backtest_with_node(bars: pd.DataFrame, signals: pd.DataFrame, config: TraderConfig, *, run_id: str, store_url: str,
                       start_time: datetime, until_bar_time: datetime, model_version: str,
                       account: AccountSnapshot | None) -> tuple[BacktestResult, Any]:
    """:func:`trader.backtest.run_backtest`, also returning the node (the report shows its selector's
    recorded choices)."""
    nodes: list[TradingNode] = []
    result = run_backtest(bars, signals, config, run_id=run_id, store_url=store_url, start_time=start_time,
                          until_bar_time=until_bar_time, model_version=model_version, account=account,
                          inspect=nodes.append)
    return result, nodes[0]


def choices_frame(node: Any) -> pd.DataFrame:
    """Every switch the node's selector made (time, symbol, regime, chosen, previous, reason)."""
    rows = [vars(c) for s in node.strategies if isinstance(s, SelectorStrategy) for c in s.choices]
    return pd.DataFrame(rows, columns=["ts", "symbol", "regime", "chosen", "previous", "reason"])


def benchmarks(result: RunResult, bars: pd.DataFrame, config: TraderConfig) -> dict[str, Any]:
    """The run against an equal-weight buy-and-hold of its symbols (no costs) and against holding cash."""
    eq = result.equity.set_index(pd.to_datetime(result.equity.ts, utc=True)).equity.astype(float)
    hold = buy_and_hold(bars, config, pd.DatetimeIndex(eq.index))
    initial = float(result.metrics["initial_cash"])
    ret = float(eq.iloc[-1] / initial - 1)
    hold_ret = float(hold.iloc[-1] / hold.iloc[0] - 1)
    hold_dd = float(1 - (hold / hold.cummax()).min())  # a positive fraction, as the metrics report it
    return {"strategy_return": ret, "buy_and_hold_return": hold_ret, "cash_return": 0.0,
            "excess_vs_buy_and_hold": ret - hold_ret, "excess_vs_cash": ret,
            "buy_and_hold_max_drawdown": hold_dd, "strategy_max_drawdown": result.metrics.get("max_drawdown"),
            "fees": result.metrics.get("fees_paid", result.metrics.get("fees")), "fills": len(result.fills),
            "beats_buy_and_hold": ret > hold_ret, "beats_cash": ret > 0.0}


def _same_fills(a: RunResult, b: RunResult) -> bool:
    return bool(a.fills[FILL_COLUMNS].reset_index(drop=True).equals(b.fills[FILL_COLUMNS].reset_index(drop=True)))


def trade(interval: Interval, settings: Settings, scored: ScoreResult) -> TradeResult:
    """Trade the interval on paper (Kafka) and in the backtest (lake); save the account at its end."""
    base = trader_config(settings)
    choice = selector_for(base, scored.model_version, settings)
    config = TraderConfig(**{**dict(base), "strategies": (choice.config,)})
    account_id = f"{settings.pipeline.account}@{config.exchange}"
    store_url = TraderSettings().resolved_store_url(settings)
    store = TradeStore(store_url)
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
    first_open = pd.to_datetime(bars.open_time, utc=True).min().to_pydatetime()
    side = load_alt(config, first_open, interval.end, settings).log(f"trade-{tag}")
    config = with_alt(config, side.alt)  # one frozen side input: paper and backtest see the same rows
    version = scored.model_version
    live = run_live(config, settings=settings, run_id=f"paper-{tag}", max_idle_s=60.0, start_time=start,
                    until_bar_time=until, model_version=version, account=account)
    backtest, node = backtest_with_node(bars, signals, config, run_id=f"backtest-{tag}", store_url=store_url,
                                        start_time=start, until_bar_time=until, model_version=version,
                                        account=account)
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
    choices = choices_frame(node)
    versus = benchmarks(live, in_window, config)
    sheet, _ = backtest_tearsheet(run_dir(settings, interval) / "tearsheet.html", backtest, in_window, config,
                                  title=f"{account_id} selector", choices=choices, alt=side.record())
    strategy = {**choice.record(), "alt": side.record(), "switches": len(choices),
                "switches_by_member": {str(k): int(v) for k, v in choices.chosen.value_counts().items()},
                "last_switches": choices.tail(10).astype(str).to_dict(orient="records")}
    log.info("trade.done", extra={"run_id": live.run_id, "fills": len(live.fills), "account_as_of": str(interval.end)})
    return TradeResult(
        run_id=live.run_id, account=account_id,
        continued_from=account.as_of.isoformat() if account is not None else None,
        account_as_of=interval.end.isoformat(), metrics=finite(live.metrics),
        stats=finite({k: v for k, v in live.stats.items() if isinstance(v, int | float | str)}),
        by_symbol=finite(live.by_symbol.to_dict(orient="records")),
        check=TradeCheck(len(live.fills), len(backtest.fills), identical, str(in_window.open_time.min()),
                         str(until), int(live.stats.get("skipped_bars", 0))),
        exported=exported, report_path=str(report), strategy=finite(strategy), benchmarks=finite(versus),
        tearsheet=str(sheet),
    )
