"""Information coefficient of the sentiment features on real January 2022 BTC 1-minute bars.

For every feature of ``cryptolake/sql/alt_features.sql`` (computed point-in-time from the real cryptonews
headlines of the month, replayed with their original timestamps) and every horizon, the IC is the
Spearman rank correlation between the feature at a bar's close and the log return from that close
to the close ``h`` minutes later. Forward returns at h > 1 overlap and features are persistent, so
plain row shuffles would overstate significance: the p-value is a circular-shift permutation test
(the feature series is rotated against the returns by random offsets of at least one day, which
keeps both series' autocorrelation), two-sided. Also prints the rank correlation of our VADER score
with the news file's machine-made ``sentiment`` polarity (a sanity check, not ground truth).

    .venv/bin/python bench/alt_ic.py [--permutations 500] [--seed 7]
"""

from __future__ import annotations

import argparse
import ast
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptolake.schemas import NewsArticleV1
from ingest.connectors.base import ListSink
from ingest.news.replay import CryptoNewsReplay
from spark_jobs.gold.alt_features import SQL_FEATURES, compute_alt_features
from spark_jobs.silver import documents_nlp as nlp

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HORIZONS = (5, 15, 60, 240)
SINCE, UNTIL = datetime(2021, 12, 31, tzinfo=UTC), datetime(2022, 2, 1, tzinfo=UTC)


def load_bars(data: Path) -> pd.DataFrame:
    df = pd.read_csv(data / "market" / "ohlcv_1m" / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv.gz")
    ts = pd.to_datetime(df["timestamp"], utc=True)
    out = pd.DataFrame({"coin": "BTC", "timeframe": "1m", "ts": ts,
                        "close_time": ts + pd.Timedelta(minutes=1), "close": df["close"].astype(float)})
    return out.sort_values("ts").drop_duplicates("ts").reset_index(drop=True)


def load_docs(data: Path) -> pd.DataFrame:
    sink = ListSink()
    CryptoNewsReplay(data / "news" / "cryptonews.csv.gz", since=SINCE, until=UNTIL,
                     clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)).run(sink)
    rows = []
    for m in sink.accepted:
        assert isinstance(m, NewsArticleV1)
        text = nlp.clean_text(f"{m.title}. {m.body}")
        rows.append({"doc_key": m.key(), "kind": "news", "coins": nlp.coins_mentioned(text),
                     "available_time": pd.Timestamp(m.available_time, unit="ms", tz="UTC"),
                     "sentiment": nlp.sentiment(text)})
    return pd.DataFrame(rows)


def circular_ic_test(feature: np.ndarray, fwd: np.ndarray, n_perm: int, min_shift: int,
                     rng: np.random.Generator) -> tuple[float, float, int]:
    """(IC, two-sided circular-shift p-value, n) on rows where both are finite."""
    ok = np.isfinite(feature) & np.isfinite(fwd)
    f, r = feature[ok], fwd[ok]
    n = len(f)
    if n < 100 or np.ptp(f) == 0:
        return float("nan"), float("nan"), n
    rf, rr = rankdata(f), rankdata(r)
    rf, rr = (rf - rf.mean()) / rf.std(), (rr - rr.mean()) / rr.std()
    ic = float(np.dot(rf, rr) / n)
    min_shift = min(min_shift, n // 4)  # sparse features: rotate by at least a quarter of the sample
    shifts = rng.integers(min_shift, n - min_shift, size=n_perm)
    null = np.array([np.dot(np.roll(rf, int(s)), rr) / n for s in shifts])
    p = (1 + np.sum(np.abs(null) >= abs(ic))) / (n_perm + 1)
    return ic, float(p), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="shared data folder")
    ap.add_argument("--permutations", type=int, default=500, help="circular shifts per test")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    bars = load_bars(args.data)
    docs = load_docs(args.data)
    print(f"bars: {len(bars)}, headlines: {len(docs)} "
          f"({int(docs.coins.map(lambda c: 'BTC' in c).sum())} mention BTC)", flush=True)
    con = duckdb.connect()
    feats = compute_alt_features(con, bars[["coin", "timeframe", "ts", "close_time"]], docs)
    con.close()
    jan = bars.merge(feats[["ts", *SQL_FEATURES]], on="ts", how="left")
    jan = jan[(jan.ts >= "2022-01-01") & (jan.ts < "2022-02-01")].reset_index(drop=True)
    # forward return from this bar's close to the close h bars later (1-minute grid; gaps -> NaN)
    close = bars.set_index("ts")["close"]
    rng = np.random.default_rng(args.seed)
    rows = []
    # no BTC posts in January 2022 and no chain data for it: text features only
    features = [f for f in SQL_FEATURES if not f.startswith(("post_count", "chain_"))]
    for h in HORIZONS:
        future = close.reindex(jan.ts + pd.Timedelta(minutes=h)).to_numpy()
        fwd = np.log(future / jan.close.to_numpy())
        for f in features:
            ic, p, n = circular_ic_test(jan[f].to_numpy(dtype=float), fwd, args.permutations, 1440, rng)
            rows.append({"feature": f, "horizon_min": h, "ic": ic, "p_value": p, "n": n})
    out = pd.DataFrame(rows)
    print(out.pivot(index="feature", columns="horizon_min", values="ic").round(4).to_string())
    print("\nrows with a value (n):", out[out.horizon_min == HORIZONS[0]].set_index("feature")["n"].to_dict())
    print("\np-values (circular shift, two-sided):")
    print(out.pivot(index="feature", columns="horizon_min", values="p_value").round(3).to_string())
    m = len(out.dropna())
    print(f"\ntests: {m}; Bonferroni 5% threshold p < {0.05 / m:.5f}; "
          f"passing: {int((out.p_value < 0.05 / m).sum())}; raw p < 0.05: {int((out.p_value < 0.05).sum())}")

    news = pd.read_csv(args.data / "news" / "cryptonews.csv.gz", sep=";", dtype=str, keep_default_na=False)
    polarity = news.sentiment.map(lambda s: ast.literal_eval(s)["polarity"])
    ours = nlp.sentiments([nlp.clean_text(f"{t}. {b}") for t, b in zip(news.title, news.text, strict=True)])
    rho = spearmanr(ours, polarity).statistic
    print(f"\nVADER+lexicon vs file polarity (TextBlob-style, machine-made): Spearman rho = {rho:.3f} "
          f"over {len(news)} headlines")


if __name__ == "__main__":
    main()
