"""Every command written in runbooks/ is a real command of the platform or of a named tool.

Commands are the lines of the pages' ```bash blocks (native) and ```bash cloud blocks (AWS
CLI; no AWS account here). Nothing is run against a live platform: each command is parsed by
the parser that would run it.

- `dataplatform ...`: the real Typer/Click app parses the whole argument list, and `--help`
  answers on its command path;
- `dataplatform airflow ...`: Airflow's own argument parser (in .venv-airflow), and the DAG ids
  named are DAG files in airflow_dags/;
- `python -m <module> ...`: the module exists; a pyspark_jobs module's `parse_args` accepts the
  arguments;
- `java -cp '.jars/kafka/*' <class> ...`: the class is in the Kafka jars;
- `aws <service> <operation> --params`: the service, operation and parameters exist in
  botocore's models (what the AWS CLI is generated from);
- anything else: the program is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from botocore.session import get_session
from typer.main import get_command
from typer.testing import CliRunner

from dataplatform.cli.main import app
from tests.runbooks import PAGES, ROOT, RUNBOOKS, Command, page_commands

REQUIRED = {
    "kafka_consumer_lag",
    "spark_job_hang",
    "kafka_restore_from_backup",
    "delta_lake_time_travel_recovery",
    "delta_lake_schema_drift",
    "airflow_metadata_db_recovery",
    "ingestor_overload",
    "incident_review_template",
}
#: The programs allowed in ```bash cloud blocks (runbooks/README.md, "Cloud-only commands").
CLOUD_PROGRAMS = {"aws"}
#: AWS CLI commands that are customisations, not API operations (not in botocore's models).
AWS_CUSTOM_COMMANDS = {("s3", "cp"), ("s3", "ls"), ("s3", "sync"), ("logs", "tail")}
#: AWS CLI options every command takes.
AWS_GLOBAL_OPTIONS = {
    "region",
    "profile",
    "output",
    "query",
    "endpoint-url",
    "cli-input-json",
    "cli-input-yaml",
    "no-paginate",
    "debug",
}
#: AWS CLI service names that differ from botocore's.
AWS_SERVICE_NAMES = {"s3api": "s3"}
AIRFLOW_PYTHON = ROOT / ".venv-airflow" / "bin" / "python"
DAG_IDS = {p.stem for p in (ROOT / "airflow_dags").glob("*.py") if not p.stem.startswith("_")}


ALL = [command for page in PAGES for command in page_commands(page)]


def _of(program: str) -> list[Command]:
    return [c for c in ALL if Path(c.argv[0]).name == program]


def test_runbook_pages_exist_and_are_linked() -> None:
    assert {p.stem for p in PAGES} >= REQUIRED
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for name in REQUIRED:
        assert f"({name}.md)" in index, f"runbooks/README.md does not link {name}"
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    for name in REQUIRED:
        assert f"runbooks/{name}.md" in operations, f"docs/OPERATIONS.md does not link {name}"


@pytest.mark.parametrize("page", sorted(REQUIRED - {"incident_review_template"}))
def test_runbook_has_native_and_cloud_commands(page: str) -> None:
    commands = page_commands(RUNBOOKS / f"{page}.md")
    assert any(not c.cloud and Path(c.argv[0]).name == "dataplatform" for c in commands)
    assert any(c.cloud for c in commands)


def test_runbook_commands_use_only_defined_variables() -> None:
    # The page's own variables are expanded; what is left must be the platform's .env names.
    env_names = set(
        re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.M)
    )
    for command in ALL:
        for word in command.argv:
            for name in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", word):
                assert name in env_names, f"{command}: ${name} is not set on the page"


@cache
def _root_command() -> Any:
    # Typer bundles its own copy of Click (typer._click), so its classes are not `click`'s:
    # groups are told apart by `resolve_command`, parse errors by `format_message`.
    return get_command(app)


def _parse_dataplatform(args: list[str]) -> tuple[list[str], list[str]]:
    """Parse `args` with the real CLI: returns the command path and any pass-through args."""
    command = _root_command()
    ctx = command.make_context("dataplatform", list(args), resilient_parsing=False)
    path: list[str] = []
    while hasattr(command, "resolve_command"):
        remaining = [*ctx._protected_args, *ctx.args]
        name, sub, rest = command.resolve_command(ctx, remaining)
        assert name is not None and sub is not None
        path.append(name)
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=False)
        command = sub
    return path, list(ctx.args)


def _dataplatform_commands() -> list[Command]:
    commands = _of("dataplatform")
    assert commands
    for command in commands:
        assert command.argv[0] == ".venv/bin/dataplatform", (
            f"{command}: call .venv/bin/dataplatform"
        )
    return commands


@pytest.mark.parametrize("command", _dataplatform_commands(), ids=str)
def test_dataplatform_command_parses(command: Command) -> None:
    try:
        path, extra = _parse_dataplatform(list(command.argv[1:]))
    except Exception as exc:
        if not hasattr(exc, "format_message"):
            raise
        pytest.fail(f"{command}: {exc.format_message()}")
    assert path, command
    if path[0] not in {"airflow", "supervisorctl"}:
        assert not extra, f"{command}: unexpected arguments {extra}"


def test_dataplatform_command_paths_answer_help() -> None:
    paths = {
        tuple(_parse_dataplatform(list(c.argv[1:]))[0])
        for c in _dataplatform_commands()
        if c.argv[1] != "airflow"  # Airflow's help is checked by Airflow's parser below
    }
    runner = CliRunner()
    for path in sorted(paths):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, f"dataplatform {' '.join(path)} --help: {result.output}"


def _service_names() -> set[str]:
    from dataplatform.native.services import SERVICES

    return set(SERVICES)


def test_supervisorctl_commands_name_platform_services() -> None:
    services = _service_names()
    for command in _dataplatform_commands():
        if command.argv[1] == "supervisorctl":
            action, *names = command.argv[2:]
            assert action in {"start", "stop", "restart", "status"}, str(command)
            assert names and set(names) <= services, f"{command}: unknown service"


def test_logs_commands_name_platform_services() -> None:
    services = _service_names()
    for command in _dataplatform_commands():
        if command.argv[1] == "logs":
            assert command.argv[2] in services, f"{command}: unknown service"


AIRFLOW_CHECK = """
import json, sys
from airflow.cli.cli_parser import get_parser
parser = get_parser()
out = []
for argv in json.loads(sys.argv[1]):
    try:
        ns = parser.parse_args(argv)
        out.append({"argv": argv, "ok": True, "dag_id": getattr(ns, "dag_id", None)})
    except SystemExit as exc:
        out.append({"argv": argv, "ok": False, "code": exc.code})
print(json.dumps(out))
"""


def test_airflow_commands_parse_with_airflow(tmp_path: Path) -> None:
    commands = [c for c in _dataplatform_commands() if c.argv[1] == "airflow"]
    assert commands
    assert AIRFLOW_PYTHON.exists(), f"{AIRFLOW_PYTHON} missing: run ./quick_start.sh --setup-only"
    argvs = [list(c.argv[2:]) for c in commands]
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", AIRFLOW_CHECK, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=180,
        # A scratch home: parsing must not touch the platform's Airflow.
        env={"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    for command, answer in zip(commands, answers, strict=True):
        assert answer["ok"], f"{command}: Airflow's parser refused it"
        if answer["dag_id"] is not None:
            assert answer["dag_id"] in DAG_IDS, f"{command}: no DAG {answer['dag_id']}"


@pytest.mark.parametrize("command", [c for c in ALL if "-m" in c.argv[1:2]], ids=str)
def test_python_module_commands_name_modules(command: Command) -> None:
    assert command.argv[0] == ".venv/bin/python", f"{command}: call .venv/bin/python"
    module = command.argv[2]
    assert importlib.util.find_spec(module), f"{command}: no module {module}"
    loaded = importlib.import_module(module)
    if hasattr(loaded, "parse_args"):
        try:
            loaded.parse_args(list(command.argv[3:]))
        except SystemExit:
            pytest.fail(f"{command}: {module}.parse_args refused the arguments")


@cache
def _jar_classes(pattern: str) -> frozenset[str]:
    names: set[str] = set()
    for jar in ROOT.glob(pattern.rstrip("*") + "*.jar"):
        with zipfile.ZipFile(jar) as archive:
            names.update(
                n[:-6].replace("/", ".") for n in archive.namelist() if n.endswith(".class")
            )
    return frozenset(names)


@pytest.mark.parametrize("command", _of("java"), ids=str)
def test_java_commands_name_classes_in_the_jars(command: Command) -> None:
    assert shutil.which("java"), "java missing: ./quick_start.sh installs Java 17"
    classpath_flag, classpath, main_class = command.argv[1:4]
    assert classpath_flag == "-cp" and classpath.startswith(".jars/"), str(command)
    classes = _jar_classes(classpath)
    assert classes, f"{command}: no jars in {classpath} (./quick_start.sh resolves them)"
    assert main_class in classes, f"{command}: {main_class} is not in {classpath}"


def _aws_check(command: Command) -> None:
    service, operation, *rest = command.argv[1:]
    if (service, operation) in AWS_CUSTOM_COMMANDS:
        return
    model = get_session().get_service_model(AWS_SERVICE_NAMES.get(service, service))
    operations = {_cli_name(name): name for name in model.operation_names}
    assert operation in operations, f"{command}: {service} has no operation {operation}"
    shape = model.operation_model(operations[operation]).input_shape
    members = shape.members if shape is not None else {}
    allowed = set(AWS_GLOBAL_OPTIONS)
    for name, member in members.items():
        allowed.add(_cli_name(name))
        if member.type_name == "boolean":
            allowed.add("no-" + _cli_name(name))
    given = {word[2:].split("=")[0] for word in rest if word.startswith("--")}
    assert given <= allowed, f"{command}: unknown parameters {sorted(given - allowed)}"
    # Idempotency tokens are filled in by the CLI itself.
    required = {
        _cli_name(name)
        for name in (shape.required_members if shape else [])
        if not members[name].metadata.get("idempotencyToken")
    }
    assert required <= given | {"cli-input-json"}, f"{command}: missing {sorted(required - given)}"


def _cli_name(name: str) -> str:
    from botocore import xform_name

    return xform_name(name, "-")


@pytest.mark.parametrize("command", [c for c in ALL if c.cloud], ids=str)
def test_cloud_commands_exist_in_the_aws_api(command: Command) -> None:
    assert command.argv[0] in CLOUD_PROGRAMS, f"{command}: not a documented cloud-only program"
    _aws_check(command)


@pytest.mark.parametrize(
    "command",
    [
        c
        for c in ALL
        if not c.cloud and Path(c.argv[0]).name not in {"dataplatform", "java", "python"}
    ],
    ids=str,
)
def test_other_native_programs_are_installed(command: Command) -> None:
    program = command.argv[0]
    assert program not in CLOUD_PROGRAMS, f"{command}: cloud-only, put it in a ```bash cloud block"
    if "/" in program:
        assert (ROOT / program).exists() or Path(program).exists(), f"{command}: no {program}"
    else:
        assert shutil.which(program), f"{command}: {program} is not installed"
