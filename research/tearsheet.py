"""One tearsheet per run: a self-contained HTML page and a PNG summary.

The page holds the equity against buy-and-hold (and cash), drawdown, monthly returns heatmap, rolling
Sharpe, exposure, the regime and strategy timeline, allocation weights and PnL per sleeve over time when
the run has them, the metrics (tail risk and overfitting figures included) and the trade list (click a column
header to sort it). Charts are embedded PNGs (plotly is not a runtime dependency), so the page is one
file with no external references.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from jinja2 import Environment, select_autoescape

from trader.metrics import drawdown_curve
from trader.report import _png

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}th{background:#f3f3f3;cursor:pointer}
td.n{text-align:left}img{max-width:100%;display:block;margin:1rem 0}</style>
<script>function sortBy(t,c){const b=t.tBodies[0],r=[...b.rows],d=t.dataset.d=t.dataset.d==='1'?'-1':'1';
r.sort((x,y)=>{const a=x.cells[c].innerText,z=y.cells[c].innerText,p=parseFloat(a.replace(/,/g,'')),
q=parseFloat(z.replace(/,/g,''));return(isNaN(p)||isNaN(q)?a.localeCompare(z):p-q)*d});r.forEach(e=>b.appendChild(e))}
</script></head><body><h1>{{ title }}</h1>{% for note in notes %}<p>{{ note }}</p>{% endfor %}
<h2>Metrics</h2><table>{% for k, v in metrics %}<tr><td class="n">{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}
</table>{% for name, img in charts %}<h2>{{ name }}</h2><img alt="{{ name }}" src="data:image/png;base64,{{ img }}">
{% endfor %}{% for name, cols, rows in tables %}<h2>{{ name }}</h2><table><thead><tr>
{% for c in cols %}<th onclick="sortBy(this.closest('table'),{{ loop.index0 }})">{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
{% endfor %}</body></html>"""


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "n/a" if not math.isfinite(float(v)) else f"{float(v):,.4f}"
    return str(v)


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Calendar-month returns (rows: years, columns: months 1-12) of an equity curve with a time index."""
    month_end = equity.resample("ME").last().dropna()
    first = equity.iloc[0]
    r = month_end.pct_change()
    r.iloc[0] = month_end.iloc[0] / first - 1
    when = pd.DatetimeIndex(r.index)
    frame = pd.DataFrame({"year": when.year, "month": when.month, "r": r.to_numpy()})
    return frame.pivot(index="year", columns="month", values="r")


def rolling_sharpe(equity: pd.Series, window: int, ppy: float) -> pd.Series:
    """Annualised Sharpe of per-bar returns over a rolling ``window`` of bars."""
    r = equity.pct_change()
    return r.rolling(window).mean() / r.rolling(window).std() * math.sqrt(ppy)


def _charts(equity: pd.Series, benchmark: pd.Series | None, exposure: pd.Series | None,
            timeline: pd.DataFrame | None, weights: pd.DataFrame | None, ppy: float,
            sleeve_pnl: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    out = []
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(equity.index, equity.to_numpy(), lw=1, label="strategy")
    if benchmark is not None:
        ax.plot(benchmark.index, benchmark.to_numpy(), lw=1, color="grey", label="buy and hold")
    ax.axhline(float(equity.iloc[0]), color="black", lw=0.6, ls=":", label="cash")
    ax.legend()
    ax.set_ylabel("equity")
    out.append(("Equity against buy-and-hold and cash", _png(fig)))
    fig, ax = plt.subplots(figsize=(10, 2.5))
    ax.fill_between(equity.index, drawdown_curve(equity, float(equity.iloc[0])).to_numpy() * 100, 0, color="tab:red",
                    alpha=0.4)
    ax.set_ylabel("drawdown %")
    out.append(("Drawdown", _png(fig)))
    m = monthly_returns(equity)
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * len(m)))
    vmax = float(np.nanmax(np.abs(m.to_numpy()))) if m.size else 1.0
    ax.imshow(m.to_numpy(), cmap="RdYlGn", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(m.shape[1]), [str(c) for c in m.columns])
    ax.set_yticks(range(len(m)), [str(y) for y in m.index])
    for (i, j), v in np.ndenumerate(m.to_numpy()):
        if np.isfinite(v):
            ax.text(j, i, f"{v * 100:.1f}", ha="center", va="center", fontsize=7)
    out.append(("Monthly returns (%)", _png(fig)))
    fig, ax = plt.subplots(figsize=(10, 2.5))
    window = max(int(ppy / 12), 10)
    ax.plot(equity.index, rolling_sharpe(equity, window, ppy).to_numpy(), lw=0.8)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel(f"Sharpe ({window} bars)")
    out.append(("Rolling Sharpe", _png(fig)))
    if exposure is not None:
        fig, ax = plt.subplots(figsize=(10, 2))
        ax.fill_between(exposure.index, exposure.to_numpy(), 0, step="post", alpha=0.5)
        ax.set_ylabel("exposure")
        out.append(("Exposure", _png(fig)))
    if timeline is not None and len(timeline):
        fig, ax = plt.subplots(figsize=(10, 2.5))
        for i, (col, codes) in enumerate(timeline.items()):
            cats = pd.Categorical(codes.astype(str))
            ax.scatter(timeline.index, np.full(len(cats), i) + cats.codes / (len(cats.categories) + 1), s=2,
                       c=cats.codes, cmap="tab10")
            for k, name in enumerate(cats.categories):
                ax.text(timeline.index[0], i + k / (len(cats.categories) + 1), f" {col}: {name}", fontsize=7)
        ax.set_yticks([])
        out.append(("Regime and strategy timeline", _png(fig)))
    if weights is not None and len(weights):
        fig, ax = plt.subplots(figsize=(10, 3))
        ax.stackplot(weights.index, weights.to_numpy().T, labels=list(weights.columns), step="post")
        ax.legend(fontsize=7, loc="upper left")
        out.append(("Allocation weights", _png(fig)))
    if sleeve_pnl is not None and len(sleeve_pnl):
        fig, ax = plt.subplots(figsize=(10, 3))
        for col in sleeve_pnl.columns:
            ax.plot(sleeve_pnl.index, sleeve_pnl[col].to_numpy(), lw=1, label=str(col))
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel("PnL")
        ax.legend(fontsize=7, loc="upper left")
        out.append(("PnL per sleeve", _png(fig)))
    return out


def write_tearsheet(path: Path, *, title: str, equity: pd.Series, metrics: Mapping[str, Any],
                    benchmark: pd.Series | None = None, trades: pd.DataFrame | None = None,
                    exposure: pd.Series | None = None, timeline: pd.DataFrame | None = None,
                    weights: pd.DataFrame | None = None, tables: Mapping[str, pd.DataFrame] | None = None,
                    notes: tuple[str, ...] = (), ppy: float = 17_520.0,
                    sleeve_pnl: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Write ``path`` (HTML) and ``path`` with ``.png`` (summary: equity and drawdown); returns both paths."""
    if equity.empty:
        raise ValueError("tearsheet: the equity curve is empty (no bars in the run)")
    charts = _charts(equity, benchmark, exposure, timeline, weights, ppy, sleeve_pnl)
    all_tables = [("Trades", trades)] if trades is not None else []
    all_tables += list((tables or {}).items())
    rendered = [(name, [str(c) for c in df.columns], [[_fmt(v) for v in row] for row in df.itertuples(index=False)])
                for name, df in all_tables]
    html = Environment(autoescape=select_autoescape()).from_string(_PAGE).render(
        title=title, notes=notes, metrics=[(k, _fmt(v)) for k, v in metrics.items()], charts=charts, tables=rendered)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    png = path.with_suffix(".png")
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(2, 1))
    a1.plot(equity.index, equity.to_numpy(), lw=1, label="strategy")
    if benchmark is not None:
        a1.plot(benchmark.index, benchmark.to_numpy(), lw=1, color="grey", label="buy and hold")
    a1.legend()
    a1.set_title(title)
    a2.fill_between(equity.index, drawdown_curve(equity, float(equity.iloc[0])).to_numpy() * 100, 0, color="tab:red",
                    alpha=0.4)
    a2.set_ylabel("drawdown %")
    fig.savefig(png, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path, png
