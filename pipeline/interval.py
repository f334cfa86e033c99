"""A task's data interval, its progress lines and progress bars (rate and ETA)."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptolake.settings import Settings

if TYPE_CHECKING:
    from rich.progress import Progress


@dataclass(frozen=True)
class Interval:
    """A half-open data interval [start, end) in UTC: what one pipeline run is about."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"interval bounds must be UTC-aware: {self.start!r}, {self.end!r}")
        if self.end <= self.start:
            raise ValueError(f"interval end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @classmethod
    def parse(cls, start: str | datetime, end: str | datetime) -> Interval:
        def as_dt(v: str | datetime) -> datetime:
            dt = v if isinstance(v, datetime) else datetime.fromisoformat(v)
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

        return cls(as_dt(start), as_dt(end))

    def ms(self) -> tuple[int, int]:
        return int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)

    @property
    def tag(self) -> str:
        """``YYYYmmdd-YYYYmmdd`` (or with hours when the bounds are not midnights): names a run's outputs."""
        fmt = "%Y%m%d" if self.start.hour == self.end.hour == 0 else "%Y%m%d%H"
        return f"{self.start:{fmt}}-{self.end:{fmt}}"


def progress(line: str) -> None:
    """One progress line on stderr (Airflow's task logging captures log records, not this)."""
    print(line, file=sys.stderr, flush=True)


def _bar(unit: str) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("      {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn(f"{{task.fields[rate]}} {unit}/s"), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(), console=Console(file=sys.stderr), refresh_per_second=4,
    )


class StepBar:
    """One progress bar for a step's work: ``advance`` as items are done (rate and ETA shown)."""

    def __init__(self, progress: Progress, task: Any) -> None:
        self._progress, self._task = progress, task

    def update(self, completed: int, total: int | None = None) -> None:
        """Set how many items are done (and the total, when it grows)."""
        if total is None:
            self._progress.update(self._task, completed=completed)
        else:
            self._progress.update(self._task, completed=completed, total=total)
        speed = self._progress.tasks[self._task].speed
        self._progress.update(self._task, rate=f"{speed:,.0f}" if speed else "-")


@contextlib.contextmanager
def step_bar(description: str, total: int | None, unit: str) -> Iterator[StepBar]:
    """A rich progress bar on stderr for the duration of the block."""
    with _bar(unit) as progress:
        bar = StepBar(progress, progress.add_task(description, total=total, rate="-"))
        yield bar


@contextlib.contextmanager
def spark_bar(description: str, poll_s: float = 0.5) -> Iterator[None]:
    """A progress bar over the Spark tasks this block runs (from the SparkContext's status tracker).

    Spark does not know the row count of a plan in advance, so the unit is tasks: the bar's total
    grows as stages are submitted and every finished task advances it.
    """
    from pyspark import SparkContext

    done = threading.Event()
    seen: dict[int, tuple[int, int]] = {}  # stage id -> (completed, total)

    def follow(bar: StepBar) -> None:
        tracker = None
        while not done.wait(poll_s):
            try:
                if tracker is None:
                    sc = SparkContext._active_spark_context
                    if sc is None or getattr(sc, "_jsc", None) is None:
                        continue  # the session is still starting
                    tracker = sc.statusTracker()
                for stage_id in tracker.getActiveStageIds():
                    info = tracker.getStageInfo(stage_id)
                    if info is not None:
                        seen[stage_id] = (info.numCompletedTasks, info.numTasks)
            except Exception:  # the JVM going away mid-poll ends the bar, never the job
                return
            for stage_id, (_, total) in list(seen.items()):
                if stage_id not in tracker.getActiveStageIds():
                    seen[stage_id] = (total, total)  # finished (or skipped) since the last poll
            bar.update(sum(c for c, _ in seen.values()), total=max(1, sum(t for _, t in seen.values())))

    with step_bar(description, None, "tasks") as bar:
        thread = threading.Thread(target=follow, args=(bar,), daemon=True, name="spark-progress")
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)
            total = max(1, sum(t for _, t in seen.values()))
            bar.update(total, total=total)


def process_tree_cpu_seconds(root: int | None = None) -> float:
    """user + system CPU seconds of ``root`` (default: this process) and its live descendants (/proc).

    A step's CPU time does not depend on what else shares the cores, unlike its wall time; the
    descendants are Spark's JVM and Python workers and the local broker.
    """
    import os

    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks[int(d.name)] = int(fields[11]) + int(fields[12])
            children.setdefault(int(fields[1]), []).append(int(d.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def run_dir(settings: Settings, interval: Interval) -> Path:
    """Where an interval's task results and reports are recorded (read back by the main job's summary)."""
    return settings.paths.artifacts_dir / "runs" / f"{interval.start:%Y-%m-%d}_{interval.end:%Y-%m-%d}"
