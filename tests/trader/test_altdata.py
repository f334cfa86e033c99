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
