"""`cryptolake altdata` (fast tier: no JVM, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import typer
from deltalake import DeltaTable, write_deltalake
from typer.testing import CliRunner

from cli.altdata import app, connectors_for, parse_time
from cryptolake.settings import get_settings
from cryptolake.tables import GOLD_ALT_FEATURES, SILVER_BARS
from ingest.chain.replay import EthereumEtlReplay
from ingest.news.replay import CryptoNewsReplay
from ingest.social.replay import SocialReplay
from spark_jobs.gold.alt_features import arrow_schema


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (["--help"], ["replay", "--help"], ["silver", "--help"], ["gold", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output


def test_times_are_utc_and_bad_ones_name_the_option() -> None:
    assert parse_time("2022-01-10", "since") == datetime(2022, 1, 10, tzinfo=UTC)
    assert parse_time("2022-01-10T05:00:00+02:00", "since") == datetime(2022, 1, 10, 3, tzinfo=UTC)
    assert parse_time(None, "since") is None
    with pytest.raises(typer.BadParameter, match="--until 'soon'"):
        parse_time("soon", "until")


def test_data_sets_map_to_their_replays(shared_data: Path) -> None:
    since = datetime(2022, 1, 1, tzinfo=UTC)
    news = connectors_for("news", shared_data, since, None)
    assert len(news) == 1 and isinstance(news[0], CryptoNewsReplay) and news[0].since == since
    reddit = connectors_for("reddit", shared_data, None, None)
    assert all(isinstance(c, SocialReplay) and c.fmt == "reddit" for c in reddit)
    assert [c.path.name for c in reddit if isinstance(c, SocialReplay)] == [
        "train_data.csv.gz", "validation_data.csv.gz", "test_data.csv.gz"]
    etl = connectors_for("ethereum-etl", shared_data, None, None)
    assert len(etl) == 1 and isinstance(etl[0], EthereumEtlReplay)
    with pytest.raises(typer.BadParameter, match="unknown data set 'tiktok'"):
        connectors_for("tiktok", shared_data, None, None)
    with pytest.raises(typer.BadParameter, match="text data sets"):
        connectors_for("raphtory", shared_data, since, None)


def test_gold_command_writes_the_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SYNTHETIC bar clock (two 30-minute BTC bars, no prices) and no documents: zero counts, null sentiment."""
    monkeypatch.setenv("CRYPTOLAKE__PATHS__LAKE_ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    try:
        settings = get_settings()
        ts = pd.Series(pd.to_datetime(["2022-01-10 00:00", "2022-01-10 00:30"], utc=True))
        bars = pd.DataFrame({c: [None, None] for c in SILVER_BARS.column_names})
        bars = bars.assign(exchange="synthetic", symbol="BTC/USD", timeframe="30m", open_time=ts,
                           close_time=ts + pd.Timedelta(minutes=30), bar_date=ts.dt.date)
        write_deltalake(SILVER_BARS.path(settings), pa.Table.from_pandas(bars, schema=arrow_schema(SILVER_BARS),
                                                                          preserve_index=False))
        res = CliRunner().invoke(app, ["gold", "--start", "2022-01-10", "--end", "2022-01-11"])
        assert res.exit_code == 0, res.output
        assert "gold.alt_features: 2 rows for BTC" in res.output
        out = DeltaTable(GOLD_ALT_FEATURES.path(settings)).to_pandas().sort_values("ts")
        assert out.news_count_24h.tolist() == [0.0, 0.0] and out.sent_mean_24h.isna().all()
        assert out.close_time.tolist() == (ts + pd.Timedelta(minutes=30)).tolist()
    finally:
        get_settings.cache_clear()
