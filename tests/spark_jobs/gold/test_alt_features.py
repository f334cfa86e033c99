"""gold.alt_features writer (DuckDB over the Delta lake -> delta-rs) on REAL data, checked independently.

Text: the real BTC-PERP 1-minute bars of 10-12 January 2022 (silver.bars) with the real headlines and
Ethereum tweets of that month (silver.documents, scored by the project's pure NLP functions).
Chain: the real Raphtory mainnet transactions of 6 March 2017, aggregated per hour by the independent
computation of tests/spark_jobs/silver/test_chain.py (silver.chain_activity); their bar grid is a
SYNTHETIC 1-minute ETH clock over those hours (close times only, no prices: alt features depend only
on when a bar closes). No JVM: inputs are written with delta-rs, the writer runs on DuckDB.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

from cryptolake.schemas import Message, NewsArticleV1, SocialPostV1
from cryptolake.settings import Settings
from cryptolake.tables import (
    ALT_FEATURE_COLUMNS,
    GOLD_ALT_FEATURES,
    SILVER_BARS,
    SILVER_CHAIN_ACTIVITY,
    SILVER_DOCUMENTS,
    TableSpec,
)
from ingest.connectors.base import ListSink
from ingest.news.replay import CryptoNewsReplay
from ingest.social.replay import SocialReplay
from spark_jobs.gold.alt_features import arrow_schema, run_gold_alt_features
from spark_jobs.silver import documents_nlp as nlp
from tests.conftest import settings_in
from tests.spark_jobs.silver.test_chain import _independent_exchanges, _raphtory_expected

SINCE, UNTIL = datetime(2021, 12, 31, tzinfo=UTC), datetime(2022, 2, 1, tzinfo=UTC)
START, END = datetime(2022, 1, 10, tzinfo=UTC), datetime(2022, 1, 13, tzinfo=UTC)
CHAIN_START, CHAIN_END = datetime(2017, 3, 6, tzinfo=UTC), datetime(2017, 3, 7, tzinfo=UTC)
CLOCK = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
WINDOWS = {"1h": pd.Timedelta(hours=1), "4h": pd.Timedelta(hours=4), "24h": pd.Timedelta(hours=24)}


def _write(spec: TableSpec, frame: pd.DataFrame, settings: Settings) -> None:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame[list(spec.column_names)], schema=arrow_schema(spec), preserve_index=False)
    write_deltalake(spec.path(settings), table, mode="overwrite", partition_by=list(spec.partition_by) or None)


def _bars(open_times: pd.Series, symbol: str, exchange: str, with_prices: pd.DataFrame | None) -> pd.DataFrame:
    out = pd.DataFrame({"exchange": exchange, "symbol": symbol, "timeframe": "1m", "open_time": open_times,
                        "close_time": open_times + pd.Timedelta(minutes=1)})
    for c in ("open", "high", "low", "close", "volume"):
        out[c] = with_prices[c].to_numpy() if with_prices is not None else np.nan
    out["ingest_time"] = pd.Timestamp(CLOCK())
    for c in ("gap_before", "flag_high_low", "flag_negative_volume", "flag_ohlc_range", "flag_jump", "flag_stale"):
        out[c] = False
    out["missing_bars_before"], out["is_valid"], out["flag_reasons"], out["duplicates"] = 0, True, "", 0
    out["bar_date"] = out["open_time"].dt.date
    return out


def replayed_documents(shared_data: Path) -> list[Message]:
    """Real Jan-2022 crypto news and Ethereum tweets, as the replay connectors accept them."""
    sink = ListSink()
    CryptoNewsReplay(shared_data / "news" / "cryptonews.csv.gz", since=SINCE, until=UNTIL, clock=CLOCK).run(sink)
    SocialReplay(shared_data / "social" / "twitter" / "ethereum_tweets.csv", "eth_tweets", since=SINCE, until=UNTIL,
                 clock=CLOCK).run(sink)
    return list(sink.accepted)


@pytest.fixture(scope="module")
def inputs(shared_data: Path) -> dict[str, pd.DataFrame]:
    raw = pd.read_csv(shared_data / "market" / "ohlcv_1m" / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv.gz")
    raw["open_time"] = pd.to_datetime(raw["timestamp"], utc=True)
    raw = raw[(raw.open_time >= START) & (raw.open_time < END)].drop_duplicates("open_time").reset_index(drop=True)
    btc = _bars(raw.open_time, "BTC-PERP", "ftx", raw)
    clock = pd.Series(pd.date_range(CHAIN_START, CHAIN_END, freq="1min", inclusive="left"))
    eth = _bars(clock, "ETH/USD", "synthetic-clock", None)  # SYNTHETIC bar clock, no prices

    rows = []
    for m in replayed_documents(shared_data):
        title: str | None
        url: str | None
        if isinstance(m, NewsArticleV1):
            kind, text, source, doc_id, url, title = "news", f"{m.title}. {m.body}", m.source, m.doc_id, m.url, m.title
        else:
            assert isinstance(m, SocialPostV1)
            kind, text, source, doc_id, url, title = "social", m.text, m.platform, m.post_id, m.url, None
        clean = nlp.clean_text(text)
        pub = pd.Timestamp(m.event_time, unit="ms", tz="UTC")
        rows.append({"doc_key": m.key(), "kind": kind, "source": source, "doc_id": doc_id, "url": url,
                     "author": None, "channel": None, "title": title, "text": clean, "language": "en",
                     "published_time": pub, "available_time": pd.Timestamp(m.available_time, unit="ms", tz="UTC"),
                     "ingest_time": pd.Timestamp(m.ingest_time, unit="ms", tz="UTC"),
                     "sentiment": nlp.sentiment(clean), "provider_sentiment": None,
                     "coins": nlp.coins_mentioned(clean), "topic": -1, "engagement": None, "author_influence": None,
                     "dedup_hash": nlp.dedup_hash(clean), "duplicates": 0, "pub_month": pub.date().replace(day=1)})
    docs = pd.DataFrame(rows).drop_duplicates("doc_key").reset_index(drop=True)

    hourly = _raphtory_expected(shared_data, _independent_exchanges(
        shared_data / "chain" / "raphtory" / "etherscan_tags.csv.gz")).reset_index()
    hourly["bucket_start"] = pd.to_datetime(hourly["bucket_start"]).dt.tz_localize("UTC")
    chain = hourly.assign(chain="ethereum", bucket_end=hourly.bucket_start + pd.Timedelta(hours=1),
                          blocks=None, tx_count=None, gas_used=None, avg_gas_price_gwei=None, token_transfers=0,
                          bucket_date=hourly.bucket_start.dt.date)
    return {"bars": pd.concat([btc, eth], ignore_index=True), "docs": docs, "chain": chain}


def _lake(root: Path, inputs: dict[str, pd.DataFrame], cut: pd.Timestamp | None = None) -> Settings:
    """A lake with the inputs; with ``cut``, only what was available by then (bars closed, docs, buckets)."""
    s = settings_in(root)
    bars, docs, chain = inputs["bars"], inputs["docs"], inputs["chain"]
    if cut is not None:
        bars, docs, chain = bars[bars.close_time <= cut], docs[docs.available_time <= cut], \
            chain[chain.bucket_end <= cut]
    _write(SILVER_BARS, bars, s)
    _write(SILVER_DOCUMENTS, docs, s)
    _write(SILVER_CHAIN_ACTIVITY, chain, s)
    return s


def _read(settings: Settings) -> pd.DataFrame:
    df = DeltaTable(GOLD_ALT_FEATURES.path(settings)).to_pandas()
    return df.sort_values(["coin", "timeframe", "ts"]).reset_index(drop=True)[list(GOLD_ALT_FEATURES.column_names)]


def _half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _expected_text(docs: pd.DataFrame, coin: str, t: pd.Timestamp) -> dict[str, float | None]:
    """Independent pandas computation of the text features of ``coin`` for the bar closing at ``t``."""
    d = docs[docs.coins.map(lambda c: coin in c)]
    out: dict[str, float | None] = {}
    for w, span in WINDOWS.items():
        x = d[(d.available_time > t - span) & (d.available_time <= t)]
        out[f"news_count_{w}"] = float((x.kind == "news").sum())
        out[f"post_count_{w}"] = float((x.kind == "social").sum())
        s = x.sentiment.round(4)
        out[f"sent_mean_{w}"] = float(s.mean()) if len(s) else None
        out[f"sent_std_{w}"] = float(s.std(ddof=0)) if len(s) > 1 else None
        if w != "1h":
            hour_end = (d.available_time - pd.Timedelta(microseconds=1)).dt.floor("h") + pd.Timedelta(hours=1)
            hx = d[(hour_end > t - span) & (hour_end <= t)]
            he = hour_end[hx.index]
            means = [_half_away(g.sum() * 10000 / len(g)) / 10000 for _, g in (hx.sentiment.round(4)).groupby(he)]
            out[f"sent_vol_{w}"] = float(np.std(means)) if len(means) > 1 else None
    return out


def _expected_chain(chain: pd.DataFrame, t: pd.Timestamp) -> dict[str, float | None]:
    last = chain[(chain.bucket_end > t - WINDOWS["1h"]) & (chain.bucket_end <= t)]
    day = chain[(chain.bucket_end > t - WINDOWS["24h"]) & (chain.bucket_end <= t)]
    has = len(day) > 0
    return {
        "chain_active_addr_1h": float(last.active_addresses.iloc[-1]) if len(last) else None,
        "chain_whale_count_24h": float(day.whale_transfers.sum()) if has else None,
        "chain_whale_volume_24h": float(day.whale_volume.sum()) if has else None,
        "chain_exchange_netflow_24h": float((day.exchange_inflow - day.exchange_outflow).sum()) if has else None,
    }


def _check(row: pd.Series, t: pd.Timestamp, expected: dict[str, float | None]) -> None:
    for col, want in expected.items():
        got = row[col]
        if want is None:
            assert pd.isna(got), f"{col} at {t}: {got} != null"
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), f"{col} at {t}"


def test_written_features_match_an_independent_pandas_computation_and_rerun_is_idempotent(
        tmp_path: Path, inputs: dict[str, pd.DataFrame]) -> None:
    s = _lake(tmp_path / "full", inputs)
    res = run_gold_alt_features(START, END, s)
    run_gold_alt_features(CHAIN_START, CHAIN_END, s)
    out = _read(s)
    assert res.rows == 3 * 1440 and res.coins == ["BTC"]
    assert len(out) == 3 * 1440 + 1440
    assert out.columns.tolist() == list(GOLD_ALT_FEATURES.column_names)

    btc = out[out.coin == "BTC"].set_index("close_time")
    docs = inputs["docs"]
    btc_news = docs[(docs.kind == "news") & docs.coins.map(lambda c: "BTC" in c)
                    & (docs.available_time > START) & (docs.available_time < END)].sort_values("available_time")
    assert btc.news_count_24h.max() > 5 and btc.sent_vol_24h.notna().sum() > 1000
    stamps = [btc_news.available_time.iloc[0], btc_news.available_time.iloc[0] - pd.Timedelta(minutes=1),
              btc_news.available_time.iloc[len(btc_news) // 2], pd.Timestamp("2022-01-12 23:59", tz="UTC"),
              pd.Timestamp("2022-01-10 00:01", tz="UTC"), pd.Timestamp("2022-01-11 13:37", tz="UTC")]
    for t in stamps:
        _check(btc.loc[t], t, _expected_text(docs, "BTC", t))
        assert all(pd.isna(btc.loc[t][c]) for c in ALT_FEATURE_COLUMNS if c.startswith("chain_"))  # no BTC chain

    eth = out[out.coin == "ETH"].set_index("close_time")
    chain = inputs["chain"]
    assert chain.whale_transfers.sum() > 0 and chain.exchange_inflow.sum() > 0
    for t in [pd.Timestamp("2017-03-06 00:59", tz="UTC"), pd.Timestamp("2017-03-06 01:00", tz="UTC"),
              chain.bucket_end.iloc[len(chain) // 2], chain.bucket_end.max() + pd.Timedelta(minutes=30),
              pd.Timestamp("2017-03-06 23:59", tz="UTC")]:
        _check(eth.loc[t], t, _expected_chain(chain, t))
        assert pd.isna(eth.loc[t].chain_tx_count_1h)  # a transfers-only replay has no block counts
    assert eth.chain_whale_volume_24h.max() > 0

    v = DeltaTable(GOLD_ALT_FEATURES.path(s)).version()
    again = run_gold_alt_features(START, END, s)
    part = run_gold_alt_features(datetime(2022, 1, 11, tzinfo=UTC), datetime(2022, 1, 12, tzinfo=UTC), s)
    assert again.rows == res.rows and part.rows == 1440 and part.table_version == v + 2
    pd.testing.assert_frame_equal(_read(s), out)


def test_written_table_has_zero_differences_before_random_cutoffs(tmp_path: Path,
                                                                   inputs: dict[str, pd.DataFrame]) -> None:
    full_s = _lake(tmp_path / "full", inputs)
    run_gold_alt_features(START, END, full_s)
    full = _read(full_s)
    rng = np.random.default_rng(11)
    lo, hi = pd.Timestamp(START).value, pd.Timestamp(END).value
    for i, cut_ns in enumerate(sorted(rng.integers(lo, hi, size=3))):
        cut = pd.Timestamp(int(cut_ns), tz="UTC")
        s = _lake(tmp_path / f"cut{i}", inputs, cut)
        run_gold_alt_features(START, END, s)
        part = _read(s)
        ref = full[full.close_time <= cut].reset_index(drop=True)
        assert len(part) == len(ref) > 0
        pd.testing.assert_frame_equal(part, ref, check_exact=True, obj=f"before cut-off {cut}")
