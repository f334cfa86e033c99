"""DuckDB over the Delta lake: views per table, latest version visible, versions via delta-rs (no Spark)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from cryptolake import duck
from cryptolake.errors import InfrastructureError
from cryptolake.settings import Settings
from tests.conftest import settings_in


@pytest.fixture
def settings(tmp_path) -> Settings:
    return settings_in(tmp_path, own_state=True)


def _bars(start: int, n: int) -> pa.Table:
    # synthetic rows: close = 100 + i
    return pa.table({
        "symbol": pa.array(["BTC/USD"] * n),
        "close": pa.array([100.0 + i for i in range(start, start + n)]),
        "bar_date": pa.array(["2024-01-01"] * n),
    })


def test_connect_creates_one_view_per_table_named_layer_entity(settings):
    lake = settings.paths.lake()
    write_deltalake(f"{lake}/silver/bars", _bars(0, 10), partition_by=["bar_date"])
    write_deltalake(f"{lake}/bronze/market_ohlcv", _bars(0, 3))
    (settings.paths.state_dir).mkdir(parents=True, exist_ok=True)

    con = duck.connect(settings)

    views = {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_type = 'VIEW'").fetchall()}
    assert views == {"silver_bars", "bronze_market_ohlcv"}
    n, total = con.execute("select count(*), sum(close) from silver_bars").fetchall()[0]
    assert (n, total) == (10, sum(100.0 + i for i in range(10)))


def test_views_see_commits_made_after_connect_and_versions_follow(settings):
    path = f"{settings.paths.lake()}/silver/bars"
    write_deltalake(path, _bars(0, 5))
    con = duck.connect(settings)
    assert duck.table_versions(settings) == {"silver.bars": 0}

    write_deltalake(path, _bars(5, 5), mode="append")

    assert con.execute("select count(*), max(close) from silver_bars").fetchone() == (10, 109.0)
    assert duck.table_versions(settings) == {"silver.bars": 1}


def test_connect_without_views_and_empty_lake(settings):
    con = duck.connect(settings, views=False)
    assert con.execute("select count(*) from information_schema.tables").fetchone() == (0,)
    assert duck.lake_tables(settings) == {}
    assert duck.table_versions(settings) == {}


def test_remote_lake_root_discovery_is_refused_with_the_uri(settings):
    remote = settings.model_copy(update={"paths": settings.paths.model_copy(update={"lake_root": "s3a://b/lake"})})
    with pytest.raises(InfrastructureError, match="s3a://b/lake"):
        duck.lake_tables(remote)


def test_view_name_joins_layer_and_entity():
    assert duck.view_name("bronze.market_ohlcv") == "bronze_market_ohlcv"
    assert duck.view_name("bronze.test-x") == "bronze_test_x"
