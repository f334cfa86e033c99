"""cryptolake/sql/alt_training_set.sql: the gold training set (training_set.sql, reused verbatim) + PIT alt features.

Gold rows are the SQL tests' SYNTHETIC hand-made gold tables; documents are SYNTHETIC (hand-made
timestamps and scores, several sharing one timestamp) so every expected value is known by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from cryptolake.queries import alt_training_set_sql, sql_text
from cryptolake.tables import ALT_FEATURE_COLUMNS
from spark_jobs.gold.alt_features import alt_training_set, compute_alt_features
from tests.sql.conftest import BAR, T0, hand_made_gold

AS_OF = T0 + timedelta(days=1)


def _docs() -> pd.DataFrame:
    """SYNTHETIC documents: three BTC docs share 00:10, one sits exactly on the 00:30 close, one ETH doc."""
    t = pd.Timestamp(T0)
    rows = [
        ("n1", "news", ["BTC"], t + pd.Timedelta(minutes=10), 0.5),
        ("n2", "news", ["BTC"], t + pd.Timedelta(minutes=10), -0.25),
        ("p1", "social", ["BTC", "ETH"], t + pd.Timedelta(minutes=10), 0.75),
        ("n3", "news", ["BTC"], t + pd.Timedelta(minutes=30), 0.1),  # on the close of the 00:00 bar
        ("n4", "news", ["BTC"], t + pd.Timedelta(minutes=31), -0.9),  # after it: only later bars
    ]
    return pd.DataFrame(rows, columns=["doc_key", "kind", "coins", "available_time", "sentiment"])


def _connection(docs: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    features, labels = hand_made_gold()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("gold_features", features)
    con.register("gold_labels", labels)
    bars = features.assign(coin=features.symbol.str.split("/").str[0])[["coin", "timeframe", "ts", "close_time"]]
    alt = compute_alt_features(con, bars, docs)
    alt["bar_date"] = alt.ts.dt.date
    con.register("gold_alt_features", alt)
    return con


def _run(docs: pd.DataFrame) -> pd.DataFrame:
    con = _connection(docs)
    try:
        return alt_training_set(con, ["BTC/USD", "ETH/USD", "XRP/USD"], T0, T0 + timedelta(days=1), AS_OF)
    finally:
        con.close()


def test_training_rows_are_the_base_query_plus_point_in_time_alt_features() -> None:
    out = _run(_docs())
    con = _connection(_docs())
    base = con.execute(sql_text("training_set"), {
        "symbols": ["BTC/USD", "ETH/USD", "XRP/USD"], "exchanges": None, "start": T0, "end": T0 + timedelta(days=1),
        "as_of": AS_OF}).df()
    con.close()
    assert out.columns.tolist() == [*base.columns, *ALT_FEATURE_COLUMNS]
    pd.testing.assert_frame_equal(out[base.columns.tolist()], base)
    btc = out[out.symbol == "BTC/USD"].set_index("ts")
    # bar 00:00 closes at 00:30: n1, n2, p1 (00:10) and n3 (exactly 00:30); n4 (00:31) is not yet known
    first = btc.loc[pd.Timestamp(T0)]
    assert (first.news_count_1h, first.post_count_1h) == (3.0, 1.0)
    assert first.sent_mean_1h == pytest.approx((0.5 - 0.25 + 0.75 + 0.1) / 4)
    second = btc.loc[pd.Timestamp(T0 + BAR)]  # closes 01:00: every BTC doc
    assert (second.news_count_1h, second.post_count_1h) == (4.0, 1.0)
    assert second.sent_mean_1h == pytest.approx((0.5 - 0.25 + 0.75 + 0.1 - 0.9) / 5)
    eth = out[out.symbol == "ETH/USD"]
    assert eth.post_count_1h.tolist() == [1.0, 1.0] and eth.news_count_1h.tolist() == [0.0, 0.0]
    xrp = out[out.symbol == "XRP/USD"]
    assert xrp.news_count_24h.tolist() == [0.0] and xrp.sent_mean_24h.isna().all()


def test_duplicate_timestamps_give_deterministic_output_whatever_the_input_order() -> None:
    docs = _docs()
    ref = _run(docs)
    for seed in range(4):
        shuffled = docs.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        pd.testing.assert_frame_equal(_run(shuffled), ref, check_exact=True)
    # the same document delivered twice (same doc_key, same timestamp) counts once
    pd.testing.assert_frame_equal(_run(pd.concat([docs, docs.iloc[:2]], ignore_index=True)), ref, check_exact=True)


def test_alt_row_from_a_later_close_is_never_used_and_naive_times_are_rejected() -> None:
    sql = alt_training_set_sql()
    assert "{training_set}" not in sql and "{alt_columns}" not in sql
    assert sql_text("training_set").strip() in sql  # the base query is reused verbatim
    features, labels = hand_made_gold()
    con = duckdb.connect()
    con.register("gold_features", features)
    con.register("gold_labels", labels)
    # an alt grid on a coarser clock: one row closing at 00:45 -- bar closing at 00:30 must not see it
    alt = pd.DataFrame({"coin": ["BTC"], "timeframe": ["30m"], "ts": [pd.Timestamp(T0 + timedelta(minutes=15))],
                        "close_time": [pd.Timestamp(T0 + timedelta(minutes=45))],
                        **{c: [1.0] for c in ALT_FEATURE_COLUMNS}})
    con.register("gold_alt_features", alt)
    out = alt_training_set(con, ["BTC/USD"], T0, T0 + timedelta(days=1), AS_OF).set_index("ts")
    assert pd.isna(out.loc[pd.Timestamp(T0)].news_count_1h)
    assert out.loc[pd.Timestamp(T0 + BAR)].news_count_1h == 1.0  # closes 01:00 >= 00:45
    with pytest.raises(DataValidationError, match="as_of"):
        alt_training_set(con, ["BTC/USD"], T0, T0 + timedelta(days=1), datetime(2020, 1, 2))
    con.close()
    assert AS_OF.tzinfo is UTC
