"""cryptolake.logs: native output to the run log, Python output on the console, quiet library loggers."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

from cryptolake.logs import LIBRARY_LEVELS, quiet_libraries


def test_native_writes_go_to_the_log_file_and_python_output_stays_on_the_console(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    script = textwrap.dedent(f"""
        import logging, os, subprocess, sys
        from pathlib import Path
        from cryptolake.logs import configure_logging, get_logger, native_output_to
        configure_logging("INFO")
        log = get_logger("cryptolake.test")
        with native_output_to(Path({str(log_file)!r})):
            os.write(2, b"native stderr line\\n")  # what a JVM or a C library writes
            subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child jvm banner\\\\n')"])
            print("python progress line", file=sys.stderr)
            log.info("quiet.info")
            log.warning("loud.warning")
            with native_output_to(Path({str(log_file)!r})):  # nested, as a pipeline task inside the main job
                os.write(2, b"nested native line\\n")
                print("nested python line", file=sys.stderr)
        print("after the block", file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    console, logged = done.stderr, log_file.read_text()
    assert "python progress line" in console and "after the block" in console
    assert "loud.warning" in console and "quiet.info" not in console
    assert "native stderr line" in logged and "child jvm banner" in logged
    assert "quiet.info" in logged and "loud.warning" in logged
    assert "native stderr line" not in console and "child jvm banner" not in console
    assert "nested python line" in console and "nested native line" in logged
    assert "nested native line" not in console and "nested python line" not in logged


def test_quiet_libraries_sets_levels_and_filters_only_the_named_deprecation() -> None:
    quiet_libraries()
    for name, level in LIBRARY_LEVELS.items():
        assert logging.getLogger(name).level == level
    assert not logging.getLogger("kafka.net.selector").isEnabledFor(logging.WARNING)
    assert logging.getLogger("kafka.net.selector").isEnabledFor(logging.ERROR)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_libraries()
        warnings.warn("Using `httpx` with `starlette.testclient` is deprecated; install x", UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]


def test_py4j_root_logger_info_is_dropped_but_its_warnings_and_our_info_are_kept() -> None:
    """py4j logs retries with ``logging.info`` on the root logger (at exit, into a closed stream)."""
    import io

    from cryptolake.logs import configure_logging

    buf = io.StringIO()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        configure_logging("INFO", stream=buf)

        def record(level: int, path: str, msg: str) -> logging.LogRecord:
            return logging.LogRecord("root", level, path, 1, msg, None, None)

        root.handle(record(logging.INFO, "/venv/site-packages/py4j/java_gateway.py", "Exception while sending"))
        root.handle(record(logging.WARNING, "/venv/site-packages/py4j/java_gateway.py", "py4j warns"))
        root.handle(record(logging.INFO, "/work/main/pipeline/market.py", "ours"))
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]
    lines = buf.getvalue().splitlines()
    assert [line.split('"event":')[1].split('"')[1] for line in lines] == ["py4j warns", "ours"]
