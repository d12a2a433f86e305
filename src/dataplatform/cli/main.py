"""`dataplatform`: run the platform natively and operate it."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from dataplatform import composefiles, dockerhost, envfile
from dataplatform.cli.airflow import AIRFLOW_COMMAND, airflow_passthrough
from dataplatform.cli.apikeys import apikey_app
from dataplatform.cli.backup import backup_app
from dataplatform.cli.db import db_app
from dataplatform.cli.drill import drill_app
from dataplatform.cli.generate import generate
from dataplatform.cli.lake import lake_app
from dataplatform.cli.lineage import lineage
from dataplatform.cli.observability import dashboards_app, report
from dataplatform.cli.run import run_app
from dataplatform.native import runtime, supervisor
from dataplatform.native.airflow import AIRFLOW_KEYS, get_airflow_settings
from dataplatform.native.services import SERVICES, SHARED_INIT, Context, PlatformError
from dataplatform.settings import TRACKS, Track, env_file, get_runtime_settings, project_root
from dataplatform.shutdown import exit_code_of, exit_now

app = typer.Typer(
    help="Data ingestion platform: run it natively, check it, operate it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
env_app = typer.Typer(help="The generated `.env` file.", no_args_is_help=True)
app.add_typer(env_app, name="env")
app.add_typer(backup_app, name="backup")
app.command("airflow", **AIRFLOW_COMMAND)(airflow_passthrough)
app.add_typer(run_app, name="run")
app.add_typer(apikey_app, name="apikey")
app.add_typer(db_app, name="db")
app.add_typer(lake_app, name="lake")
app.add_typer(drill_app, name="drill")
app.command("lineage")(lineage)
app.add_typer(dashboards_app, name="dashboards")
app.command("report")(report)
app.command("generate")(generate)

console = Console()
err = Console(stderr=True)

TrackOption = Annotated[
    Track | None,
    typer.Option(
        "--track",
        "-t",
        help=f"One of {', '.join(TRACKS)} (default: the running track, else DATAPLATFORM_TRACK)",
    ),
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=1)


def _track(track: Track | None, ctx: Context | None = None) -> Track:
    """`--track`, else the running platform's track, else DATAPLATFORM_TRACK."""
    running = runtime.running_track(ctx) if ctx else None
    return track or running or get_runtime_settings().track


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@env_app.command("init")
def env_init() -> None:
    """Create `.env` from `.env.example` with random secrets (keeps existing values)."""
    added = envfile.ensure_env_file(project_root() / ".env.example", env_file())
    if added:
        console.print(f"wrote {len(added)} variables to {env_file()}")
    else:
        console.print(f"{env_file()} is complete")


@app.command()
def up(track: TrackOption = None) -> None:
    """Start the track's services natively, in dependency order, waiting for each."""
    chosen = _track(track)
    ctx = Context.load(chosen)
    try:
        runtime.up(ctx, chosen, progress=lambda line: console.print(f"  {line}", highlight=False))
    except PlatformError as exc:
        raise _fail(str(exc)) from None
    console.print(f"[green]the {chosen} track is up[/]")


@app.command()
def down() -> None:
    """Stop every native service and the process manager."""
    ctx = Context.load()
    try:
        pids = runtime.down(ctx)
    except PlatformError as exc:
        raise _fail(str(exc)) from None
    left = [pid for pid in pids if runtime.alive(pid)]
    if left:
        raise _fail(f"processes still alive after down: {left}")
    console.print(f"stopped {len(pids)} processes" if pids else "nothing was running")


@app.command()
def status(track: TrackOption = None) -> None:
    """A table of services, ports and health (of the running track, unless --track says)."""
    ctx = Context.load()
    chosen = track or runtime.running_track(ctx)
    rows = runtime.status(dataclasses.replace(ctx, track=chosen) if chosen else ctx, chosen)
    table = Table(title="dataplatform status")
    for column in ("service", "state", "pid", "ports", "health", "what"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            row.state,
            str(row.pid or "-"),
            ",".join(map(str, row.ports)),
            "[green]healthy[/]" if row.healthy else "[red]unhealthy[/]",
            row.description,
        )
    # Wide enough for one line per service even when stdout is not a terminal (CI, pipes).
    Console(width=max(120, console.width)).print(table)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="A service name, as in `status`")],
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
) -> None:
    """Show a service's log (data/logs/<service>.log)."""
    if service not in SERVICES and service != "supervisord":
        raise _fail(f"unknown service {service!r}: one of {', '.join(SERVICES)}")
    path: Path = get_runtime_settings().logs_dir / f"{service}.log"
    if not path.exists():
        raise _fail(f"{path} does not exist yet: has {service} been started?")
    command = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    sys.exit(subprocess.run(command, check=False).returncode)


@app.command()
def doctor(track: TrackOption = None) -> None:
    """Preflight: ports, memory, disk, Java, jars, binaries; each problem with its fix.

    The track checked is --track, else the running platform's, else DATAPLATFORM_TRACK.

    With a Docker engine present it also checks the host for `docker compose --profile <track>`.
    """
    ctx = Context.load()
    chosen = _track(track, ctx)
    problems = [
        f"[{p.check}] {p.message}"
        for p in runtime.preflight(dataclasses.replace(ctx, track=chosen), chosen)
    ]
    host = dockerhost.inspect_host()
    if host is not None:
        problems += [f"[docker] {message}" for message in dockerhost.compose_problems(host, chosen)]
    for problem in problems:
        err.print(f"[red]✗[/] {problem}", highlight=False)
    if problems:
        raise typer.Exit(code=1)
    mode = "natively and with docker compose" if host else "natively (no Docker engine answers)"
    console.print(f"[green]ready to run the {chosen} track {mode}[/]")


@app.command("init")
def init(
    service: Annotated[str, typer.Argument(help=f"One of {', '.join(SHARED_INIT)}")],
) -> None:
    """Run a service's initialise step against it (compose's one-shot `<service>-init`).

    Idempotent: seeds the reference data (postgres), creates the bucket (s3) or the topics
    (kafka), with the same code `dataplatform up` runs natively.
    """
    step = SHARED_INIT.get(service)
    if step is None:
        raise _fail(f"unknown service {service!r}: one of {', '.join(SHARED_INIT)}")
    step(Context.load())
    console.print(f"{service} initialised")


@app.command("openmetadata-keys")
def openmetadata_keys(
    folder: Annotated[Path, typer.Argument(help="Where to write the two DER files")],
) -> None:
    """Write OpenMetadata's JWT signing key pair from OPENMETADATA_JWT_PRIVATE_KEY (compose).

    `dataplatform env init` generates the private key into `.env`; the server reads both keys
    as DER files (`RSA_PRIVATE_KEY_FILE_PATH`, `RSA_PUBLIC_KEY_FILE_PATH`), so the compose
    one-shot `openmetadata-keys` writes them into the volume the server mounts, instead of the
    image's published default pair. Idempotent.
    """
    import os

    value = os.environ.get("OPENMETADATA_JWT_PRIVATE_KEY") or envfile.parse(
        env_file().read_text(encoding="utf-8") if env_file().exists() else ""
    ).get("OPENMETADATA_JWT_PRIVATE_KEY", "")
    try:
        files = envfile.rsa_key_files(value)
    except ValueError as exc:
        raise _fail(
            f"OPENMETADATA_JWT_PRIVATE_KEY is not a generated key ({exc}): run "
            "`dataplatform env init` after removing it from .env"
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = folder / name
        # Read-only from the last run: replaced, not opened for writing.
        path.unlink(missing_ok=True)
        path.write_bytes(data)
        # The server runs as another user than this step: readable by all, inside a volume
        # that only the OpenMetadata containers mount.
        path.chmod(0o444)
    console.print(f"wrote {', '.join(sorted(files))} to {folder}")


@app.command("airflow-key")
def airflow_key(
    purpose: Annotated[str, typer.Argument(help=f"One of {', '.join(AIRFLOW_KEYS)}")],
) -> None:
    """Print an Airflow key derived from AIRFLOW_SECRET_KEY, as native airflow.cfg holds it.

    Compose's Airflow reads its secrets through `AIRFLOW__..._CMD` options that run this, so
    both runtimes derive them with the same code.
    """
    key = AIRFLOW_KEYS.get(purpose)
    if key is None:
        raise _fail(f"unknown key {purpose!r}: one of {', '.join(AIRFLOW_KEYS)}")
    typer.echo(key(get_airflow_settings()))


@app.command("compose-plan")
def compose_plan(
    track: TrackOption = None,
    seaweedfs: Annotated[
        bool, typer.Option(help="With docker-compose.seaweedfs.yml (SeaweedFS as the S3 server)")
    ] = False,
) -> None:
    """List the services `docker compose --profile <track> up` starts, without Docker.

    Resolved by compose's own loader (tools/compose-resolve, built by quick_start.sh) with
    `.env` (else `.env.example`), so it also fails where `docker compose` would.
    """
    chosen = _track(track)
    files = (
        (composefiles.BASE, composefiles.SEAWEEDFS_OVERLAY) if seaweedfs else (composefiles.BASE,)
    )
    dotenv = env_file() if env_file().exists() else composefiles.ENV_EXAMPLE
    try:
        model = composefiles.resolve(chosen, files, env_file=dotenv)
    except (FileNotFoundError, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    profiles = ",".join(composefiles.TRACK_PROFILES[chosen]) or "(none)"
    console.print(f"{chosen} track: docker compose profile {profiles}", highlight=False)
    for name, spec in sorted(model["services"].items()):
        kind = "one-shot" if composefiles.is_one_shot(name) else "long-running"
        memory = f"{int(spec.get('mem_limit') or 0) >> 20}MiB" if spec.get("mem_limit") else "-"
        ports = ",".join(
            f"{p.get('host_ip', '')}:{p.get('published')}" for p in spec.get("ports") or []
        )
        console.print(
            f"{name:<24} {kind:<13} {memory:>8}  {spec.get('image', '-'):<42} {ports or '-'}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("supervisorctl", context_settings={"allow_extra_args": True})
def supervisorctl(ctx: typer.Context) -> None:
    """Pass a command to supervisorctl for this project (e.g. `restart kafka`)."""
    conf = supervisor.conf_path(Context.load())
    binary = Path(sys.executable).parent / "supervisorctl"
    sys.exit(subprocess.run([str(binary), "-c", str(conf), *ctx.args], check=False).returncode)


def main() -> NoReturn:
    """The `dataplatform` console script: the Typer app, then `shutdown.exit_now`.

    `lake` commands read tables with delta-rs, whose pyarrow scanner threads can abort the
    interpreter at exit after the command succeeded; the exit code stays the app's.
    """
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exit_code_of(exc)
    exit_now(code)


if __name__ == "__main__":
    main()
