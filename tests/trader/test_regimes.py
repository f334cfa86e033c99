"""Sentiment in the regimes on real data: January 2022 BTC perpetual bars (1 h) and that month's real
headlines and tweets, scored as research/alt_ablation.py scores them; point in time, no leakage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from research.alt_ablation import BARS_FILE, END, START, load_documents
from spark_jobs.gold.alt_features import compute_alt_features
from trader.altdata import AltFeatures
from trader.build import build_node
from trader.config import TraderConfig
from trader.domain import Instrument
from trader.feeds.frame import FrameFeed
from trader.filters import EventFilter
from trader.regimes import RISK_OFF, RegimeConfig, SentimentRule
from trader.strategies.selector import CASH, SelectorConfig, SelectorStrategy, trace_choices

INST = Instrument("ftx", "BTC-PERP")
HOUR = pd.Timedelta(hours=1)
RULE = SentimentRule()  # the defaults (calibrated on 2021-10-13 to 2021-12-31, not on this month)
# The defaults (the 5th percentile) fire in one hour of January 2022 only, too few for the leakage tests
# to see alt data matter; WIDE is the 10th percentile (-0.152) of the same hours of the same earlier
# period (24 h mean sentiment of BTC's hours with >= 5 documents), still not fitted on this month.
WIDE = SentimentRule(max_sentiment=-0.15)
# No price regime maps to cash, so every stay in cash is the sentiment rule's.
BY_REGIME = {"trend": "swing", "range": "day", "volatile": "swing", RISK_OFF: CASH}


@pytest.fixture(scope="module")
def bars(shared_data: Path) -> pd.DataFrame:
    """The real 1-minute BTC-PERP bars of January 2022, resampled to 1 h (a bucket needs one minute)."""
    raw = pd.read_csv(shared_data / BARS_FILE)
    raw["open_time"] = pd.to_datetime(raw["timestamp"], utc=True)
    raw = raw[(raw.open_time >= START) & (raw.open_time < END)].drop_duplicates("open_time")
    out = raw.set_index("open_time").resample("1h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna().reset_index()
    return out


@pytest.fixture(scope="module")
def docs(shared_data: Path) -> pd.DataFrame:
    return load_documents(shared_data)


@pytest.fixture(scope="module")
def alt(bars: pd.DataFrame, docs: pd.DataFrame) -> pd.DataFrame:
    """gold.alt_features of the bars, from the lake's own SQL over the real documents."""
    grid = pd.DataFrame({"coin": "BTC", "timeframe": "1h", "ts": bars.open_time, "close_time": bars.open_time + HOUR})
    con = duckdb.connect()
    try:
        return compute_alt_features(con, grid, docs)
    finally:
        con.close()


def config(alt_rows: pd.DataFrame | None, rule: SentimentRule | None = RULE, **over: Any) -> SelectorConfig:
    regime = RegimeConfig(sentiment=rule)
    return SelectorConfig(**{"confirm_bars": 1, "by_regime": BY_REGIME, "regime": regime,
                             "alt": AltFeatures(alt_rows) if alt_rows is not None else None, **over})


def held(choices: pd.DataFrame, closes: pd.Series) -> pd.Series:
    """The member held after each bar close, from the recorded switches."""
    ts = pd.to_datetime(choices.ts, utc=True)
    out = []
    j = -1
    for t in closes:
        while j + 1 < len(ts) and ts.iloc[j + 1] <= t:
            j += 1
        out.append(choices.chosen.iloc[j] if j >= 0 else choices.previous.iloc[0])
    return pd.Series(out, index=closes)


@pytest.mark.parametrize(("rule", "min_fires", "min_to_cash"), [(RULE, 1, 1), (WIDE, 20, 3)], ids=["defaults", "wide"])
def test_sentiment_sends_the_selector_to_cash_exactly_at_the_bars_the_documents_say(
        bars: pd.DataFrame, docs: pd.DataFrame, alt: pd.DataFrame, rule: SentimentRule, min_fires: int,
        min_to_cash: int) -> None:
    cfg = config(alt, rule)
    choices = trace_choices(cfg, bars, INST, "1h")
    first = SelectorStrategy(cfg, [INST]).history_bars - 1  # the first bar decided
    closes = (bars.open_time + HOUR).iloc[first:].reset_index(drop=True)
    # Independently of the SQL: BTC documents available in (T - 24 h, T], sentiment in units of 1e-4.
    btc = docs[docs.coins.map(lambda c: "BTC" in list(c))].drop_duplicates("doc_key")
    avail = pd.to_datetime(btc.available_time, utc=True).to_numpy(dtype="datetime64[ns]")
    s = np.round(btc.sentiment.to_numpy() * 10000)
    fires_at: list[bool] = []
    measured: dict[pd.Timestamp, tuple[float, int]] = {}
    for t in closes:
        lo, hi = (t - 24 * HOUR).tz_convert(None).to_datetime64(), t.tz_convert(None).to_datetime64()
        inside = (avail > lo) & (avail <= hi)
        n, mean = int(inside.sum()), (s[inside].sum() / inside.sum() / 10000 if inside.any() else np.nan)
        fires = n >= rule.min_docs and mean <= rule.max_sentiment
        fires_at.append(bool(fires))
        measured[t] = (mean, n)
    expected = pd.Series(fires_at, index=closes)
    in_cash = held(choices, closes) == CASH
    assert expected.sum() >= min_fires  # measured: 1 bar (defaults), 38 bars in 5 runs (WIDE)
    assert (in_cash == expected).all(), list(closes[in_cash != expected])
    to_cash = choices[choices.chosen == CASH]
    assert len(to_cash) >= min_to_cash and (to_cash.regime == RISK_OFF).all()
    for _, c in to_cash.iterrows():
        mean, n = measured[pd.Timestamp(c.ts)]
        assert c.reason.startswith(f"sentiment {mean:+.2f} <= {rule.max_sentiment:g} over 24 h ({n} docs) overrides "
                                   ), c.reason
    # The same bars without the rule never hold cash: the switches are the sentiment's.
    price_only = trace_choices(config(alt, rule=None), bars, INST, "1h")
    assert (held(price_only, closes) != CASH).all()


def test_truncating_bars_and_alt_rows_after_t_leaves_every_choice_at_t_unchanged(
        bars: pd.DataFrame, alt: pd.DataFrame) -> None:
    full = trace_choices(config(alt, WIDE, confirm_bars=2), bars, INST, "1h")
    assert (full.regime == RISK_OFF).any()
    for cut in (300, 450, 600, 700):
        t = bars.open_time.iloc[cut - 1] + HOUR
        part = trace_choices(config(alt[alt.close_time <= t], WIDE, confirm_bars=2), bars.iloc[:cut], INST, "1h")
        assert part.equals(full[full.ts <= t].reset_index(drop=True))


def test_an_alt_row_available_after_t_cannot_change_the_choice_at_t(bars: pd.DataFrame, alt: pd.DataFrame) -> None:
    full = trace_choices(config(alt, WIDE), bars, INST, "1h")
    t = pd.Timestamp(full[full.chosen == CASH].ts.iloc[0])
    # Late rows: alt rows that land after t, all saying "very negative": rows about bars closing before t
    # (a late recomputation, available 30 min after t), and rows of the bars after t (available at their
    # close or, if that is earlier, with the recomputation: never before their close, which AltFeatures
    # rejects as look-ahead); the rest of the lake's rows cut at t.
    late = alt[(alt.close_time > t - 6 * HOUR) & (alt.close_time <= t + 24 * HOUR)].copy()
    late["close_time"] = late.close_time + pd.Timedelta(minutes=1)
    recomputed = t + pd.Timedelta(minutes=30) + pd.to_timedelta(np.arange(len(late)), unit="s")
    late["available_time"] = np.maximum(late.close_time, recomputed)
    assert (late.available_time > t).all() and (late.close_time < t).sum() == 5
    late = late.assign(sent_mean_24h=-1.0, news_count_24h=99.0)
    kept = alt[alt.close_time <= t].assign(available_time=lambda f: f.close_time)
    tampered = trace_choices(config(pd.concat([kept, late], ignore_index=True), WIDE), bars, INST, "1h")
    assert tampered[tampered.ts <= t].equals(full[full.ts <= t].reset_index(drop=True))
    assert not tampered[tampered.ts > t].equals(full[full.ts > t].reset_index(drop=True))  # they did matter later


def test_without_alt_data_the_choices_are_todays(bars: pd.DataFrame, alt: pd.DataFrame) -> None:
    today = trace_choices(SelectorConfig(), bars, INST, "1h")
    assert len(today) > 10
    # Alt rows present but no rule configured: identical, reasons included.
    assert trace_choices(SelectorConfig(alt=AltFeatures(alt)), bars, INST, "1h").equals(today)
    # A rule configured but no alt data: the same switches; the reason says so.
    blind = trace_choices(SelectorConfig(regime=RegimeConfig(sentiment=RULE)), bars, INST, "1h")
    cols = ["ts", "symbol", "regime", "chosen", "previous"]
    assert blind[cols].equals(today[cols])
    assert (blind.reason.str.replace("; no alt data for", " for") == today.reason).all()
    # Rows that end before the bars: stale, never imputed as neutral.
    early = alt[alt.close_time <= alt.close_time.iloc[200]]
    stale = trace_choices(SelectorConfig(regime=RegimeConfig(sentiment=RULE), alt=AltFeatures(early)),
                          bars, INST, "1h")
    late = stale[stale.ts > early.close_time.max() + 3 * HOUR]
    assert len(late) and late.reason.str.contains(r"; no alt data \(newest row .* min old > 120 min\)").all()


# 305: the first decision (bar 500) falls in a negative-sentiment run (bars 490-508 under WIDE) that began in
# the warm-up replay, which must read the alt rows of its bars' closes as well.
@pytest.mark.parametrize("start", [0, 305], ids=["whole-month", "run-in-warm-up"])
def test_the_node_and_trace_choices_make_the_same_choices_with_alt_data(bars: pd.DataFrame, alt: pd.DataFrame,
                                                                        start: int) -> None:
    cfg = config(alt, WIDE, confirm_bars=2)
    bars = bars.iloc[start:].reset_index(drop=True)
    frame = bars.assign(exchange=INST.exchange, symbol=INST.symbol, timeframe="1h")
    tc = TraderConfig(exchange=INST.exchange, symbols=(INST.symbol,), timeframe="1h", strategies=(cfg,))
    node = build_node(tc)
    node.run(FrameFeed(frame, None, tc, EventFilter.for_run(tc, warmup_bars=node.warmup_bars)))
    sel = node.strategies[0]
    assert isinstance(sel, SelectorStrategy)
    got = pd.DataFrame([vars(c) for c in sel.choices])
    expected = trace_choices(cfg, bars, INST, "1h")
    assert (got.regime == RISK_OFF).any()
    if start:  # the replay ended in cash: the first recorded switch leaves it
        assert got.previous.iloc[0] == CASH and got.ts.iloc[0] > bars.open_time.iloc[195] + HOUR
    assert got.astype(str).equals(expected.astype(str))
    assert "alt" not in tc.model_dump(mode="json")["strategies"][0]  # a side input, not recorded config
