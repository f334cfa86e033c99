"""Local stand-ins for the external APIs, answering in each API's documented payload shape.

Each factory returns an :class:`aiohttp.web.Application` plus an :class:`ApiState` that
records the requests it saw. Every fake checks the credentials the real API wants, pages its
data the way the real API does, and answers the first ``rate_limit_first`` requests with the
API's own rate-limit response (HTTP 429 and its headers/body). The data served is whatever
the test passes in: for the EVM node it is the real Ethereum blocks of ``../shared/data``
converted back to JSON-RPC (hex quantities).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web


@dataclass
class ApiState:
    """What a fake API saw, and how many rate-limit answers it still owes."""

    rate_limit_first: int = 1
    requests: list[dict[str, Any]] = field(default_factory=list)
    rate_limited: int = 0

    def log(self, request: web.Request, body: Any = None) -> None:
        self.requests.append({"path": request.path, "query": dict(request.query), "body": body,
                              "headers": dict(request.headers)})

    def should_throttle(self) -> bool:
        if self.rate_limited < self.rate_limit_first:
            self.rate_limited += 1
            return True
        return False


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json",
                        headers=headers)


def _app(*routes: web.RouteDef) -> web.Application:
    app = web.Application()
    app.add_routes(routes)
    return app


# --- NewsAPI /v2/everything ------------------------------------------------------------
def newsapi_app(articles: Sequence[Mapping[str, Any]], api_key: str, state: ApiState) -> web.Application:
    """``GET /v2/everything?q=&from=&to=&page=&pageSize=`` with ``X-Api-Key``; newest first."""

    async def everything(request: web.Request) -> web.Response:
        state.log(request)
        if request.headers.get("X-Api-Key") != api_key:
            return _json({"status": "error", "code": "apiKeyInvalid", "message": "Your API key is invalid"}, 401)
        if state.should_throttle():
            return _json({"status": "error", "code": "rateLimited",
                          "message": "You have been rate limited."}, 429, {"Retry-After": "0"})
        page = int(request.query.get("page", "1"))
        size = min(100, int(request.query.get("pageSize", "100")))
        chunk = list(articles)[(page - 1) * size: page * size]
        return _json({"status": "ok", "totalResults": len(articles), "articles": chunk})

    return _app(web.get("/v2/everything", everything))


# --- GDELT DOC 2.0 artlist -------------------------------------------------------------
def gdelt_app(articles: Sequence[Mapping[str, Any]], state: ApiState) -> web.Application:
    """``GET /api/v2/doc/doc?mode=artlist&format=json&startdatetime=&enddatetime=&maxrecords=&sort=dateasc``."""

    async def doc(request: web.Request) -> web.Response:
        state.log(request)
        if state.should_throttle():
            return web.Response(text="Please limit requests to one every 5 seconds or contact "
                                "kalev.leetaru5@gmail.com for larger queries.", status=429)
        q = request.query
        if q.get("mode", "").lower() != "artlist" or q.get("format", "").lower() != "json":
            return web.Response(text="Invalid mode or format", status=400)
        start, end = q["startdatetime"], q["enddatetime"]
        n = min(250, int(q.get("maxrecords", "75")))

        def stamp(a: Mapping[str, Any]) -> str:
            return str(a.get("seendate", "")).replace("T", "").replace("Z", "")

        # rows whose seendate is not 14 digits are served as-is (a corrupted record the client must reject)
        rows = sorted((a for a in articles if start <= stamp(a) <= end or len(stamp(a)) != 14), key=stamp)
        return _json({"articles": rows[:n]} if rows else {})

    return _app(web.get("/api/v2/doc/doc", doc))


# --- FRED series/observations ----------------------------------------------------------
def fred_app(observations: Mapping[str, Sequence[Mapping[str, str]]], api_key: str,
             state: ApiState) -> web.Application:
    """``GET /fred/series/observations?series_id=&api_key=&file_type=json&limit=&offset=``."""

    async def obs(request: web.Request) -> web.Response:
        state.log(request)
        q = request.query
        if q.get("api_key") != api_key:
            return _json({"error_code": 400, "error_message": "Bad Request.  The value for variable "
                          "api_key is not registered."}, 400)
        if state.should_throttle():
            return _json({"error_code": 429, "error_message": "Too Many Requests.  Exceeded Rate Limit"},
                         429, {"Retry-After": "0"})
        series = q.get("series_id", "")
        if series not in observations:
            return _json({"error_code": 400, "error_message": "Bad Request.  The series does not exist."}, 400)
        limit, offset = int(q.get("limit", "100000")), int(q.get("offset", "0"))
        rows = list(observations[series])
        return _json({"realtime_start": "2022-02-01", "realtime_end": "2022-02-01",
                      "observation_start": q.get("observation_start", "1600-01-01"),
                      "observation_end": q.get("observation_end", "9999-12-31"), "units": "lin",
                      "output_type": 1, "file_type": "json", "order_by": "observation_date",
                      "sort_order": "asc", "count": len(rows), "offset": offset, "limit": limit,
                      "observations": rows[offset: offset + limit]})

    return _app(web.get("/fred/series/observations", obs))


# --- RSS 2.0 (WordPress-style ?paged=N) -------------------------------------------------
def rss_app(items: Sequence[Mapping[str, str]], state: ApiState, page_size: int = 10) -> web.Application:
    """``GET /feed/?paged=N``: an RSS 2.0 channel; pages past the end are 404 as on WordPress."""

    async def feed(request: web.Request) -> web.Response:
        state.log(request)
        if state.should_throttle():
            return web.Response(text="Too Many Requests", status=429, headers={"Retry-After": "0"})
        page = int(request.query.get("paged", "1"))
        chunk = list(items)[(page - 1) * page_size: page * page_size]
        if not chunk:
            return web.Response(text="<html>Not Found</html>", status=404, content_type="text/html")
        parts = []
        for it in chunk:
            fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in it.items() if k != "creator")
            if "creator" in it:
                fields += f"<dc:creator>{escape(it['creator'])}</dc:creator>"
            parts.append(f"<item>{fields}</item>")
        xml = ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
               'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Local feed</title>'
               f'<link>http://127.0.0.1/</link><description>test</description>{"".join(parts)}</channel></rss>')
        return web.Response(text=xml, content_type="application/rss+xml")

    return _app(web.get("/feed/", feed))


# --- Reddit OAuth ----------------------------------------------------------------------
def reddit_app(posts: Mapping[str, Sequence[Mapping[str, Any]]], client_id: str, client_secret: str,
               state: ApiState) -> web.Application:
    """``POST /api/v1/access_token`` (client credentials) and ``GET /r/{sub}/new?limit=&after=`` Listings."""
    token = "local-reddit-token-" + client_id

    async def access_token(request: web.Request) -> web.Response:
        form = await request.post()
        state.log(request, dict(form))
        expected = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        if request.headers.get("Authorization") != expected or form.get("grant_type") != "client_credentials":
            return _json({"error": 401, "message": "Unauthorized"}, 401)
        return _json({"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    async def new(request: web.Request) -> web.Response:
        state.log(request)
        if request.headers.get("Authorization") != f"bearer {token}":
            return _json({"message": "Unauthorized", "error": 401}, 401)
        if state.should_throttle():
            return _json({"message": "Too Many Requests", "error": 429}, 429,
                         {"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "0", "X-Ratelimit-Used": "100"})
        rows = list(posts.get(request.match_info["sub"], ()))
        limit = min(100, int(request.query.get("limit", "25")))
        after = request.query.get("after")
        start = 0
        if after:
            names = [f"t3_{p['id']}" for p in rows]
            start = names.index(after) + 1 if after in names else len(rows)
        chunk = rows[start: start + limit]
        nxt = f"t3_{chunk[-1]['id']}" if chunk and start + limit < len(rows) else None
        return _json({"kind": "Listing", "data": {"after": nxt, "dist": len(chunk), "modhash": "",
                                                  "geo_filter": None, "before": None,
                                                  "children": [{"kind": "t3", "data": p} for p in chunk]}},
                     headers={"X-Ratelimit-Remaining": "99", "X-Ratelimit-Reset": "600"})

    return _app(web.post("/api/v1/access_token", access_token), web.get("/r/{sub}/new", new))


# --- X API v2 recent search ------------------------------------------------------------
def x_app(tweets: Sequence[Mapping[str, Any]], users: Sequence[Mapping[str, Any]], bearer: str,
          state: ApiState) -> web.Application:
    """``GET /2/tweets/search/recent`` with ``next_token`` pagination and ``includes.users``."""

    async def recent(request: web.Request) -> web.Response:
        state.log(request)
        if request.headers.get("Authorization") != f"Bearer {bearer}":
            return _json({"title": "Unauthorized", "type": "about:blank", "status": 401,
                          "detail": "Unauthorized"}, 401)
        if state.should_throttle():
            return _json({"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                          "status": 429}, 429, {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0",
                                                "x-rate-limit-reset": "0"})
        size = max(10, min(100, int(request.query.get("max_results", "10"))))
        start = int(request.query.get("next_token", "tok0")[3:])
        lo, hi = request.query.get("start_time"), request.query.get("end_time")

        def within(t: Mapping[str, Any]) -> bool:  # start_time inclusive, end_time exclusive, as documented
            try:
                ts = datetime.fromisoformat(str(t["created_at"]).replace("Z", "+00:00"))
            except (KeyError, ValueError):
                return True  # served as-is: a corrupted record the client must reject
            return ((lo is None or ts >= datetime.fromisoformat(lo.replace("Z", "+00:00")))
                    and (hi is None or ts < datetime.fromisoformat(hi.replace("Z", "+00:00"))))

        matching = [t for t in tweets if within(t)]
        chunk = matching[start: start + size]
        ids = {t.get("author_id") for t in chunk}
        meta: dict[str, Any] = {"result_count": len(chunk)}
        if chunk:
            meta.update(newest_id=chunk[0].get("id"), oldest_id=chunk[-1].get("id"))
        if start + size < len(matching):
            meta["next_token"] = f"tok{start + size}"
        body: dict[str, Any] = {"meta": meta}
        if chunk:
            body["data"] = chunk
            body["includes"] = {"users": [u for u in users if u["id"] in ids]}
        return _json(body)

    return _app(web.get("/2/tweets/search/recent", recent))


# --- Discord channel history -----------------------------------------------------------
def discord_app(messages: Mapping[str, Sequence[Mapping[str, Any]]], bot_token: str,
                state: ApiState) -> web.Application:
    """``GET /api/v10/channels/{id}/messages?limit=&before=``: newest first, ``Bot`` auth."""

    async def history(request: web.Request) -> web.Response:
        state.log(request)
        if request.headers.get("Authorization") != f"Bot {bot_token}":
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        if state.should_throttle():
            return _json({"message": "You are being rate limited.", "retry_after": 0.01, "global": False},
                         429, {"Retry-After": "0", "X-RateLimit-Scope": "user"})
        rows = sorted(messages.get(request.match_info["cid"], ()), key=lambda m: int(m["id"]), reverse=True)
        before = request.query.get("before")
        if before:
            rows = [m for m in rows if int(m["id"]) < int(before)]
        limit = min(100, int(request.query.get("limit", "50")))
        return _json(rows[:limit])

    return _app(web.get("/api/v10/channels/{cid}/messages", history))


# --- Telegram Bot API getUpdates --------------------------------------------------------
def telegram_bot_app(updates: Sequence[Mapping[str, Any]], bot_token: str, state: ApiState) -> web.Application:
    """``GET /bot<token>/getUpdates?offset=&limit=&allowed_updates=``: updates from ``offset`` on, oldest first.

    As on api.telegram.org, a call with ``offset`` confirms (and drops) every update below it, a wrong token
    is ``401 Unauthorized`` and a throttled call ``429`` with ``parameters.retry_after``.
    """
    confirmed = [0]

    async def get_updates(request: web.Request) -> web.Response:
        state.log(request)
        if request.match_info["token"] != bot_token:
            return _json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        if state.should_throttle():
            return _json({"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 0",
                          "parameters": {"retry_after": 0}}, 429)
        offset = int(request.query.get("offset", "0"))
        confirmed[0] = max(confirmed[0], offset)
        limit = max(1, min(100, int(request.query.get("limit", "100"))))
        allowed = json.loads(request.query.get("allowed_updates", "[]")) or None
        rows = [u for u in updates if int(u["update_id"]) >= confirmed[0]
                and (allowed is None or any(k in u for k in allowed))]
        return _json({"ok": True, "result": rows[:limit]})

    return _app(web.get("/bot{token}/getUpdates", get_updates))


# --- Etherscan-style explorer (module=stats daily endpoints) ----------------------------
_EXPLORER_FIELDS = {"dailytx": "transactionCount", "dailyavggasprice": "avgGasPrice_Wei", "dailygasused": "gasUsed"}


def explorer_app(daily: Mapping[str, Mapping[str, str]], api_key: str, state: ApiState) -> web.Application:
    """``GET /api?module=stats&action=dailytx|dailyavggasprice|dailygasused&startdate=&enddate=&apikey=``.

    The first throttled answer is an HTTP 429; the second is Etherscan's own HTTP-200
    ``{"status":"0","message":"NOTOK","result":"Max rate limit reached"}``.
    """

    async def api(request: web.Request) -> web.Response:
        state.log(request)
        q = request.query
        if q.get("apikey") != api_key:
            return _json({"status": "0", "message": "NOTOK", "result": "Invalid API Key"})
        if state.should_throttle():
            if state.rate_limited == 1:
                return web.Response(text="Too Many Requests", status=429, headers={"Retry-After": "0"})
            return _json({"status": "0", "message": "NOTOK",
                          "result": "Max rate limit reached, please use API Key for higher rate limit"})
        action = q.get("action", "")
        if q.get("module") != "stats" or action not in _EXPLORER_FIELDS:
            return _json({"status": "0", "message": "NOTOK", "result": "Error! Missing Or invalid Module name"})
        start, end = q["startdate"], q["enddate"]
        rows = []
        for day, value in sorted(daily[action].items()):
            if start <= day <= end:
                ts = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
                rows.append({"UTCDate": day, "unixTimeStamp": str(ts), _EXPLORER_FIELDS[action]: value})
        if not rows:
            return _json({"status": "0", "message": "No transactions found", "result": []})
        return _json({"status": "1", "message": "OK", "result": rows})

    return _app(web.get("/api", api), web.get("/v2/api", api))


# --- EVM JSON-RPC node -----------------------------------------------------------------
def _hex(v: int | None) -> str | None:
    return None if v is None else hex(int(v))


def etl_block_to_rpc(block: Mapping[str, Any], txs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An ethereum-etl block + its transactions back into ``eth_getBlockByNumber(n, true)`` shape."""
    rpc_txs = []
    for t in sorted(txs, key=lambda t: t["transaction_index"]):
        rpc_txs.append({
            "blockHash": t["block_hash"], "blockNumber": _hex(t["block_number"]), "from": t["from_address"],
            "gas": _hex(t["gas"]), "gasPrice": _hex(t["gas_price"]), "hash": t["hash"], "input": t["input"],
            "nonce": _hex(t["nonce"]), "to": t["to_address"], "transactionIndex": _hex(t["transaction_index"]),
            "value": _hex(t["value"]), "type": _hex(t["transaction_type"]),
            "maxFeePerGas": _hex(t.get("max_fee_per_gas")),
            "maxPriorityFeePerGas": _hex(t.get("max_priority_fee_per_gas")),
        })
    return {
        "number": _hex(block["number"]), "hash": block["hash"], "parentHash": block["parent_hash"],
        "nonce": block["nonce"], "sha3Uncles": block["sha3_uncles"], "logsBloom": block["logs_bloom"],
        "transactionsRoot": block["transactions_root"], "stateRoot": block["state_root"],
        "receiptsRoot": block["receipts_root"], "miner": block["miner"], "difficulty": _hex(block["difficulty"]),
        "totalDifficulty": _hex(block["total_difficulty"]), "size": _hex(block["size"]),
        "extraData": block["extra_data"], "gasLimit": _hex(block["gas_limit"]), "gasUsed": _hex(block["gas_used"]),
        "timestamp": _hex(block["timestamp"]), "baseFeePerGas": _hex(block.get("base_fee_per_gas")),
        "withdrawalsRoot": block.get("withdrawals_root"),
        "withdrawals": [{"index": _hex(w["index"]), "validatorIndex": _hex(w["validator_index"]),
                         "address": w["address"], "amount": _hex(w["amount"])} for w in block.get("withdrawals", [])],
        "uncles": [], "transactions": rpc_txs,
    }


def etl_log_to_rpc(log: Mapping[str, Any]) -> dict[str, Any]:
    """An ethereum-etl log back into the ``eth_getLogs`` shape."""
    return {"address": log["address"], "topics": list(log["topics"]), "data": log["data"],
            "blockNumber": _hex(log["block_number"]), "blockHash": log["block_hash"],
            "transactionHash": log["transaction_hash"], "transactionIndex": _hex(log["transaction_index"]),
            "logIndex": _hex(log["log_index"]), "removed": False}


def evm_app(blocks: Sequence[Mapping[str, Any]], logs: Sequence[Mapping[str, Any]], state: ApiState,
            max_batch: int = 10) -> web.Application:
    """JSON-RPC 2.0 over HTTP POST, single or batch: eth_blockNumber, eth_getBlockByNumber, eth_getLogs.

    ``blocks`` and ``logs`` are read at each call, so a replay can grow them (the chain's head advancing).
    """

    def call(req: Mapping[str, Any]) -> dict[str, Any]:
        rid, method, params = req.get("id"), req.get("method"), req.get("params", [])
        by_number = {int(b["number"], 16): b for b in blocks}
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": rid, "result": hex(max(by_number, default=0))}
        if method == "eth_getBlockByNumber":
            block = dict(by_number.get(int(params[0], 16)) or {})
            if block and not params[1]:
                block["transactions"] = [t["hash"] for t in block["transactions"]]
            return {"jsonrpc": "2.0", "id": rid, "result": block or None}
        if method == "eth_getLogs":
            f = params[0]
            lo, hi = int(f["fromBlock"], 16), int(f["toBlock"], 16)
            want = (f.get("topics") or [None])[0]
            rows = [lg for lg in logs if lo <= int(lg["blockNumber"], 16) <= hi
                    and (want is None or (lg["topics"] and lg["topics"][0] == want))]
            return {"jsonrpc": "2.0", "id": rid, "result": rows}
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"the method {method} "
                                                       "does not exist/is not available"}}

    async def rpc(request: web.Request) -> web.Response:
        body = await request.json()
        state.log(request, body)
        if state.should_throttle():
            return _json({"jsonrpc": "2.0", "id": None, "error": {"code": 429, "message": "Your app has "
                          "exceeded its compute units per second capacity."}}, 429, {"Retry-After": "0"})
        if isinstance(body, list):
            if len(body) > max_batch:
                return _json({"jsonrpc": "2.0", "id": None, "error": {"code": -32600,
                              "message": f"batch too large (max {max_batch})"}}, 400)
            return _json([call(r) for r in body])
        return _json(call(body))

    return _app(web.post("/", rpc))
