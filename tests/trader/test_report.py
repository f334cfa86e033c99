"""The HTML report embeds its charts and shows the metrics and calibration data."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from tests.trader.conftest import btc_frame, make_config, synthetic_signals
from trader.backtest import run_backtest
from trader.report import render_report, write_report


@pytest.fixture(scope="module")
def result():
    bars = btc_frame(60)
    probs = [0.9 if (i // 5) % 2 == 0 else 0.2 for i in range(60)]  # SYNTHETIC
    return run_backtest(bars, synthetic_signals(bars, probs), make_config(), run_id="rep", persist_run=False)


def test_report_embeds_pngs_and_metrics(result, tmp_path) -> None:
    calibration = pd.DataFrame(
        {"bin": [0, 1], "bin_lower": [0.0, 0.5], "bin_upper": [0.5, 1.0], "mean_predicted": [0.3, 0.8],
         "observed_frequency": [0.35, 0.7], "count": [120, 80]}
    )
    path = write_report(tmp_path / "r.html", result, initial_cash=10_000.0, calibration=calibration)
    html = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3  # equity+drawdown, price+trades, calibration
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "http://" not in html and "https://" not in html  # self-contained
    assert f"{result.metrics['final_equity']:,.4f}" in html
    assert "sharpe" in html and "max_drawdown" in html
    assert ">0.7000<" in html and ">80<" in html


def test_report_without_calibration_has_two_charts(result) -> None:
    html = render_report(result, initial_cash=10_000.0)
    assert html.count("data:image/png;base64,") == 2


def test_calibration_frame_missing_columns_is_refused(result) -> None:
    with pytest.raises(DataValidationError, match=r"calibration\.columns"):
        render_report(result, initial_cash=10_000.0, calibration=pd.DataFrame({"bin": [1]}))
