"""The pid registry behind `cryptolake stack down`: only registered, still-matching pids are stopped."""

from __future__ import annotations

import subprocess
import sys
import time

from cryptolake import jvm
from cryptolake.settings import Settings
from infra import processes


def _sleeper() -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    deadline = time.monotonic() + 10
    while "time.sleep" not in (jvm.cmdline(child.pid) or "") and time.monotonic() < deadline:
        time.sleep(0.01)  # registering before exec would record the parent's command line
    return child


def _settings(tmp_path) -> Settings:
    s = Settings()
    return s.model_copy(update={"paths": s.paths.model_copy(update={"state_dir": tmp_path})})


def test_registered_process_is_stopped_and_pruned(tmp_path):
    settings = _settings(tmp_path)
    child = _sleeper()
    try:
        jvm.register("spark", child.pid, settings)
        assert [t.pid for t in processes.registered(settings)] == [child.pid]
        stopped = processes.stop_registered(settings, kind="spark", timeout_s=5)
        assert [t.pid for t in stopped] == [child.pid]
        assert child.wait(timeout=5) == -15  # SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
    assert processes.registered(settings) == []
    assert list((tmp_path / "pids").glob("*.json")) == []


def test_entry_with_a_different_command_line_is_never_signalled(tmp_path):
    settings = _settings(tmp_path)
    child = _sleeper()
    try:
        (tmp_path / "pids").mkdir()
        (tmp_path / "pids" / f"spark-{child.pid}.json").write_text(
            f'{{"kind": "spark", "pid": {child.pid}, "cmdline": "someone else"}}')
        assert processes.stop_registered(settings, timeout_s=1) == []
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_alive_is_false_for_missing_pid():
    assert processes.alive(999_999_999) is False
