"""The train task's decision: retrain on schedule, otherwise reuse the market's champion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptolake.settings import Settings
from models.registry import RegistryEntry
from pipeline.interval import Interval
from pipeline.training import market_registry, retrain_due

DAY = Interval(datetime(2019, 6, 10, tzinfo=UTC), datetime(2019, 6, 11, tzinfo=UTC))


def _champion(trained_at: datetime) -> RegistryEntry:
    return RegistryEntry(version="lstm-test", kind="lstm", seq=1, trained_at=trained_at,
                         oos_start=trained_at - timedelta(days=30), promoted=True, metadata={})


def _settings(every: int) -> Settings:
    s = Settings()
    return s.model_copy(update={"pipeline": s.pipeline.model_copy(update={"retrain_every_days": every})})


def test_no_champion_means_training() -> None:
    due, why = retrain_due(None, DAY, _settings(7))
    assert due and "no champion trained by 2019-06-11" in why


def test_a_fresh_champion_is_reused_and_an_old_one_retrained() -> None:
    fresh = _champion(DAY.end - timedelta(days=6, hours=23))
    old = _champion(DAY.end - timedelta(days=7))
    reuse = (False, "champion lstm-test is 6 days, 23:00:00 old (< 7 days): reused")
    assert retrain_due(fresh, DAY, _settings(7)) == reuse
    due, why = retrain_due(old, DAY, _settings(7))
    assert due and "7 days, 0:00:00 old (retrain every 7 days)" in why
    assert retrain_due(fresh, DAY, _settings(0))[0] is True  # 0: every run retrains


def test_each_market_has_its_own_registry(tmp_path) -> None:
    s = Settings()
    a = s.model_copy(update={"paths": s.paths.model_copy(update={"artifacts_dir": tmp_path})})
    b = a.model_copy(update={"market": a.market.model_copy(update={"exchange": "kraken", "timeframe": "1h"})})
    assert market_registry(a).root == tmp_path / "models" / "gymcrypto-30m"
    assert market_registry(b).root == tmp_path / "models" / "kraken-1h"
