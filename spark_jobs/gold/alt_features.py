"""gold.alt_features: point-in-time news/social features per coin and bar.

The computation is declared once, in ``sql/alt_training_set.sql`` (DuckDB ASOF joins on
``available_time`` over cumulative, duplicate-aggregated sums; windows (T - W, T]). This module
runs it on DuckDB for the training set and the tests. (The Spark writer of the Delta table is
not built yet: see docs/altdata.md.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptolake.settings import PROJECT_ROOT

SQL_PATH: Path = PROJECT_ROOT / "sql" / "alt_training_set.sql"
SQL_FEATURES: tuple[str, ...] = tuple(
    f"{m}_{w}" for w in ("1h", "4h", "24h") for m in ("news_count", "post_count", "sent_mean", "sent_std"))


def alt_training_set(con: Any, bars: Any, docs: Any) -> Any:
    """Run the PIT query on DuckDB ``con`` for pandas frames ``bars`` and ``docs``; returns a pandas frame.

    ``bars``: coin, symbol, timeframe, ts, close_time (UTC timestamps);
    ``docs``: doc_key, kind ('news'|'social'), coins (list of symbols), available_time, sentiment.
    """
    con.register("alt_bars_src", bars)
    con.register("alt_docs_src", docs)
    con.execute("CREATE OR REPLACE TEMP VIEW alt_bars AS SELECT * FROM alt_bars_src")
    con.execute("CREATE OR REPLACE TEMP VIEW alt_docs AS SELECT * FROM alt_docs_src")
    try:
        return con.execute(SQL_PATH.read_text()).df()
    finally:
        con.unregister("alt_bars_src")
        con.unregister("alt_docs_src")
