from __future__ import annotations

import pytest

from cryptolake import duck
from cryptolake.cli.sql import VIEWS_SQL, apply_views, parse_views
from cryptolake.errors import ConfigError


def test_every_view_declares_what_it_reads():
    views = parse_views(VIEWS_SQL.read_text())
    names = [v.name for v in views]
    assert len(names) == len(set(names))
    assert {"bars_daily", "feature_coverage", "label_balance", "latest_signals"} <= set(names)
    for v in views:
        assert f"CREATE OR REPLACE VIEW {v.name} AS" in v.sql
        assert all(r in v.sql for r in v.requires)


def test_only_views_over_existing_tables_are_created(hand_lake):
    con = duck.connect(hand_lake)
    result = apply_views(con)
    assert result["created"] == ["feature_coverage", "label_balance"]
    assert {"bars_daily", "bar_quality", "latest_signals", "signal_hit_rate"} == set(result["skipped"])
    rows = con.execute("SELECT symbol, rows, anomalies FROM feature_coverage ORDER BY symbol").fetchall()
    assert rows == [("BTC/USD", 4, 0), ("ETH/USD", 2, 0), ("XRP/USD", 1, 0)]
    balance = con.execute("SELECT symbol, labels, up_share FROM label_balance ORDER BY symbol").fetchall()
    # BTC labels (synthetic): +0.01, -0.02, +0.03 -> 2 of 3 up; ETH +0.02, -0.01; XRP +0.05.
    assert balance == [("BTC/USD", 3, pytest.approx(2 / 3)), ("ETH/USD", 2, 0.5), ("XRP/USD", 1, 1.0)]


def test_views_file_without_headers_is_rejected(tmp_path):
    bad = tmp_path / "v.sql"
    bad.write_text("CREATE VIEW x AS SELECT 1;")
    with pytest.raises(ConfigError, match="headers"):
        parse_views(bad.read_text())
