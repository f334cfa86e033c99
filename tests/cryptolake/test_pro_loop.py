"""cryptolake.ccxt_compat.ProLoop: ccxt.pro's coroutines on their own loop thread, closed in one place."""

from __future__ import annotations

import asyncio
import threading

from cryptolake.ccxt_compat import ProLoop


class _Pro:
    def __init__(self, fail: bool = False) -> None:
        self.closed, self.fail = False, fail

    async def close(self) -> None:
        self.closed = True
        if self.fail:
            raise ConnectionError("socket already gone")


def test_spawned_coroutines_run_and_close_cancels_them_closes_the_exchange_and_stops_the_thread() -> None:
    pro = _Pro()
    loop = ProLoop(pro, "test-pro")
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    watch = loop.spawn(forever())
    assert started.wait(5)
    assert loop.spawn(asyncio.sleep(0, result=7)).result(5) == 7
    loop.close()
    assert watch.cancelled() and pro.closed
    assert not any(t.name == "test-pro" and t.is_alive() for t in threading.enumerate())


def test_a_failing_close_is_logged_and_the_loop_still_stops(caplog) -> None:
    pro = _Pro(fail=True)
    loop = ProLoop(pro, "test-pro-fail")
    with caplog.at_level("INFO", logger="cryptolake.ccxt_compat"):
        loop.close()
    assert pro.closed
    assert [r.getMessage() for r in caplog.records if r.name == "cryptolake.ccxt_compat"] == ["ccxt.pro_close_failed"]
    assert not any(t.name == "test-pro-fail" and t.is_alive() for t in threading.enumerate())
