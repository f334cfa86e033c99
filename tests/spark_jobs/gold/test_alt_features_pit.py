"""Acceptance: real BTC 1-minute bars of January 2022 joined point-in-time with the real
headlines and tweets of that month (DuckDB ASOF join of cryptolake/sql/alt_training_set.sql)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from cryptolake.schemas import NewsArticleV1, SocialPostV1
from spark_jobs.gold.alt_features import SQL_FEATURES, compute_alt_features
from spark_jobs.silver import documents_nlp as nlp
from tests.spark_jobs.gold.test_alt_features import replayed_documents


@pytest.fixture(scope="module")
def bars(shared_data: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "market" / "ohlcv_1m" / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv.gz")
    ts = pd.to_datetime(df["timestamp"], utc=True)  # the bar's open time
    out = pd.DataFrame({"coin": "BTC", "timeframe": "1m", "ts": ts,
                        "close_time": ts + pd.Timedelta(minutes=1)})
    out = out[(out.ts >= "2022-01-01") & (out.ts < "2022-02-01")]
    # The Jan-2022 tweets are Ethereum tweets: evaluate ETH features on the same 1-minute bar clock
    # (alt features depend only on bar close times, not on prices).
    return pd.concat([out, out.assign(coin="ETH")], ignore_index=True)


@pytest.fixture(scope="module")
def docs(shared_data: Path) -> pd.DataFrame:
    rows = []
    for m in replayed_documents(shared_data):
        if isinstance(m, NewsArticleV1):
            text, kind, key = f"{m.title}. {m.body}", "news", m.key()
        else:
            assert isinstance(m, SocialPostV1)
            text, kind, key = m.text, "social", m.key()
        rows.append({"doc_key": key, "kind": kind, "coins": nlp.coins_mentioned(text),
                     "available_time": pd.Timestamp(m.available_time, unit="ms", tz="UTC"),
                     "sentiment": nlp.sentiment(nlp.clean_text(text))})
    return pd.DataFrame(rows)


def _run(bars: pd.DataFrame, docs: pd.DataFrame) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        return compute_alt_features(con, bars, docs).set_index(["coin", "close_time"])[list(SQL_FEATURES)]
    finally:
        con.close()


def _diff_mask(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    a, b = a.align(b, join="inner")
    same = (a == b) | (a.isna() & b.isna())
    return ~same.all(axis=1)


def test_real_headline_changes_only_bars_closing_after_it(bars: pd.DataFrame, docs: pd.DataFrame) -> None:
    btc_news = docs[(docs.kind == "news") & docs.coins.map(lambda c: "BTC" in c)
                    & (docs.available_time >= "2022-01-10") & (docs.available_time < "2022-01-11")]
    assert len(btc_news) > 5
    headline = btc_news.sort_values("available_time").iloc[0]
    published = headline.available_time - pd.Timedelta(minutes=1)  # the file's minute stamp
    full = _run(bars, docs)
    without = _run(bars, docs[docs.doc_key != headline.doc_key])
    changed = _diff_mask(full, without)
    assert not changed.loc["ETH"].any() or "ETH" in headline.coins
    changed_times = changed.loc["BTC"][changed.loc["BTC"]].index
    assert len(changed_times) > 0
    assert changed_times.min() == headline.available_time  # first bar closing after the stamped minute
    assert (changed_times > published).all()
    # 24 h windows; sent_vol_24h uses the clock hour of the headline, which ends up to 1 h later
    assert (changed_times <= headline.available_time + pd.Timedelta(hours=25)).all()
    at = full.loc[("BTC", headline.available_time)]
    before = full.loc[("BTC", headline.available_time - pd.Timedelta(minutes=1))]
    assert at.news_count_1h >= before.news_count_1h + 1


def test_truncated_histories_give_zero_differences_before_each_cutoff(bars: pd.DataFrame,
                                                                      docs: pd.DataFrame) -> None:
    full = _run(bars, docs)
    assert full.news_count_24h.max() > 0 and full.post_count_24h.max() > 0
    assert full.sent_mean_24h.dropna().between(-1, 1).all()
    rng = np.random.default_rng(7)
    lo, hi = bars.close_time.min().value, bars.close_time.max().value
    for cut_ns in sorted(rng.integers(lo, hi, size=5)):
        cut = pd.Timestamp(int(cut_ns), tz="UTC")
        part = _run(bars[bars.close_time <= cut], docs[docs.available_time <= cut])
        ref = full[full.index.get_level_values("close_time") <= cut]
        assert len(part) == len(ref)
        assert int(_diff_mask(part, ref).sum()) == 0, f"leak before cut-off {cut}"
