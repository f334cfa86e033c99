"""Pipeline alerts: a task that fails for good (after its retries) tells the desk, once per task and interval;
stale lake tables and model promotions (:class:`LakeWatch`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptolake.alerts import Alert, Alerter, AlertKind, Severity
from cryptolake.settings import get_settings

if TYPE_CHECKING:  # the registry imports torch; a DAG's failure callback must stay light
    from models.registry import RegistryEntry


@lru_cache(maxsize=1)
def alerter() -> Alerter:
    """The process's alerter (destinations from ``CRYPTOLAKE_ALERT_URLS``)."""
    return Alerter.from_environment(get_settings().alerts)


def failure_alert(dag_id: str, task_id: str, interval: str, error: str) -> Alert:
    """The alert for a task that failed; the key makes repeats of the same failure one message."""
    return Alert(AlertKind.PIPELINE_FAILURE, f"Pipeline failed: {dag_id}.{task_id}",
                 f"interval {interval}: {error[:500]}", key=f"pipeline:{dag_id}:{task_id}:{interval}",
                 severity=Severity.CRITICAL)


def on_task_failure(context: Any) -> None:
    """Airflow's ``on_failure_callback``: called once the task has no retry left."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    lo, hi = context.get("data_interval_start"), context.get("data_interval_end")
    interval = f"{lo.isoformat() if lo else '?'}/{hi.isoformat() if hi else '?'}"
    alerter().raise_alert(failure_alert(dag_id, task_id, interval, str(context.get("exception") or "unknown error")))


@dataclass
class LakeWatch:
    """Stale lake tables and model promotions, checked by a long-running process (``cryptolake serve``).

    A table is stale when its last commit is older than ``stale_after_s``; it is reported once per
    version (a new commit that is still late is a new fact). A promotion is a change of the champion
    since the last check; the champion found at the first check is the baseline, not news.
    """

    alerter: Alerter
    stale_after_s: float
    stale_seen: set[tuple[str, int]] = field(default_factory=set)
    champion: str | None = None
    started: bool = False

    def check(self, freshness: list[dict[str, Any]], champion: RegistryEntry | None) -> list[Alert]:
        """Raise the alerts of ``freshness`` rows (table, version, age_s, last_commit) and ``champion``."""
        out: list[Alert] = []
        for row in freshness:
            key = (str(row["table"]), int(row["version"]))
            if float(row["age_s"]) > self.stale_after_s and key not in self.stale_seen:
                self.stale_seen.add(key)
                age_h, limit_h = float(row["age_s"]) / 3600, self.stale_after_s / 3600
                out.append(Alert(AlertKind.STALE_DATA, f"Stale data: {key[0]}",
                                 f"{key[0]} version {key[1]}: no commit for {age_h:.1f} h "
                                 f"(last {row['last_commit']:%Y-%m-%d %H:%M} UTC; limit {limit_h:g} h)",
                                 key=f"stale_data:{key[0]}:{key[1]}", severity=Severity.WARNING))
        version = champion.version if champion is not None else None
        if self.started and version is not None and version != self.champion:
            assert champion is not None
            out.append(Alert(AlertKind.MODEL_PROMOTION, f"New champion: {version}",
                             f"{version} ({champion.kind}, trained {champion.trained_at:%Y-%m-%d %H:%M}) replaces "
                             f"{self.champion or 'no champion'}; gate: {champion.may_trade[1]}",
                             key=f"model_promotion:{version}"))
        self.champion, self.started = version, True
        for alert in out:
            self.alerter.raise_alert(alert)
        return out
