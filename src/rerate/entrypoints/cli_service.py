"""CLI of the service: ``rerate serve`` and ``rerate user``."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape

from rerate.entrypoints.console import out, print_json, print_listing
from rerate.entrypoints.options import JsonOption
from rerate.services import users

user_cli = typer.Typer(help="Users of the service (web UI and API) and their roles.", no_args_is_help=True)

#: The first admin's password, when given instead of generated (``rerate init``).
ADMIN_PASSWORD_ENV = "RERATE_ADMIN_PASSWORD"


def first_admin(wired: Any) -> tuple[str, str | None] | None:
    """Create the user ``admin`` when the service has no user yet; (name, generated password or None)."""
    if users.has_users(wired):
        return None
    given = os.environ.get(ADMIN_PASSWORD_ENV) or None
    user, generated = users.add_user(wired, "admin", "admin", given)
    return user.name, generated


def register(cli: typer.Typer, app: Any) -> None:
    cli.add_typer(user_cli, name="user")

    @cli.command("serve")
    def serve(
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        poll: Annotated[float, typer.Option(help="Seconds between looks for due jobs.")] = 5.0,
        jobs: Annotated[bool, typer.Option(help="Host the job runner and scheduler.")] = True,
    ) -> None:
        """Run the service: REST API (/api, OpenAPI at /docs), web UI (/), job runner and scheduler."""
        import uvicorn

        from rerate.entrypoints.api.app import create_app

        wired = app()
        created = first_admin(wired)
        if created and created[1]:
            out.print(f"[yellow]first user[/] admin, password [bold]{created[1]}[/] (shown once)")
        out.print(f"rerate serving {wired.home} on http://{host}:{port}/ (API docs at /docs)")
        uvicorn.run(
            create_app(wired, run_jobs=jobs, poll_seconds=poll), host=host, port=port, log_level="info"
        )

    @user_cli.command("add")
    def user_add(
        name: str,
        role: Annotated[str, typer.Option(help="admin, finance, noc, support or readonly.")],
        password: Annotated[
            str | None,
            typer.Option(help="Password (at least 10 characters) \\[default: generated, shown once]."),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Add a user of the web UI and the API."""
        user, generated = users.add_user(app(), name, role, password)
        if as_json:
            print_json({"name": user.name, "role": user.role, "password": generated})
            return
        out.print(f"[green]user {escape(user.name)}[/] ({user.role}) added")
        if generated:
            out.print(f"  password: [bold]{generated}[/] (shown once)")

    @user_cli.command("list")
    def user_list(as_json: JsonOption = False) -> None:
        rows = [
            {"name": u.name, "role": u.role, "active": u.active, "created_at": u.created_at}
            for u in users.list_users(app())
        ]
        print_listing(rows, title="Users", columns=["name", "role", "active", "created_at"], as_json=as_json)

    @user_cli.command("token")
    def user_token(
        name: str,
        days: Annotated[int, typer.Option(min=1, max=3650, help="Days the token is valid.")] = 90,
        as_json: JsonOption = False,
    ) -> None:
        """A long-lived API token for a script or an integration acting as NAME (shown once)."""
        wired = app()
        principal = users.principal_named(wired, name)
        token, _ = users.issue_token(wired, principal, "api", timedelta(days=days))
        if as_json:
            print_json({"name": name, "role": principal.role.value, "access_token": token, "days": days})
            return
        out.print(f"API token for {name} ({principal.role.value}), valid {days} days (shown once):")
        print(token)

    @user_cli.command("password")
    def user_password(
        name: str,
        password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    ) -> None:
        """Set a user's password (their tokens and sessions end)."""
        users.set_password(app(), name, password)
        out.print(f"[green]password of {escape(name)} set[/]")
