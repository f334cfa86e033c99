"""pipeline.interval: progress bars with rate and ETA."""

from __future__ import annotations

import io
import sys

import pytest

from pipeline.interval import step_bar


def test_step_bar_shows_counts_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setenv("COLUMNS", "200")
    with step_bar("ingest: validate + produce", 1000, "candles") as bar:
        bar.update(500)
        bar.update(1000)
    text = out.getvalue()
    assert "ingest: validate + produce" in text
    assert "1000/1000" in text and "candles/s" in text and "ETA" in text
