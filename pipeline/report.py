"""The main job's summary (printed and saved as JSON) and its HTML report.

Row counts come from the lake itself (DuckDB over Delta), not from task logs, and are
reconciled: bronze = candles replayed, silver = unique candles, gold = valid silver bars
minus each series' warm-up. A failed reconciliation raises: a number we print is a number
we checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings

log = get_logger(__name__)

TABLE_VIEWS = (
    "bronze_market_ohlcv",
    "quarantine_market_ohlcv",
    "quarantine_dlq_market_ohlcv",
    "silver_bars",
    "gold_features",
    "gold_labels",
    "gold_anomalies",
    "gold_signals",
)


_EXCHANGE_FILTER = {
    "bronze_market_ohlcv": "payload->>'exchange' = $exchange",
    "silver_bars": "exchange = $exchange",
    "gold_features": "exchange = $exchange",
    "gold_labels": "exchange = $exchange",
    "gold_anomalies": "exchange = $exchange",
    "gold_signals": "exchange = $exchange AND model_version = $model_version",
}


def table_counts(settings: Settings, model_version: str) -> dict[str, int]:
    """Rows per lake table for the configured exchange (and this run's model); 0 if a table is missing.

    The lake may hold other venues and earlier models: they are not this run's rows.
    """
    from cryptolake import duck

    con = duck.connect(settings)
    args = {"exchange": settings.market.exchange, "model_version": model_version}
    try:
        existing = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        out: dict[str, int] = {}
        for view in TABLE_VIEWS:
            if view not in existing:
                out[view] = 0
                continue
            where = _EXCHANGE_FILTER.get(view)
            sql = f"SELECT count(*) FROM {view}" + (f" WHERE {where}" if where else "")
            params = {k: v for k, v in args.items() if where and f"${k}" in where}
            out[view] = int(con.execute(sql, params).fetchone()[0])  # type: ignore[index]
        return out
    finally:
        con.close()


def reconcile(settings: Settings, start: str, end: str, source_candles: int) -> dict[str, Any]:
    """Check the row-count identities across layers for ``[start, end)``; raise on any mismatch."""
    from cryptolake import duck
    from spark_jobs.gold.features import WARMUP_BARS

    con = duck.connect(settings)
    try:
        q = con.execute
        args = {"start": start, "end": end, "exchange": settings.market.exchange}
        bronze_where = ("WHERE payload->>'exchange' = $exchange AND event_time >= $start::TIMESTAMPTZ "
                        "AND event_time < $end::TIMESTAMPTZ")
        bronze = q(f"SELECT count(*) FROM bronze_market_ohlcv {bronze_where}", args).fetchone()[0]  # type: ignore[index]
        unique = q(f"SELECT count(DISTINCT key || CAST(event_time AS VARCHAR)) FROM bronze_market_ohlcv {bronze_where}",
                   args).fetchone()[0]  # type: ignore[index]
        silver_where = ("WHERE exchange = $exchange AND open_time >= $start::TIMESTAMPTZ "
                        "AND open_time < $end::TIMESTAMPTZ")
        silver, valid = q(f"SELECT count(*), count(*) FILTER (WHERE is_valid) FROM silver_bars {silver_where}",
                          args).fetchone()  # type: ignore[misc]
        per_series = q(f"SELECT count(*) FILTER (WHERE is_valid) FROM silver_bars {silver_where} "
                       "GROUP BY exchange, symbol, timeframe", args).fetchall()
        gold = q("SELECT count(*) FROM gold_features WHERE exchange = $exchange AND ts >= $start::TIMESTAMPTZ "
                 "AND ts < $end::TIMESTAMPTZ", args).fetchone()[0]  # type: ignore[index]
        dups = q(f"SELECT coalesce(sum(duplicates), 0) FROM silver_bars {silver_where}",
                 args).fetchone()[0]  # type: ignore[index]
        # gold.anomalies scores every gold row of the interval (a score is null without enough history)
        anomalies = _count(con, "gold_anomalies", "exchange = $exchange AND ts >= $start::TIMESTAMPTZ "
                           "AND ts < $end::TIMESTAMPTZ", args)
        prefix = {"prefix": f"{settings.market.exchange}:%"}
        dead = _count(con, "quarantine_dlq_market_ohlcv", "key LIKE $prefix", prefix)
        quarantined = _count(con, "quarantine_market_ohlcv", "key LIKE $prefix", prefix)
    finally:
        con.close()
    expected_gold = sum(max(0, int(n) - WARMUP_BARS) for (n,) in per_series)
    checks = {
        "source_equals_unique_bronze_plus_rejected": (int(unique) + dead + quarantined, source_candles),
        "bronze_equals_unique_plus_duplicates": (int(bronze), int(unique) + int(dups)),
        "silver_equals_unique_bronze": (int(silver), int(unique)),
        "gold_equals_valid_silver_minus_warmup": (int(gold), expected_gold),
        "anomalies_equal_gold": (anomalies, int(gold)),
    }
    for name, (got, want) in checks.items():
        if got != want:
            raise DataValidationError(name, got, f"expected {want}: the layers do not reconcile")
    return {"source_candles": source_candles, "bronze": int(bronze), "unique_bronze": int(unique),
            "duplicates": int(dups), "producer_dead_letters": dead, "landing_quarantined": quarantined,
            "silver": int(silver), "valid_silver": int(valid), "gold": int(gold), "anomalies": anomalies,
            "warmup_bars": WARMUP_BARS, "series": len(per_series), "checks": {k: "ok" for k in checks}}


def _count(con: Any, view: str, where: str, params: dict[str, Any]) -> int:
    """Rows of a view matching ``where``; 0 when the table does not exist yet (nothing was rejected)."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [view]).fetchone()[0]
    if not exists:
        return 0
    return int(con.execute(f"SELECT count(*) FROM {view} WHERE {where}", params).fetchone()[0])


def quality_counts(settings: Settings, start: str, end: str) -> dict[str, Any]:
    """Gaps, missing bars, invalid bars and each flag of this exchange's silver bars in ``[start, end)``.

    From the lake, not from the silver task's counters: the lake may hold other venues' bars.
    """
    from cryptolake import duck
    from spark_jobs.silver.bars import FLAG_REASONS

    flags = ", ".join(f"count(*) FILTER (WHERE {c})" for c in FLAG_REASONS)
    sql = (f"SELECT count(*) FILTER (WHERE gap_before), coalesce(sum(missing_bars_before), 0), "
           f"count(*) FILTER (WHERE NOT is_valid), {flags} FROM silver_bars WHERE exchange = $exchange "
           "AND open_time >= $start::TIMESTAMPTZ AND open_time < $end::TIMESTAMPTZ")
    con = duck.connect(settings)
    try:
        row = con.execute(sql, {"exchange": settings.market.exchange, "start": start, "end": end}).fetchone()
    finally:
        con.close()
    assert row is not None
    gaps, missing, invalid, *counts = (int(v) for v in row)
    return {"gaps": gaps, "missing_bars": missing, "invalid_bars": invalid,
            "flagged": dict(zip(FLAG_REASONS.values(), counts, strict=True))}


def build_summary(results: dict[str, dict[str, Any]], settings: Settings, start: str, end: str) -> dict[str, Any]:
    """Everything the main job reports, from the lake and the task results."""
    ingest, train, trade = results["ingest"], results["train"], results["trade"]
    recon = reconcile(settings, start, end, int(ingest["candles_in_interval"]))
    return {
        "interval": {"start": start, "end": end},
        "exchange": settings.market.exchange,
        "tables": table_counts(settings, train["model_version"]),
        "reconciliation": recon,
        "quality": {
            "corruption_drill": bool(ingest.get("corruption_drill")),
            "producer_dead_letters": recon["producer_dead_letters"],
            "landing_quarantined": recon["landing_quarantined"],
            "duplicates": recon["duplicates"],
            **quality_counts(settings, start, end),
        },
        "model": {
            "model_version": train["model_version"],
            "segments": train["segments"],
            "samples": train["samples"],
            "metrics": train["metrics"],
            "decision": train.get("reason", ""),  # retrained or reused, the gate's verdict, whether it trades
        },
        "anomalies": {k: results["anomalies"].get(k) for k in ("rows", "scored", "iforest_flags", "pca_flags")},
        "signals": {k: results["score"].get(k) for k in ("scored", "up_signals", "first_bar", "last_bar")},
        "trading": trade.get("metrics", {}),
        "trading_check": trade.get("check", {}),
        "versus": trade.get("benchmarks", {}),
        "strategy": {k: v for k, v in trade.get("strategy", {}).items() if k != "scores"},
        "tearsheet": trade.get("tearsheet"),
    }


def print_summary(summary: dict[str, Any], report_path: Path, console: Console | None = None) -> None:
    """Human-readable tables of the summary."""
    console = console or Console()
    t = Table(title=f"Rows per table (exchange {summary['exchange']}, this run's model)")
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, n in summary["tables"].items():
        t.add_row(name, f"{n:,}")
    console.print(t)
    r = summary["reconciliation"]
    console.print(
        f"Reconciled: source {r['source_candles']:,} = unique bronze {r['unique_bronze']:,} + dead-lettered "
        f"{r['producer_dead_letters']:,} + quarantined {r['landing_quarantined']:,}; bronze {r['bronze']:,} = "
        f"unique + {r['duplicates']:,} duplicates; silver {r['silver']:,} = unique candles; gold {r['gold']:,} = "
        f"valid silver {r['valid_silver']:,} - {r['series']} x {r['warmup_bars']} warm-up; gold.anomalies "
        f"{r['anomalies']:,} = gold"
    )
    a = summary["anomalies"]
    console.print(f"Anomaly detectors: {a['scored']:,} of {a['rows']:,} gold rows scored (an unscored row lacks the "
                  f"detectors' fit history); IsolationForest flagged {a['iforest_flags']:,}, PCA {a['pca_flags']:,}")
    q = summary["quality"]
    console.print(f"Data quality: {q}")
    m = Table(title=f"Model {summary['model']['model_version']} on the test period")
    m.add_column("model")
    cols = ("accuracy", "precision", "recall", "f1", "auc")
    for c in cols:
        m.add_column(c, justify="right")
    for name, metrics in summary["model"]["metrics"].items():
        m.add_row(name, *(_num(metrics.get(c)) for c in cols))
    console.print(m)
    console.print(f"Model decision: {summary['model'].get('decision', '')}")
    tr = Table(title="Paper trading (test period)")
    tr.add_column("metric")
    tr.add_column("value", justify="right")
    for k, v in summary["trading"].items():
        tr.add_row(k, _num(v))
    console.print(tr)
    console.print(f"Backtest vs paper trader: {summary['trading_check']}")
    strategy = summary.get("strategy") or {}
    if strategy:
        st = Table(title="Strategy: regime selector, chosen on the model's validation segment only")
        st.add_column("regime")
        st.add_column("member")
        st.add_column("why")
        for regime, member in strategy.get("by_regime", {}).items():
            st.add_row(regime, member, strategy.get("reasons", {}).get(regime, ""))
        console.print(st)
        ml = strategy.get("ml_thresholds")
        console.print(f"ML thresholds: {ml['enter']}/{ml['exit']}: {ml['reason']}" if ml else
                      f"ML signal: {strategy.get('reasons', {}).get('ml', 'not a candidate')}")
        console.print(f"Selector switches in the test period: {strategy.get('switches')} "
                      f"{strategy.get('switches_by_member')}")
    versus = summary.get("versus") or {}
    if versus:
        vt = Table(title="Against buy-and-hold (equal weight, no costs) and cash, test period")
        vt.add_column("")
        vt.add_column("return", justify="right")
        vt.add_column("max drawdown", justify="right")
        vt.add_row("strategy", _num(versus.get("strategy_return")), _num(versus.get("strategy_max_drawdown")))
        vt.add_row("buy and hold", _num(versus.get("buy_and_hold_return")),
                   _num(versus.get("buy_and_hold_max_drawdown")))
        vt.add_row("cash", _num(versus.get("cash_return")), _num(0.0))
        console.print(vt)
        console.print(f"Tearsheet: {summary.get('tearsheet')}")
    console.print(f"Report: {report_path}   ({summary['seconds']} s)")


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


_SUMMARY_TEMPLATE = """
<h2>Lake</h2>
<table id="tables"><tr><th>table</th><th>rows</th></tr>
{% for name, n in tables %}<tr><td class="name">{{ name }}</td><td>{{ n }}</td></tr>{% endfor %}
</table>
<p>Reconciled: source {{ r.source_candles }} = unique bronze {{ r.unique_bronze }} + dead-lettered
{{ r.producer_dead_letters }} + quarantined {{ r.landing_quarantined }}; bronze {{ r.bronze }} = unique +
{{ r.duplicates }} duplicates; silver {{ r.silver }} = unique candles;
gold {{ r.gold }} = valid silver {{ r.valid_silver }} &minus;
{{ r.series }} &times; {{ r.warmup_bars }} warm-up bars; gold.anomalies {{ r.anomalies }} = gold.</p>
<p>Anomaly detectors: {{ a.scored }} of {{ a.rows }} gold rows scored (an unscored row lacks the
detectors' fit history); IsolationForest flagged {{ a.iforest_flags }}, PCA {{ a.pca_flags }}.</p>
<h2>Data quality</h2>
<table id="quality"><tr><th>check</th><th>count</th></tr>
{% for name, n in quality %}<tr><td class="name">{{ name }}</td><td>{{ n }}</td></tr>{% endfor %}
</table>
<h2>Model {{ model_version }} on the test period</h2>
<table id="model"><tr><th>model</th>{% for c in metric_cols %}<th>{{ c }}</th>{% endfor %}</tr>
{% for name, row in model_rows %}<tr><td class="name">{{ name }}</td>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if by_regime %}<h2>Strategy: regime selector chosen on the validation segment</h2>
<table id="selector"><tr><th>regime</th><th>member</th><th>why</th></tr>
{% for regime, member, why in by_regime %}<tr><td class="name">{{ regime }}</td><td>{{ member }}</td>
<td class="name">{{ why }}</td></tr>{% endfor %}</table><p>{{ ml_note }}</p>
<p>Switches in the test period: {{ switches }}; tearsheet (timeline, switches and reasons): {{ tearsheet }}</p>
{% endif %}{% if versus %}<h2>Against buy-and-hold and cash (test period)</h2>
<table id="versus"><tr><th></th><th>return</th><th>max drawdown</th></tr>
{% for name, r, dd in versus %}<tr><td class="name">{{ name }}</td><td>{{ r }}</td><td>{{ dd }}</td></tr>{% endfor %}
</table>{% endif %}
"""


def _strategy_section(summary: dict[str, Any]) -> dict[str, Any]:
    strategy, v = summary.get("strategy") or {}, summary.get("versus") or {}
    ml = strategy.get("ml_thresholds")
    return {
        "by_regime": [(k, m, strategy.get("reasons", {}).get(k, "")) for k, m in strategy.get("by_regime", {}).items()],
        "ml_note": (f"ML thresholds {ml['enter']}/{ml['exit']}: {ml['reason']}" if ml
                    else f"ML signal: {strategy.get('reasons', {}).get('ml', 'not a candidate')}"),
        "switches": f"{strategy.get('switches')} {strategy.get('switches_by_member')}",
        "tearsheet": summary.get("tearsheet"),
        "versus": [("strategy", _num(v.get("strategy_return")), _num(v.get("strategy_max_drawdown"))),
                   ("buy and hold (equal weight, no costs)", _num(v.get("buy_and_hold_return")),
                    _num(v.get("buy_and_hold_max_drawdown"))),
                   ("cash", _num(0.0), _num(0.0))] if v else [],
    }


def write_report(results: dict[str, dict[str, Any]], summary: dict[str, Any], path: Path,
                 settings: Settings) -> Path:
    """The trading report of the run, preceded by the lake, data-quality and model sections."""
    from jinja2 import Environment, select_autoescape

    trading = Path(results["trade"]["report_path"]).read_text()
    cols = ("accuracy", "precision", "recall", "f1", "auc")
    quality = [(k, _num(v)) for k, v in summary["quality"].items() if not isinstance(v, dict)]
    quality += [(f"flagged: {k}", _num(v)) for k, v in summary["quality"].get("flagged", {}).items()]
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    section = env.from_string(_SUMMARY_TEMPLATE).render(
        tables=[(k, f"{v:,}") for k, v in summary["tables"].items()],
        r=summary["reconciliation"],
        a=summary["anomalies"],
        quality=quality,
        model_version=summary["model"]["model_version"],
        metric_cols=cols,
        model_rows=[(name, [_num(m.get(c)) for c in cols]) for name, m in summary["model"]["metrics"].items()],
        **_strategy_section(summary),
    )
    marker = "<h2>Metrics</h2>"
    if marker not in trading:
        raise DataValidationError("report", str(results["trade"]["report_path"]), f"has no {marker!r} section")
    html = trading.replace(marker, section + "<h2>Paper trading metrics</h2>", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    log.info("report.written", extra={"path": str(path)})
    return path
