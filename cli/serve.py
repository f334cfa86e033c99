"""`cryptolake serve` (the dashboard and control API) and `cryptolake users` (who may use it)."""

from __future__ import annotations

import os
import sys

import typer

users_app = typer.Typer(help="Users of the dashboard and API", no_args_is_help=True)
PASSWORD_ENV = "CRYPTOLAKE_NEW_USER_PASSWORD"


def serve(
    host: str = typer.Option(None, help="Interface (default: api.host)"),
    port: int = typer.Option(None, help="Port (default: api.port; 0 picks a free one)"),
) -> None:
    """Start the dashboard and API over HTTPS (a self-signed certificate unless api.tls_cert is set)."""
    import uvicorn

    from api.app import create_app
    from api.tls import tls_files
    from cryptolake.settings import get_settings

    settings = get_settings()
    ssl: dict[str, str] = {}
    if settings.api.https:
        cert, key = tls_files(settings)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    scheme = "https" if ssl else "http"
    bind_host = host or settings.api.host
    bind_port = settings.api.port if port is None else port
    typer.echo(f"cryptolake dashboard on {scheme}://{bind_host}:{bind_port}/  (Ctrl-C to stop)")
    uvicorn.run(create_app(), host=bind_host, port=bind_port, log_level="warning", access_log=False,
                server_header=False, **ssl)  # type: ignore[arg-type]


@users_app.command("add")
def add_user(
    username: str = typer.Argument(..., help="Login name (a-z, 0-9, '_', '.', '-')"),
    role: str = typer.Option("viewer", help="viewer, trader or admin"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input"),
) -> None:
    """Create a user. The password is prompted for (or read from stdin, or CRYPTOLAKE_NEW_USER_PASSWORD);
    there is no default password and no default user."""
    from api.app import build_services
    from cryptolake.errors import DataValidationError
    from cryptolake.logs import register_secret
    from cryptolake.settings import get_settings

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    register_secret(password)
    svc = build_services(get_settings())
    try:
        svc.auth.add_user(username, password, role)
    except DataValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    from api.audit import audit

    audit(svc.engine, "user.add", "ok", username=None, client="cli", detail={"user": username, "role": role})
    typer.echo(f"user {username!r} created with role {role!r}")


@users_app.command("list")
def list_users() -> None:
    """Users, their roles and whether they are locked."""
    from api.app import build_services
    from cryptolake.settings import get_settings

    for user in build_services(get_settings()).auth.list_users():
        typer.echo(f"{user['username']}\t{user['role']}\tfailed_logins={user['failed_logins']}")
