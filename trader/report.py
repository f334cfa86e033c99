"""A self-contained HTML report of a run: charts as embedded PNGs, metrics, calibration.

The page has no external references (images are base64 ``data:`` URIs), so it can be
attached to a run, mailed or archived as one file.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are rendered in jobs, never on screen
import matplotlib.pyplot as plt
import pandas as pd
from jinja2 import Environment, select_autoescape
from matplotlib.figure import Figure

from cryptolake.errors import DataValidationError
from trader.metrics import drawdown_curve
from trader.results import RunResult

# The columns of models.calibration.reliability_curve (the one producer of calibration data).
CALIBRATION_COLUMNS = ("bin", "bin_lower", "bin_upper", "mean_predicted", "observed_frequency", "count")

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
td, th { border: 1px solid #ccc; padding: .3rem .7rem; text-align: right; }
th { background: #f3f3f3; } td.name { text-align: left; }
img { max-width: 100%; display: block; margin: 1rem 0; }
</style></head><body>
<h1>{{ title }}</h1>
<p>Run <code>{{ run_id }}</code>{% if subtitle %}: {{ subtitle }}{% endif %}</p>
<h2>Metrics</h2>
<table id="metrics"><tr><th>metric</th><th>value</th></tr>
{% for name, value in metrics %}<tr><td class="name">{{ name }}</td><td>{{ value }}</td></tr>
{% endfor %}</table>
{% if by_symbol %}<h2>By symbol</h2>
<table id="by_symbol"><tr>{% for c in by_symbol_columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in by_symbol %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
<h2>Skipped bars</h2>
<p id="skipped_total">{{ skipped_total }} bar(s) not traded on (broken candle rule or stale).</p>
{% if skipped_reasons %}<table id="skipped_reasons"><tr><th>reason</th><th>bars</th></tr>
{% for reason, n in skipped_reasons %}<tr><td class="name">{{ reason }}</td><td>{{ n }}</td></tr>
{% endfor %}</table>
<table id="skipped"><tr><th>open time</th><th>symbol</th><th>reasons</th></tr>
{% for t, sym, why in skipped_rows %}<tr><td>{{ t }}</td><td>{{ sym }}</td><td class="name">{{ why }}</td></tr>
{% endfor %}</table>
{% if skipped_total > skipped_rows|length %}<p>(first {{ skipped_rows|length }} shown)</p>{% endif %}
{% endif %}
{% for chart in charts %}<h2>{{ chart.title }}</h2>
<img alt="{{ chart.title }}" src="data:image/png;base64,{{ chart.png }}">
{% endfor %}
{% if calibration %}<h2>Calibration data</h2>
<table id="calibration"><tr>{% for c in calibration_columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in calibration %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
</body></html>
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:,.4f}"
    return str(value)


def equity_chart(result: RunResult, initial_cash: float) -> str:
    """Equity and drawdown curves."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, height_ratios=(2, 1))
    eq = result.equity
    ax1.plot(eq["ts"], eq["equity"], lw=1, color="tab:blue")
    ax1.set_ylabel("equity")
    ax2.fill_between(eq["ts"], drawdown_curve(eq["equity"], initial_cash) * 100, 0, color="tab:red", alpha=0.4)
    ax2.set_ylabel("drawdown %")
    return _png(fig)


def price_chart(result: RunResult, bars: pd.DataFrame | None = None) -> str:
    """Per symbol: close price (if ``bars`` with ``open_time, symbol, close`` is given) with buy (^)
    and sell (v) markers at fill prices."""
    fills = result.fills
    symbols = sorted(set(fills["symbol"]) | (set(bars["symbol"]) if bars is not None else set()))
    n = max(1, len(symbols))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n + 0.8), sharex=True, squeeze=False)
    for ax, sym in zip(axes[:, 0], symbols, strict=False):
        if bars is not None:
            b = bars[bars["symbol"] == sym]
            ax.plot(b["open_time"], b["close"], lw=0.8, color="0.3", label="close")
        for side, marker, color in (("buy", "^", "tab:green"), ("sell", "v", "tab:red")):
            f = fills[(fills["symbol"] == sym) & (fills["side"] == side)]
            ax.scatter(f["ts"], f["price"], marker=marker, color=color, s=25, label=side, zorder=3)
        ax.set_ylabel(sym)
        ax.legend(loc="best")
    if not symbols:
        axes[0, 0].set_title("no fills")
    return _png(fig)


def calibration_chart(calibration: pd.DataFrame) -> str:
    """Reliability curve: observed frequency vs mean predicted probability per bin."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", label="perfect")
    ax.plot(calibration["mean_predicted"], calibration["observed_frequency"], marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.legend(loc="best")
    return _png(fig)


def render_report(
    result: RunResult,
    *,
    initial_cash: float,
    calibration: pd.DataFrame | None = None,
    title: str = "cryptolake trading report",
    subtitle: str = "",
    bars: pd.DataFrame | None = None,
) -> str:
    """The report as one HTML string (``bars``: optional ``open_time, symbol, close`` for price lines)."""
    charts = [
        {"title": "Equity and drawdown", "png": equity_chart(result, initial_cash)},
        {"title": "Prices and fills", "png": price_chart(result, bars)},
    ]
    rows: list[list[str]] = []
    if calibration is not None:
        missing = [c for c in CALIBRATION_COLUMNS if c not in calibration.columns]
        if missing:
            raise DataValidationError(
                "calibration.columns",
                list(calibration.columns),
                f"missing {missing}; expected {list(CALIBRATION_COLUMNS)}",
            )
        charts.append({"title": "Model calibration", "png": calibration_chart(calibration)})
        rows = [[_fmt(v) for v in r] for r in calibration[list(CALIBRATION_COLUMNS)].itertuples(index=False)]
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_TEMPLATE).render(
        title=title,
        subtitle=subtitle,
        run_id=result.run_id,
        metrics=[(k, _fmt(v)) for k, v in result.metrics.items()],
        charts=charts,
        calibration=rows,
        calibration_columns=CALIBRATION_COLUMNS,
        by_symbol=[[_fmt(v) for v in r] for r in result.by_symbol.itertuples(index=False)],
        by_symbol_columns=list(result.by_symbol.columns),
        skipped_total=len(result.skipped),
        skipped_reasons=sorted(result.skipped.reasons.str.split(",").explode().value_counts().items())
        if len(result.skipped) else [],
        skipped_rows=[(str(r.open_time), r.symbol, r.reasons) for r in result.skipped.head(50).itertuples()],
    )


def write_report(
    path: Path,
    result: RunResult,
    *,
    initial_cash: float,
    calibration: pd.DataFrame | None = None,
    title: str = "cryptolake trading report",
    bars: pd.DataFrame | None = None,
) -> Path:
    """Render and write the report; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, initial_cash=initial_cash, calibration=calibration, title=title, bars=bars))
    return path
