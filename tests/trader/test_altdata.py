"""trader.altdata and the alt rules of trader.regimes on hand-made rows (values SYNTHETIC): when a row
becomes usable, which row a bar sees, what bad rows are told, and the exchange-flow rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from cryptolake.tables import ALT_FEATURE_COLUMNS
from trader.altdata import AltFeatures, coin_of
from trader.regimes import RISK_OFF, FlowRule, RegimeConfig, SentimentRule, alt_regime

T0 = datetime(2022, 1, 10, tzinfo=UTC)
H = timedelta(hours=1)


def rows(*specs: dict[str, Any]) -> pd.DataFrame:
    """Alt rows: every feature null unless given; ``close`` and ``avail`` in hours after T0."""
    out = []
    for s in specs:
        r: dict[str, Any] = dict.fromkeys(ALT_FEATURE_COLUMNS, np.nan)
        r.update({"coin": s.get("coin", "BTC"), "close_time": T0 + s["close"] * H,
                  "available_time": T0 + s.get("avail", s["close"]) * H})
        r.update({k: v for k, v in s.items() if k in ALT_FEATURE_COLUMNS})
        out.append(r)
    return pd.DataFrame(out)


def test_a_row_is_usable_from_its_available_time_on_and_never_before() -> None:
    alt = AltFeatures(rows({"close": 0, "avail": 0.5, "sent_mean_24h": -0.5}))
    avail = T0 + 0.5 * H
    assert alt.at("BTC", avail - timedelta(microseconds=1)) is None
    row = alt.at("BTC", avail)
    assert row is not None and row.available_time == avail and row.close_time == T0
    assert row.get("sent_mean_24h") == -0.5 and row.get("news_count_24h") is None
    assert alt.at("ETH", avail) is None
    with pytest.raises(DataValidationError, match=r"invalid t=.*must be timezone-aware"):
        alt.at("BTC", datetime(2022, 1, 10, 1))


def test_a_late_recomputation_of_an_older_bar_does_not_hide_the_newer_bar() -> None:
    # Bar 0 recomputed, landing at 1.5 h, after bar 1's row (available at its close, 1 h).
    alt = AltFeatures(rows({"close": 0, "avail": 1.5, "sent_mean_24h": -0.9}, {"close": 1, "sent_mean_24h": 0.3}))
    assert alt.at("BTC", T0 + 0.9 * H) is None  # bar 0's only row lands at 1.5 h
    for t in (T0 + H, T0 + 2 * H):
        row = alt.at("BTC", t)
        assert row is not None and row.close_time == T0 + H and row.get("sent_mean_24h") == 0.3


@pytest.mark.parametrize(("frame", "field", "value"), [
    (rows({"close": 1, "avail": 0.5}), "available_time", "2022-01-10 00:30:00+00:00"),
    (rows({"close": 0, "sent_mean_24h": 1.5}), "sent_mean_24h", 1.5),
    (rows({"close": 0, "news_count_1h": -2.0}), "news_count_1h", -2.0),
    (rows({"close": 0}, {"close": 0, "avail": 1}), "close_time", "2022-01-10 00:00:00+00:00"),
    (rows({"close": 0}).assign(close_time=datetime(2022, 1, 10)), "close_time", pd.Timestamp(2022, 1, 10)),
    (rows({"close": 0}).drop(columns="sent_mean_4h"), "alt_features", "sent_mean_4h"),
    (rows({"close": 0}, {"close": 1}).assign(timeframe=["1h", "4h"]), "timeframe", ["1h", "4h"]),
], ids=["look-ahead", "sentiment-range", "negative-count", "duplicate", "naive", "missing", "timeframes"])
def test_bad_rows_are_rejected_naming_the_field_and_the_value(frame: pd.DataFrame, field: str, value: Any) -> None:
    with pytest.raises(DataValidationError) as err:
        AltFeatures(frame)
    assert (err.value.field, err.value.value) == (field, value)


def test_the_coin_of_a_symbol() -> None:
    assert [coin_of(s) for s in ("BTC/USD", "btc-perp", "ETH:USDT")] == ["BTC", "BTC", "ETH"]
    with pytest.raises(DataValidationError, match="symbol"):
        coin_of("/USD")


def test_the_flow_rule_fires_at_its_coins_threshold_and_only_on_fresh_chain_data() -> None:
    cfg = RegimeConfig(flows=FlowRule(min_netflow={"btc": 500.0}))
    alt = AltFeatures(rows({"close": 0, "chain_exchange_netflow_24h": 500.0},
                           {"close": 1, "chain_exchange_netflow_24h": 499.0},
                           {"close": 2},
                           {"coin": "ETH", "close": 0, "chain_exchange_netflow_24h": 1e6}))
    assert alt_regime(cfg, alt.at("BTC", T0), T0) == (RISK_OFF, "exchange netflow +500.00 BTC >= 500 over 24 h")
    assert alt_regime(cfg, alt.at("BTC", T0 + H), T0 + H) == (None, "exchange netflow +499.00 BTC < 500 over 24 h")
    assert alt_regime(cfg, alt.at("BTC", T0 + 2 * H), T0 + 2 * H) == (None, "exchange netflow: no chain data over 24 h")
    assert alt_regime(cfg, alt.at("ETH", T0), T0) == (None, "no alt rule for ETH")  # no ETH threshold
    stale = alt_regime(cfg, alt.at("BTC", T0), T0 + 3 * H)
    assert stale[0] is None and stale[1] == "no alt data (newest row 2022-01-10 00:00, 180 min old > 120 min)"


def test_either_rule_firing_sets_the_regime_and_both_are_reported() -> None:
    cfg = RegimeConfig(sentiment=SentimentRule(window="4h", min_docs=2), flows=FlowRule(min_netflow={"BTC": 10.0}))
    alt = AltFeatures(rows({"close": 0, "news_count_4h": 1.0, "post_count_4h": 1.0, "sent_mean_4h": -0.3,
                            "chain_exchange_netflow_24h": 5.0}))
    assert alt_regime(cfg, alt.at("BTC", T0), T0) == (
        RISK_OFF, "sentiment -0.30 <= -0.25 over 4 h (2 docs); exchange netflow +5.00 BTC < 10 over 24 h")


def test_a_rule_must_name_a_known_regime_and_a_positive_inflow() -> None:
    with pytest.raises(ValueError, match="'panic' is not one of"):
        SentimentRule(regime="panic")
    with pytest.raises(ValueError, match=r"min_netflow\['BTC'\] = -1.0: must be > 0"):
        FlowRule(min_netflow={"BTC": -1.0})


# --- the lake's rows as the side input: load_alt, LakeAltFeed, lake_alt_side_input (values SYNTHETIC) -----------
def selector_trader(*symbols: str, strategy: dict[str, Any] | None = None) -> Any:
    from trader.config import TraderConfig

    return TraderConfig.model_validate({"exchange": "ftx", "symbols": symbols or ("BTC-PERP",), "timeframe": "1h",
                                        "strategies": (strategy or {"kind": "selector"},)})


def lake_rows(*specs: dict[str, Any]) -> pd.DataFrame:
    """gold.alt_features-shaped rows (``timeframe`` default 1h) of :func:`rows` (SYNTHETIC values)."""
    frame = rows(*specs).drop(columns="available_time")
    tf = [s.get("timeframe", "1h") for s in specs]
    frame["timeframe"] = tf
    frame["ts"] = frame.close_time - pd.to_timedelta(tf)
    frame["bar_date"] = frame.ts.dt.date
    return frame


def write_alt(settings: Any, frame: pd.DataFrame) -> None:
    from cryptolake.tables import GOLD_ALT_FEATURES
    from tests.models.lake_fixture import write_table

    write_table(GOLD_ALT_FEATURES, frame, settings)


@pytest.fixture
def empty_lake(tmp_path) -> Any:
    from tests.conftest import settings_in

    return settings_in(tmp_path)


def test_load_alt_without_a_selector_or_switched_off_does_not_read_the_lake(monkeypatch, empty_lake) -> None:
    import trader.altdata as altdata

    monkeypatch.setattr(altdata, "lake_alt_rows", lambda *a, **k: pytest.fail("the lake was read"))
    unused = altdata.load_alt(selector_trader(strategy={"kind": "swing"}), T0, T0 + H, empty_lake)
    assert (unused.status, unused.alt, unused.rows) == ("unused", None, 0)
    off = altdata.load_alt(selector_trader("BTC/USD", "ETH-PERP"), T0, T0 + H, empty_lake, enabled=False)
    assert (off.status, off.alt) == ("off", None)
    assert off.record() == {"status": "off", "rows": 0, "coins": ["BTC", "ETH"], "timeframe": "1h",
                            "detail": "alt data switched off (--no-alt)", "start": T0.isoformat(),
                            "end": (T0 + H).isoformat()}


def test_load_alt_says_missing_table_when_the_lake_has_no_gold_alt_features(empty_lake) -> None:
    from trader.altdata import load_alt

    side = load_alt(selector_trader(), T0, T0 + 5 * H, empty_lake)
    assert (side.status, side.alt, side.rows) == ("missing_table", None, 0)
    assert "gold.alt_features is not in the lake" in side.detail


def test_load_alt_reads_the_coins_timeframe_and_window_start_exclusive_end_inclusive(empty_lake) -> None:
    from trader.altdata import load_alt

    write_alt(empty_lake, lake_rows(
        {"close": 0, "sent_mean_24h": 0.1},                        # at start: excluded (start, end]
        {"close": 1, "sent_mean_24h": 0.2}, {"close": 2, "sent_mean_24h": 0.3},
        {"close": 3, "sent_mean_24h": -0.4},                       # at end: included
        {"close": 4, "sent_mean_24h": 0.5},                        # after end
        {"close": 2, "coin": "ETH", "sent_mean_24h": 0.6},         # another coin
        {"close": 2, "coin": "XRP", "sent_mean_24h": 0.7},
        {"close": 4, "timeframe": "4h", "sent_mean_24h": 0.8}))    # another timeframe
    side = load_alt(selector_trader("BTC/USD", "ETH-PERP"), T0, T0 + 3 * H, empty_lake)
    assert side.status == "loaded" and side.rows == 4 and side.alt is not None
    assert side.alt.counts() == {"BTC": 3, "ETH": 1}
    assert side.alt.span() == (T0 + H, T0 + 3 * H)
    row = side.alt.at("BTC", T0 + 3 * H)
    assert row is not None and row.get("sent_mean_24h") == -0.4 and row.available_time == T0 + 3 * H
    assert side.alt.at("BTC", T0 + H - timedelta(microseconds=1)) is None  # the start row was not read
    record = side.record()
    assert record["by_coin"] == {"BTC": 3, "ETH": 1} and record["span"] == [(T0 + H).isoformat(),
                                                                            (T0 + 3 * H).isoformat()]
    # Nothing of the coins, timeframe and window: no_rows (the table is there).
    for trader, lo, hi in ((selector_trader("LTC/USD"), T0, T0 + 9 * H), (selector_trader(), T0 + 4 * H, T0 + 9 * H),
                           (selector_trader(), T0 - 5 * H, T0 - timedelta(microseconds=1))):
        empty = load_alt(trader, lo, hi, empty_lake)
        assert (empty.status, empty.alt, empty.rows) == ("no_rows", None, 0), (trader.symbols, lo)
    assert load_alt(selector_trader(), T0 - 5 * H, T0, empty_lake).rows == 1  # the end is inclusive


class Clock:
    """An injected wall clock and monotonic clock, moved by hand (no sleeps)."""

    def __init__(self, now: datetime) -> None:
        self.now, self.mono = now, 0.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


class Table:
    """A gold.alt_features stand-in that gains rows: ``fetch`` answers as lake_alt_rows does."""

    def __init__(self, frame: pd.DataFrame | None) -> None:
        self.frame, self.calls = frame, []

    def fetch(self, lo: datetime, hi: datetime) -> pd.DataFrame | None:
        self.calls.append((lo, hi))
        if self.frame is None:
            return None
        return self.frame[(self.frame.close_time > lo) & (self.frame.close_time <= hi)].reset_index(drop=True)


def test_a_row_the_feed_sees_late_is_usable_from_when_it_was_seen_not_from_its_close() -> None:
    from trader.altdata import LakeAltFeed

    clock = Clock(T0 + 3 * H + timedelta(minutes=5))
    table = Table(lake_rows({"close": 1, "sent_mean_24h": 0.1}, {"close": 2, "sent_mean_24h": 0.2}))
    feed = LakeAltFeed(table.fetch, history=6 * H, refresh_s=60, clock=lambda: clock.now,
                       monotonic=lambda: clock.mono)
    assert table.calls == [(clock.now - 6 * H, clock.now)] and feed.rows == 2 and feed.table_found
    row = feed.at("BTC", T0 + 2 * H)  # rows there at the first read: from their bar's close
    assert row is not None and row.available_time == T0 + 2 * H and row.get("sent_mean_24h") == 0.2
    # The alt lane lands bar 3's row (closed at 3 h) after the first read; the feed sees it at 3 h 06 min.
    table.frame = pd.concat([table.frame, lake_rows({"close": 3, "sent_mean_24h": -0.9})], ignore_index=True)
    clock.advance(59)
    assert feed.at("BTC", T0 + 4 * H).get("sent_mean_24h") == 0.2  # type: ignore[union-attr]
    assert len(table.calls) == 1  # 59 s < refresh_s: not re-read
    clock.advance(1)
    seen = clock.now
    late = feed.at("BTC", seen)  # 60 s: re-read, the row is known from now on
    assert len(table.calls) == 2 and feed.refreshes == 1 and feed.rows == 3
    assert late is not None and late.close_time == T0 + 3 * H and late.available_time == seen
    assert late.get("sent_mean_24h") == -0.9
    before = feed.at("BTC", seen - timedelta(microseconds=1))  # a decision before it was seen: the old row
    assert before is not None and before.close_time == T0 + 2 * H and before.get("sent_mean_24h") == 0.2
    # A recomputation of a row already seen does not rewrite it; nothing new: no refresh counted.
    table.frame.loc[table.frame.close_time == T0 + 3 * H, "sent_mean_24h"] = 0.9
    clock.advance(60)
    assert feed.refresh() == 0 and feed.refreshes == 1
    assert feed.at("BTC", clock.now).get("sent_mean_24h") == -0.9  # type: ignore[union-attr]


def test_lake_alt_side_input_statuses_and_the_feed_it_attaches(empty_lake) -> None:
    from trader.altdata import LakeAltFeed, lake_alt_side_input

    clock = Clock(T0 + 10 * H)
    kw: dict[str, Any] = {"refresh_s": 30.0, "clock": lambda: clock.now, "monotonic": lambda: clock.mono}
    swing = selector_trader(strategy={"kind": "swing"})
    assert lake_alt_side_input(swing, enabled=True, settings=empty_lake, **kw) == (
        swing, lake_alt_side_input(swing, enabled=True, settings=empty_lake, **kw)[1])
    cfg, side = lake_alt_side_input(selector_trader(), enabled=False, settings=empty_lake, **kw)
    assert side.status == "off" and cfg.strategies[0].alt is None  # type: ignore[attr-defined]
    assert side.record()["start"] == (T0 + 10 * H).isoformat()  # the injected clock, not the wall's
    cfg, side = lake_alt_side_input(selector_trader(), enabled=True, settings=empty_lake, **kw)
    feed = cfg.strategies[0].alt  # type: ignore[attr-defined]
    assert side.status == "missing_table" and isinstance(feed, LakeAltFeed) and not feed.table_found
    assert side.record()["refresh_s"] == 30.0 and side.record()["history_s"] == (196 + 2) * 3600
    # The table appears with a row: the attached feed picks it up at its next refresh, from then on.
    write_alt(empty_lake, lake_rows({"close": 9.5, "sent_mean_24h": -0.3}))
    clock.advance(30)
    row = feed.at("BTC", clock.now)
    assert row is not None and row.available_time == clock.now and feed.table_found
    assert feed.at("BTC", clock.now - timedelta(seconds=1)) is None
    # Now the lake has rows at start: loaded, read from the Delta table, usable from their close.
    cfg, side = lake_alt_side_input(selector_trader(), enabled=True, settings=empty_lake, **kw)
    assert side.status == "loaded" and side.rows == 1 and side.record()["by_coin"] == {"BTC": 1}
    assert cfg.strategies[0].alt.at("BTC", T0 + 9.5 * H).get("sent_mean_24h") == -0.3  # type: ignore[attr-defined]
    cfg, side = lake_alt_side_input(selector_trader("ETH/USD"), enabled=True, settings=empty_lake, **kw)
    assert side.status == "no_rows" and side.alt is None and isinstance(cfg.strategies[0].alt, LakeAltFeed)  # type: ignore[attr-defined]
