"""The API is secure by default: tokens, roles, lockout, refresh rotation, CSRF, headers, limits, no secrets."""

from __future__ import annotations

import json
import logging
import time

from tests.api.conftest import PASSWORDS, backtest_run, make_api

EXPECTED_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


def test_no_token_is_401_and_a_bad_one_too(api) -> None:
    for path in ("/api/v1/runs", "/api/v1/auth/me", "/api/v1/audit"):
        r = api.client.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = api.client.get("/api/v1/runs", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid access token"


def test_roles_have_least_privilege(api) -> None:
    assert api.client.get("/api/v1/auth/me", headers=api.bearer("vic")).json() == {"username": "vic", "role": "viewer"}
    assert api.client.get("/api/v1/runs", headers=api.bearer("vic")).status_code == 200
    for user in ("vic", "tess"):
        r = api.client.get("/api/v1/audit", headers=api.bearer(user))
        assert r.status_code == 403 and "needs 'admin'" in r.json()["detail"]
    assert api.client.get("/api/v1/users", headers=api.bearer("ada")).status_code == 200


def test_an_expired_access_token_is_refused(api) -> None:
    headers = api.bearer("vic")
    api.clock.now += 901
    r = api.client.get("/api/v1/runs", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "access token expired"


def test_lockout_after_repeated_failures_even_for_the_right_password(api) -> None:
    for _ in range(4):
        r = api.client.post("/api/v1/auth/login", json={"username": "vic", "password": "wrong password!"})
        assert r.status_code == 401 and r.json()["detail"] == "invalid username or password"
    r = api.client.post("/api/v1/auth/login", json={"username": "vic", "password": "wrong password!"})
    assert r.status_code == 423
    r = api.client.post("/api/v1/auth/login", json={"username": "vic", "password": PASSWORDS["vic"]})
    assert r.status_code == 423
    api.clock.now += 901
    assert api.login("vic")["role"] == "viewer"
    outcomes = [row["outcome"] for row in api.client.get("/api/v1/audit", headers=api.bearer("ada")).json()
                if row["action"] == "login" and row["username"] == "vic"]
    assert outcomes.count("denied") == 4 and outcomes.count("locked") == 2 and outcomes.count("ok") == 1


def test_unknown_user_and_wrong_password_get_the_same_answer(api) -> None:
    a = api.client.post("/api/v1/auth/login", json={"username": "nobody", "password": "whatever it is"})
    b = api.client.post("/api/v1/auth/login", json={"username": "vic", "password": "whatever it is"})
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_refresh_rotates_and_a_reused_token_revokes_the_whole_login(api) -> None:
    first = api.login("tess")
    r = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    fresh = {"Authorization": f"Bearer {second['access_token']}"}
    assert api.client.get("/api/v1/runs", headers=fresh).status_code == 200
    # The first refresh token again: a replay. Every token of that login dies, the fresh ones included.
    r = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and "reused" in r.json()["detail"]
    for token in (first["access_token"], second["access_token"]):
        r = api.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["detail"] == "login revoked"
    assert api.client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401
    # Another login of the same user is unaffected.
    assert api.client.get("/api/v1/runs", headers=api.bearer("tess")).status_code == 200
    reuse = [row for row in api.client.get("/api/v1/audit", headers=api.bearer("ada")).json()
             if row["action"] == "refresh" and row["outcome"] == "reuse"]
    assert len(reuse) == 1 and reuse[0]["username"] == "tess"


def test_logout_revokes_the_login(api) -> None:
    pair = api.login("vic")
    assert api.client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    r = api.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert r.status_code == 401


def test_cookie_refresh_needs_the_csrf_header(api) -> None:
    api.login("vic")  # sets the refresh and CSRF cookies on the client
    csrf = api.client.cookies.get("cl_csrf")
    assert csrf and api.client.cookies.get("cl_refresh")
    r = api.client.post("/api/v1/auth/refresh")
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = api.client.post("/api/v1/auth/refresh", headers={"x-csrf-token": "forged"})
    assert r.status_code == 403
    r = api.client.post("/api/v1/auth/refresh", headers={"x-csrf-token": csrf})
    assert r.status_code == 200 and r.json()["role"] == "viewer"


def test_login_cookies_are_httponly_strict_and_secure_over_https(tmp_path) -> None:
    api = make_api(tmp_path, https=True)
    r = api.client.post("/api/v1/auth/login", json={"username": "vic", "password": PASSWORDS["vic"]})
    cookies = r.headers.get_list("set-cookie")
    refresh = next(c for c in cookies if c.startswith("cl_refresh="))
    assert "HttpOnly" in refresh and "Secure" in refresh and "SameSite=strict" in refresh
    assert "Path=/api/v1/auth" in refresh
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


def test_every_response_carries_the_security_headers(api) -> None:
    responses = [api.client.get("/api/v1/health"), api.client.get("/api/v1/runs"),
                 api.client.get("/api/v1/runs/x/fills", headers=api.bearer("vic")),
                 api.client.post("/api/v1/auth/login", json={"username": "vic"})]
    assert [r.status_code for r in responses] == [200, 401, 404, 422]
    for r in responses:
        for header in EXPECTED_HEADERS:
            assert header in r.headers, (r.request.url, header)
        csp = r.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_login_rate_limit_answers_429_with_retry_after(tmp_path) -> None:
    api = make_api(tmp_path, login_rate_per_min=3)
    codes = [api.client.post("/api/v1/auth/login", json={"username": "vic", "password": "nope nope nope"}).status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = api.client.post("/api/v1/auth/login", json={"username": "vic", "password": PASSWORDS["vic"]})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_cors_allows_only_the_allowlist(tmp_path) -> None:
    api = make_api(tmp_path, cors_origins=("https://desk.example",))
    ok = api.client.get("/api/v1/health", headers={"Origin": "https://desk.example"})
    assert ok.headers["access-control-allow-origin"] == "https://desk.example"
    other = api.client.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_no_secret_in_any_response_or_log(api, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    password = PASSWORDS["tess"]
    pair = api.login("tess")
    bad = api.client.post("/api/v1/auth/login", json={"username": "tess", "password": 12345})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.password"
    wrong = api.client.post("/api/v1/auth/login", json={"username": "tess", "password": password + "x"})
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    bodies = [bad.text, wrong.text] + [api.client.get(p, headers=headers).text
                                        for p in ("/api/v1/runs", "/api/v1/auth/me")]
    bodies += [api.client.get("/api/v1/audit", headers=api.bearer("ada")).text]
    secret = api.svc.auth._secret
    logged = caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str)
    for text in [*bodies, logged]:
        assert password not in text and secret not in text
        assert pair["refresh_token"] not in text
    assert pair["access_token"] not in logged
    users = api.client.get("/api/v1/users", headers=api.bearer("ada")).json()
    assert {u["username"] for u in users} == {"ada", "tess", "vic"} and "password_hash" not in json.dumps(users)


def test_user_validation_names_the_field(api) -> None:
    import pytest

    from cryptolake.errors import DataValidationError

    with pytest.raises(DataValidationError, match="invalid password='\\*\\*\\*': at least 12"):
        api.svc.auth.add_user("newbie", "short", "viewer")
    with pytest.raises(DataValidationError, match="invalid role='root'"):
        api.svc.auth.add_user("newbie", "long enough password", "root")
    with pytest.raises(DataValidationError, match="already exists"):
        api.svc.auth.add_user("vic", "long enough password", "viewer")


def test_trading_endpoints_show_the_stored_run(api) -> None:
    result = backtest_run(api.store_url, "bt1")
    headers = api.bearer("vic")
    runs = api.client.get("/api/v1/runs", headers=headers).json()
    assert [r["run_id"] for r in runs] == ["bt1"] and runs[0]["status"] == "finished"
    fills = api.client.get("/api/v1/runs/bt1/fills", headers=headers).json()
    assert len(fills) == len(result.fills) > 4
    assert [f["price"] for f in fills] == list(result.fills["price"])
    equity = api.client.get("/api/v1/runs/bt1/equity", headers=headers).json()
    assert len(equity) == 120 and equity[-1]["equity"] == result.metrics["final_equity"]
    orders = api.client.get("/api/v1/runs/bt1/orders", headers=headers).json()
    assert len(orders) == len(result.orders)
    positions = api.client.get("/api/v1/runs/bt1/positions", headers=headers).json()
    assert [p["instrument"] for p in positions] == ["gymcrypto:BTC/USD"]
    missing = api.client.get("/api/v1/runs/nope/fills", headers=headers)
    assert missing.status_code == 404 and missing.json()["detail"] == "run_id='nope': no such run"


def test_pipeline_freshness_lists_every_lake_table(api) -> None:
    import pandas as pd
    from deltalake import write_deltalake

    lake = api.svc.settings.paths.lake()
    frame = pd.DataFrame({"x": [1, 2, 3]})
    write_deltalake(f"{lake}/silver/bars", frame)
    write_deltalake(f"{lake}/silver/bars", frame, mode="append")
    write_deltalake(f"{lake}/gold/features", frame)
    api.clock.now = time.time() + 60  # a minute after the commits
    rows = api.client.get("/api/v1/pipeline/freshness", headers=api.bearer("vic")).json()
    assert {r["table"]: r["version"] for r in rows} == {"silver.bars": 1, "gold.features": 0}
    assert all(55 <= r["age_s"] <= 120 for r in rows)
    assert {r["operation"] for r in rows} <= {"WRITE", "CREATE TABLE"}
