"""supervisord as the native process manager: config rendering and control over XML-RPC.

supervisord keeps each service running, restarts it when it dies, stops whole process groups
and writes one log per service. Dependency order and readiness are the runtime's job
(`dataplatform.native.runtime`), using the probes in `services.py`.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import shlex
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from dataplatform.native.base import Context, PlatformError, wait_until
from dataplatform.native.services import SERVICES, runs_as_root, track_environment


def conf_path(ctx: Context) -> Path:
    """`data/run/supervisord.conf`."""
    return ctx.runtime.run_dir / "supervisord.conf"


def socket_path(ctx: Context) -> Path:
    """The control socket; only its owner can use it."""
    return ctx.runtime.run_dir / "supervisor.sock"


def pid_path(ctx: Context) -> Path:
    """supervisord's own PID file."""
    return ctx.runtime.run_dir / "supervisord.pid"


def render_config(ctx: Context) -> Path:
    """Write supervisord.conf with every known service (started on demand, never automatically)."""
    ctx.runtime.run_dir.mkdir(parents=True, exist_ok=True)
    ctx.runtime.logs_dir.mkdir(parents=True, exist_ok=True)
    parser = configparser.RawConfigParser()
    parser["unix_http_server"] = {"file": str(socket_path(ctx)), "chmod": "0700"}
    parser["supervisord"] = {
        "logfile": str(ctx.runtime.logs_dir / "supervisord.log"),
        "logfile_maxbytes": "10MB",
        "logfile_backups": "2",
        "pidfile": str(pid_path(ctx)),
        "directory": str(ctx.runtime.data_dir.parent),
        "childlogdir": str(ctx.runtime.logs_dir),
        "minfds": "8192",
    }
    if runs_as_root():
        parser["supervisord"]["user"] = "root"
    parser["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    parser["supervisorctl"] = {"serverurl": f"unix://{socket_path(ctx)}"}
    for service in SERVICES.values():
        section: dict[str, str] = {
            "command": shlex.join(service.command(ctx)),
            "autostart": "false",
            "autorestart": "unexpected",
            "startsecs": "2",
            "startretries": "3",
            "stopsignal": service.stop_signal,
            "stopwaitsecs": str(service.stop_wait_s),
            # Stop and kill the whole process group: nothing may outlive `dataplatform down`.
            "stopasgroup": "true",
            "killasgroup": "true",
            "redirect_stderr": "true",
            "stdout_logfile": str(ctx.runtime.logs_dir / f"{service.name}.log"),
            "stdout_logfile_maxbytes": "20MB",
            "stdout_logfile_backups": "2",
        }
        env = track_environment(ctx, service)
        if env:
            section["environment"] = ",".join(f'{k}="{v}"' for k, v in env.items())
        if service.run_as and runs_as_root():
            section["user"] = service.run_as
        parser[f"program:{service.name}"] = section
    target = conf_path(ctx)
    with target.open("w", encoding="utf-8") as fh:
        parser.write(fh)
    return target


def rpc(ctx: Context) -> Any:
    """An XML-RPC proxy to the running supervisord."""
    transport = SupervisorTransport(None, None, f"unix://{socket_path(ctx)}")
    # The host part is ignored by the Unix-socket transport.
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def supervisord_pid(ctx: Context) -> int | None:
    """The PID of a live supervisord of this project, or None."""
    try:
        pid = int(pid_path(ctx).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def is_running(ctx: Context) -> bool:
    """True when supervisord answers on its socket."""
    if supervisord_pid(ctx) is None:
        return False
    try:
        return rpc(ctx).supervisor.getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Fault):
        return False


def start_daemon(ctx: Context) -> None:
    """Start supervisord (daemonised) unless it runs; reload the config when it does."""
    render_config(ctx)
    if is_running(ctx):
        # Pick up changed commands: programs whose definition changed are re-added stopped
        # (`up` starts them again); running programs whose definition is the same are untouched.
        added, changed, removed = rpc(ctx).supervisor.reloadConfig()[0]
        for name in removed + changed:
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc(ctx).supervisor.stopProcess(name)
            rpc(ctx).supervisor.removeProcessGroup(name)
        for name in added + changed:
            rpc(ctx).supervisor.addProcessGroup(name)
        return
    supervisord = Path(sys.executable).parent / "supervisord"
    result = subprocess.run(
        [str(supervisord), "-c", str(conf_path(ctx))], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PlatformError(f"supervisord refused to start: {result.stderr.strip()}")
    if not wait_until(lambda: is_running(ctx), timeout_s=15):
        raise PlatformError(
            f"supervisord did not start; see {ctx.runtime.logs_dir / 'supervisord.log'}"
        )


def process_info(ctx: Context) -> dict[str, dict[str, Any]]:
    """supervisord's view of every program, by name; empty when it does not run."""
    if not is_running(ctx):
        return {}
    return {info["name"]: info for info in rpc(ctx).supervisor.getAllProcessInfo()}


def start_program(ctx: Context, name: str) -> None:
    """Start one program unless it runs already."""
    state = process_info(ctx).get(name, {}).get("statename")
    if state in ("RUNNING", "STARTING"):
        return
    try:
        rpc(ctx).supervisor.startProcess(name, True)
    except xmlrpc.client.Fault as fault:
        raise PlatformError(
            f"{name} failed to start ({fault.faultString}); "
            f"last lines of {ctx.runtime.logs_dir / (name + '.log')}:\n{tail(ctx, name)}"
        ) from None


def shutdown(ctx: Context, timeout_s: float = 120) -> None:
    """Stop every program, then supervisord itself, and wait until it is gone."""
    pid = supervisord_pid(ctx)
    if pid is None:
        return
    with contextlib.suppress(OSError, xmlrpc.client.Fault):
        rpc(ctx).supervisor.shutdown()
    if not wait_until(lambda: supervisord_pid(ctx) is None, timeout_s=timeout_s):
        raise PlatformError(f"supervisord (PID {pid}) did not stop within {timeout_s:.0f}s")


def tail(ctx: Context, name: str, lines: int = 20) -> str:
    """The last lines of a service's log."""
    path = ctx.runtime.logs_dir / f"{name}.log"
    if not path.exists():
        return "(no log yet)"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 16_384))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])
