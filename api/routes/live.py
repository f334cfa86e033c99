"""The live feed: a websocket pushing fills and equity points of a run as the trader stores them, or the
fills and risk state of a trading session's account as its journal records them.

The client's first message authenticates (``{"token": <access token>, "run_id": <optional>}``, or
``{"token": ..., "account": <account id>}``): a token in the URL would end up in logs. The feed then polls
the store every ``POLL_S`` and pushes what is new, so a fill is on the page well within a second of the
trader committing it.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from starlette.concurrency import run_in_threadpool

from api.auth import AuthError
from api.deps import Services

router = APIRouter(tags=["live"])
POLL_S = 0.2
AUTH_TIMEOUT_S = 10.0


async def _authenticate(ws: WebSocket, svc: Services) -> tuple[str, str] | None:
    """("run" or "account", its id) to follow, or ``None`` after closing the socket with a reason."""
    try:
        hello = json.loads(await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S))
        svc.auth.verify_access(str(hello.get("token", "")))
    except WebSocketDisconnect:  # the page left (or switched runs) before saying hello
        return None
    except (TimeoutError, ValueError, AttributeError):
        await ws.close(code=4400, reason="first message must be {\"token\": ...}")
        return None
    except AuthError as exc:
        await ws.close(code=4401, reason=exc.reason)
        return None
    if hello.get("account"):
        return "account", str(hello["account"])
    run_id = hello.get("run_id")
    if not run_id:
        runs = await run_in_threadpool(svc.data.runs, 1)
        run_id = runs[0]["run_id"] if runs else ""
    return "run", str(run_id)


@router.websocket("/ws")
async def live(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    await ws.accept()
    followed = await _authenticate(ws, svc)
    if followed is None:
        return
    if followed[0] == "account":
        await _follow_account(ws, svc, followed[1])
        return
    run_id = followed[1]
    await ws.send_json({"type": "hello", "run_id": run_id})
    # Fills may share a millisecond: re-read the last one and skip the ids already pushed at it.
    last_fill, last_equity, pushed_at_last = -1, -1, set[str]()
    alerts_seen = ws.app.state.monitor.count
    try:
        while True:
            fills = await run_in_threadpool(svc.data.fills_after, run_id, last_fill - 1)
            for fill in fills:
                ts = int(fill["ts_ms"])
                if ts == last_fill and fill["id"] in pushed_at_last:
                    continue
                await ws.send_json({"type": "fill", "data": fill})
                if ts > last_fill:
                    last_fill, pushed_at_last = ts, set()
                pushed_at_last.add(str(fill["id"]))
            alerts_seen = await _push_alerts(ws, alerts_seen)
            points = await run_in_threadpool(svc.data.equity_after, run_id, last_equity)
            if points:
                await ws.send_json({"type": "equity", "data": points})
                last_equity = int(points[-1]["ts_ms"])
            await asyncio.sleep(POLL_S)
    except WebSocketDisconnect:
        return


async def _follow_account(ws: WebSocket, svc: Services, account: str) -> None:
    """Push the account's new fills and every change of its risk state (pause, resume, kill switch)."""
    await ws.send_json({"type": "hello", "account": account})
    last_fill, seen, state = -1, set[str](), None
    alerts_seen = ws.app.state.monitor.count
    try:
        while True:
            for fill in await run_in_threadpool(svc.data.account_fills, account, last_fill - 1):
                if fill["id"] in seen:
                    continue
                seen.add(str(fill["id"]))
                last_fill = max(last_fill, int(fill["ts_ms"]))
                await ws.send_json({"type": "fill", "data": jsonable_encoder(fill)})
            alerts_seen = await _push_alerts(ws, alerts_seen)
            now = await run_in_threadpool(svc.data.account, account)
            if now is not None and now != state:
                state = now
                await ws.send_json({"type": "state", "data": jsonable_encoder(now)})
            await asyncio.sleep(POLL_S)
    except WebSocketDisconnect:
        return


async def _push_alerts(ws: WebSocket, after: int) -> int:
    """Push the dashboard's alerts raised since ``after`` (oldest first); returns the last one pushed."""
    for alert in reversed(ws.app.state.monitor.recent(after)):
        await ws.send_json({"type": "alert", "data": jsonable_encoder(alert)})
        after = int(alert["seq"])
    return after
