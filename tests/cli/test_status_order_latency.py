"""`cryptolake status` prints bar close -> order (the trader's end to end) and the signal -> order hops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from cli.up import _latency_lines
from cryptolake.stages import stage_rows
from tests.conftest import settings_in
from trader.stages import DeltaStages


def test_status_shows_close_to_order_and_the_hop_from_the_signal_it_answered(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    keys = pd.DataFrame({"exchange": "st", "symbol": "BTC/USDT", "timeframe": "1m",
                         "ts": [datetime(2022, 1, 3, tzinfo=UTC) + timedelta(minutes=i) for i in range(4)]})
    close = keys["ts"] + timedelta(minutes=1)  # SYNTHETIC stamps: signal 3.0 s, order 3.25 s after the close
    DeltaStages(settings).append(pd.concat([stage_rows(keys, "ingest", close + timedelta(seconds=0.5)),
                                            stage_rows(keys, "signal", close + timedelta(seconds=3.0)),
                                            stage_rows(keys, "order", close + timedelta(seconds=3.25))]))
    lines = _latency_lines(settings)
    assert lines[0] == "latency    : bar close -> signal p50 3.00 s, p99 3.00 s over 4 bars"
    assert lines[1] == "trader     : bar close -> order p50 3.25 s, p99 3.25 s over 4 bars"
    assert "signal->order p50 0.25 s p99 0.25 s" in lines[2] and "ingest->order p50 2.75 s" in lines[2]
