from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from cryptolake.tables import FEATURE_COLUMNS, GOLD_FEATURES
from models.dataset import load_training_set
from tests.conftest import settings_in
from tests.models.lake_fixture import gold_frames, write_gold, write_table
from tests.sql.conftest import BAR, T0, hand_made_gold


def _keys(frame: pd.DataFrame) -> list[tuple[str, datetime]]:
    return [(str(s), pd.Timestamp(t).to_pydatetime()) for s, t in zip(frame["symbol"], frame["ts"], strict=True)]


def test_returns_exactly_the_rows_knowable_at_the_cut(hand_lake):
    ts = load_training_set(["BTC/USD", "ETH/USD"], T0, T0 + 3 * BAR, as_of=T0 + 3 * BAR, settings=hand_lake)
    # BTC 01:00 (label at 02:00) and ETH 00:30 (label late, at 05:00) are not yet knowable at 01:30;
    # XRP is not requested; BTC 01:30 is outside [start, end) and has no label.
    assert _keys(ts.frame) == [("BTC/USD", T0), ("BTC/USD", T0 + BAR), ("ETH/USD", T0)]
    assert (ts.frame["label_available_time"] <= T0 + 3 * BAR).all()
    assert ts.frame["next_direction"].tolist() == [1, 0, 1]
    assert ts.frame.loc[0, "rsi_14"] == pytest.approx(0.05)  # feature i=0, column j=5
    assert ts.table_versions == {"gold.features": 0, "gold.labels": 0}
    assert list(ts.frame.columns[:6]) == ["exchange", "symbol", "timeframe", "ts", "close_time", "close"]
    assert set(FEATURE_COLUMNS) <= set(ts.frame.columns)
    assert "bar_date" not in ts.frame.columns


def test_a_later_cut_adds_the_late_label(hand_lake):
    ts = load_training_set(["BTC/USD", "ETH/USD"], T0, T0 + 3 * BAR, as_of=T0 + timedelta(hours=6),
                           settings=hand_lake)
    assert _keys(ts.frame) == [
        ("BTC/USD", T0), ("BTC/USD", T0 + BAR), ("BTC/USD", T0 + 2 * BAR),
        ("ETH/USD", T0), ("ETH/USD", T0 + BAR),
    ]


def test_end_is_exclusive_and_symbols_filter(hand_lake):
    ts = load_training_set(["XRP/USD"], T0, T0 + BAR, as_of=T0 + timedelta(days=1), settings=hand_lake)
    assert _keys(ts.frame) == [("XRP/USD", T0)]
    empty = load_training_set(["XRP/USD"], T0 + BAR, T0 + 2 * BAR, as_of=T0 + timedelta(days=1),
                              settings=hand_lake)
    assert empty.frame.empty


def test_records_the_delta_versions_read(hand_lake):
    features, _ = hand_made_gold()
    assert write_table(GOLD_FEATURES, features, hand_lake) == 1  # a second commit
    ts = load_training_set(["BTC/USD"], T0, T0 + 4 * BAR, as_of=T0 + timedelta(days=1), settings=hand_lake)
    assert ts.table_versions == {"gold.features": 1, "gold.labels": 0}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((["BTC/USD"], T0, T0, T0), "end"),
        (([], T0, T0 + BAR, T0), "symbols"),
        ((["BTC/USD"], datetime(2020, 1, 1), T0 + BAR, T0), "start"),
        (("BTC/USD", T0, T0 + BAR, T0), "symbols"),
    ],
)
def test_bad_arguments_are_named(hand_lake, args, field):
    symbols, start, end, as_of = args
    with pytest.raises(DataValidationError, match=field):
        load_training_set(symbols, start, end, as_of, settings=hand_lake)


def test_real_candles_never_return_a_label_after_the_cut(tmp_path):
    settings = settings_in(tmp_path)
    features, labels = gold_frames(("BTC", "LTC"), rows=700, warmup=100)
    write_gold(settings, features, labels)
    start = features["ts"].min()
    as_of = features["ts"].min() + timedelta(hours=100)  # inside the data: later labels are excluded
    end = features["ts"].max() + BAR
    ts = load_training_set(["BTC/USD", "LTC/USD"], start, end, as_of, settings=settings)
    assert len(ts.frame) > 0
    assert (ts.frame["label_available_time"] <= as_of).all()
    merged = features.merge(labels, on=["exchange", "symbol", "timeframe", "ts"], suffixes=("", "_l"))
    expected = merged[(merged["label_available_time"] <= as_of) & (merged["close_time"] <= as_of)]
    assert len(ts.frame) == len(expected) == 2 * (200 - 1)  # 100h = 200 bars per symbol, last label unknowable
    assert ts.frame[["symbol", "ts"]].equals(ts.frame.sort_values(["symbol", "ts"])[["symbol", "ts"]])
    assert ts.start == start.to_pydatetime() and ts.as_of == as_of


def test_exchange_filter_keeps_one_venue_and_none_means_every_venue(hand_lake):
    every = load_training_set(["BTC/USD", "ETH/USD"], T0, T0 + 3 * BAR, as_of=T0 + 3 * BAR, settings=hand_lake)
    venues = sorted(every.frame["exchange"].unique())
    assert venues  # the hand-made lake has rows
    one = load_training_set(["BTC/USD", "ETH/USD"], T0, T0 + 3 * BAR, as_of=T0 + 3 * BAR, settings=hand_lake,
                            exchanges=[venues[0]])
    assert set(one.frame["exchange"]) == {venues[0]}
    assert len(one.frame) == int((every.frame["exchange"] == venues[0]).sum())
    none = load_training_set(["BTC/USD", "ETH/USD"], T0, T0 + 3 * BAR, as_of=T0 + 3 * BAR, settings=hand_lake,
                             exchanges=["no-such-venue"])
    assert len(none.frame) == 0


def test_with_alt_joins_alt_features_point_in_time_and_fills_only_text_nulls(tmp_path):
    from cryptolake.errors import SchemaMismatchError
    from cryptolake.tables import ALT_FEATURE_COLUMNS, GOLD_ALT_FEATURES

    settings = settings_in(tmp_path)
    features, labels = gold_frames(("BTC",), rows=200, warmup=100)  # real candles, 30m
    write_gold(settings, features, labels)
    start, end = features["ts"].min(), features["ts"].max() + BAR
    with pytest.raises(SchemaMismatchError, match=r"gold\.alt_features"):
        load_training_set(["BTC/USD"], start, end, end, settings=settings, with_alt=True)
    # Hand-made alt rows every 4th bar close; sentiment known only where a document was seen; chain unknown.
    closes = features["close_time"].iloc[::4].reset_index(drop=True)
    alt = pd.DataFrame({"coin": "BTC", "timeframe": "30m", "ts": closes - BAR, "close_time": closes})
    for i, col in enumerate(ALT_FEATURE_COLUMNS):
        alt[col] = float("nan") if col.startswith("chain_") else [float(i + k) for k in range(len(alt))]
    alt.loc[alt.index % 3 == 0, "sent_mean_1h"] = float("nan")  # no document in that hour
    alt["bar_date"] = alt["ts"].dt.date
    write_table(GOLD_ALT_FEATURES, alt, settings)

    plain = load_training_set(["BTC/USD"], start, end, end, settings=settings)
    ts = load_training_set(["BTC/USD"], start, end, end, settings=settings, with_alt=True)
    assert _keys(ts.frame) == _keys(plain.frame)  # the same rows: the join only adds columns
    assert ts.table_versions == {"gold.features": 0, "gold.labels": 0, "gold.alt_features": 0}
    text = [c for c in ALT_FEATURE_COLUMNS if not c.startswith("chain_")]
    assert ts.feature_columns == (*FEATURE_COLUMNS, *text)  # chain columns (all unknown) are left out
    assert ts.frame[[c for c in ALT_FEATURE_COLUMNS if c.startswith("chain_")]].isna().all().all()
    # Each bar gets the latest alt row closing at or before its own close (ASOF), never a later one.
    by_close = alt.set_index("close_time")
    for _, row in ts.frame.iloc[[0, 1, 5, 37]].iterrows():
        seen = by_close[by_close.index <= row["close_time"]].iloc[-1]
        assert row["news_count_1h"] == seen["news_count_1h"]
        assert row["sent_mean_1h"] == (0.0 if pd.isna(seen["sent_mean_1h"]) else seen["sent_mean_1h"])
    assert not ts.frame[text].isna().any().any()
