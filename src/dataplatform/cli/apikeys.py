"""`dataplatform apikey create|ensure|list|revoke`: the ingestor's API keys (stored hashed)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dataplatform import envfile
from dataplatform.db import apikeys as keys
from dataplatform.db.migrate import migrate
from dataplatform.settings import env_file, get_ingestor_settings, get_postgres_settings

apikey_app = typer.Typer(help="API keys of the ingestor.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _target() -> tuple[str, str]:
    conninfo = get_postgres_settings().conninfo()
    schema = get_ingestor_settings().db_schema
    migrate(conninfo, schema)
    return conninfo, schema


@apikey_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="Who or what uses the key")],
    rate_limit: Annotated[
        float | None,
        typer.Option(help="Requests per second for this key (default: INGESTOR_RATE_LIMIT_PER_S)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key")] = False,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    conninfo, schema = _target()
    key, meta = keys.create(conninfo, schema, name=name, rate_limit_per_s=rate_limit)
    if quiet:
        typer.echo(key)
        return
    err.print(f"created key {meta.key_id} ({meta.name}); it is shown only now:")
    typer.echo(key)


@apikey_app.command("ensure")
def ensure(
    name: Annotated[str, typer.Option("--name", "-n", help="Name of a key created now")],
) -> None:
    """Keep INGESTOR_API_KEY in .env usable: create a key and write it there unless it is active."""
    conninfo, schema = _target()
    current = get_ingestor_settings().api_key.get_secret_value()
    if current and keys.is_active(conninfo, schema, current):
        console.print("INGESTOR_API_KEY in .env is an active key")
        return
    key, meta = keys.create(conninfo, schema, name=name)
    envfile.set_value(env_file(), "INGESTOR_API_KEY", key)
    console.print(f"created key {meta.key_id} ({meta.name}), saved in .env as INGESTOR_API_KEY")


@apikey_app.command("list")
def list_keys() -> None:
    """Every key's id, name, limit and state (never the secret)."""
    conninfo, schema = _target()
    table = Table(title="API keys")
    for column in ("key id", "name", "rate limit/s", "created", "state"):
        table.add_column(column)
    for key in keys.list_keys(conninfo, schema):
        table.add_row(
            key.key_id,
            key.name,
            "default" if key.rate_limit_per_s is None else f"{key.rate_limit_per_s:g}",
            key.created_at.isoformat(timespec="seconds"),
            f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active",
        )
    console.print(table)


@apikey_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by `apikey list`")],
) -> None:
    """Revoke a key (the ingestor stops accepting it within INGESTOR_API_KEY_CACHE_TTL_S)."""
    conninfo, schema = _target()
    if not keys.revoke(conninfo, schema, key_id):
        err.print(f"[red]no active key with id {key_id}[/]")
        raise typer.Exit(code=1)
    console.print(f"revoked {key_id}")
