"""Task results are typed, JSON-able, and name their interval."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pipeline.interval import Interval
from pipeline.results import IngestResult, TradeCheck, as_record


def test_interval_validates_and_tags() -> None:
    iv = Interval.parse("2018-05-01", "2018-05-02T00:00:00+00:00")
    assert iv.start == datetime(2018, 5, 1, tzinfo=UTC) and iv.tag == "20180501-20180502"
    assert Interval.parse("2018-05-01T06:00", "2018-05-01T12:00").tag == "2018050106-2018050112"
    with pytest.raises(ValueError, match="not after start"):
        Interval.parse("2018-05-02", "2018-05-01")


def test_results_record_as_plain_json() -> None:
    rec = as_record(IngestResult(10, 9, 1, 0, True, {"BTC/USD": 9}, {"invalid close": 1}))
    assert json.loads(json.dumps(rec)) == {"candles_in_interval": 10, "produced": 9, "dead_lettered": 1,
                                           "skipped_already_published": 0, "corruption_drill": True,
                                           "per_symbol": {"BTC/USD": 9}, "reasons": {"invalid close": 1}}
    assert as_record(TradeCheck(3, 3, True, None, None))["identical"] is True
    with pytest.raises(TypeError, match="str"):
        as_record("no")


def test_non_finite_numbers_become_none_for_xcom() -> None:
    import numpy as np

    from pipeline.results import finite

    got = finite({"sharpe": float("nan"), "calmar": float("inf"), "n": np.int64(3), "rows": [{"x": np.float64(1.5)}]})
    assert got == {"sharpe": None, "calmar": None, "n": 3, "rows": [{"x": 1.5}]}
    assert json.dumps(got)
