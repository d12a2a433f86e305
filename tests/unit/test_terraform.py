"""terraform_infra/: every file parses, modules are typed and documented, the environments wire
up, names match the native platform, checkov is clean (documented skips only) and the files are
formatted as `tofu fmt` wants.

HCL is read with python-hcl2 (the `dev` extra). checkov lives in .venv-checkov and OpenTofu in
.tools/bin, both installed by `bash tools/install.sh` (run by ./quick_start.sh); the tests call
them by absolute path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from dataplatform.contracts import ENTITIES
from dataplatform.products import GOLD_PRODUCTS
from dataplatform.settings import PostgresSettings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "terraform_infra"
MODULES = sorted(p for p in (INFRA / "modules").iterdir() if p.is_dir())
#: The environments' roots; `_shared` holds the root files they link to (one copy, no drift).
ENVIRONMENTS = sorted(
    p for p in (INFRA / "environments").iterdir() if p.is_dir() and not p.name.startswith("_")
)
SHARED = INFRA / "environments" / "_shared"
TF_FILES = sorted(INFRA.rglob("*.tf"))
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
TOFU = ROOT / ".tools" / "bin" / "tofu"
#: Module block arguments that are Terraform meta-arguments, not module variables.
META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}
NATIVE_TOPICS = {entity.topic for entity in ENTITIES}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals' quotes (`'"x"'`); drop them, also inside lists/maps."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not k.startswith("__")}
    return value


@cache
def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    return parsed


def _blocks(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every `kind "name" {...}` block of a folder's .tf files, by unquoted name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        for block in _load(path).get(kind, []):
            for name, body in block.items():
                found[_unquote(name)] = body
    return found


def _text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.tf")))


def _composes(folder: Path) -> bool:
    return bool(_blocks(folder, "module"))


#: Every folder that calls modules: the environments, the platform module, the modules with a key.
COMPOSITIONS = ENVIRONMENTS + [m for m in MODULES if _composes(m)]


def _module_calls(env: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    calls = {}
    for name, body in _blocks(env, "module").items():
        source = (env / _unquote(body["source"])).resolve()
        calls[name] = (source, {k: v for k, v in body.items() if not k.startswith("__")})
    return calls


@pytest.mark.parametrize("path", TF_FILES, ids=[_rel(p) for p in TF_FILES])
def test_parse_terraform_file_succeeds(path: Path) -> None:
    assert isinstance(_load(path), dict)


def test_layout_has_every_module_and_environment() -> None:
    assert {p.name for p in MODULES} >= {
        "s3_data_lake",
        "msk_kafka",
        "rds_postgres",
        "lambda_api_ingestor",
        "spark_jobs",
        "mwaa_airflow",
        "documentdb",
        "platform",
        "kms_key",
    }
    assert {p.name for p in ENVIRONMENTS} == {"dev", "staging", "prod"}


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda p: p.name)
def test_environment_sets_only_its_values(env: Path) -> None:
    # The module call, variables, outputs and providers are links to one shared copy; the
    # environment's own main.tf holds nothing but its locals.
    for shared in sorted(SHARED.glob("*.tf")):
        link = env / shared.name
        assert link.is_symlink(), f"{_rel(link)} is not a link to {_rel(shared)}"
        assert link.resolve() == shared.resolve()
    own = [p.name for p in env.glob("*.tf") if not p.is_symlink()]
    assert own == ["main.tf"]
    assert {k for k in _load(env / "main.tf") if not k.startswith("__")} == {"locals"}


def test_kms_keys_come_from_the_kms_key_module() -> None:
    # One key definition (rotation, deletion window, key policy) for every module that encrypts.
    for module in MODULES:
        if module.name == "kms_key":
            continue
        assert "aws_kms_key" not in _blocks(module, "resource"), (
            f"{_rel(module)} defines its own aws_kms_key: use ../kms_key"
        )
    users = {
        m.name
        for m in MODULES
        if any(_unquote(b["source"]) == "../kms_key" for b in _blocks(m, "module").values())
    }
    assert users == {
        "s3_data_lake",
        "msk_kafka",
        "rds_postgres",
        "lambda_api_ingestor",
        "mwaa_airflow",
        "documentdb",
    }


@pytest.mark.parametrize("folder", MODULES + ENVIRONMENTS, ids=lambda p: p.name)
def test_variables_have_type_and_description(folder: Path) -> None:
    variables = _blocks(folder, "variable")
    assert variables or folder.parent.name == "environments"
    for name, body in variables.items():
        assert "type" in body, f"{_rel(folder)}: variable {name} has no type"
        assert len(_unquote(body.get("description", ""))) > 10, (
            f"{_rel(folder)}: variable {name} has no description"
        )


@pytest.mark.parametrize("folder", MODULES + ENVIRONMENTS, ids=lambda p: p.name)
def test_outputs_are_described(folder: Path) -> None:
    outputs = _blocks(folder, "output")
    assert outputs, f"{_rel(folder)} declares no output"
    for name, body in outputs.items():
        assert len(_unquote(body.get("description", ""))) > 10, (
            f"{_rel(folder)}: output {name} has no description"
        )


@pytest.mark.parametrize("folder", MODULES + ENVIRONMENTS, ids=lambda p: p.name)
def test_variables_are_declared_and_used(folder: Path) -> None:
    declared = set(_blocks(folder, "variable"))
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", _text(folder)))
    assert used <= declared, f"{_rel(folder)}: undeclared variables {sorted(used - declared)}"
    assert declared <= used, f"{_rel(folder)}: unused variables {sorted(declared - used)}"


@pytest.mark.parametrize("env", COMPOSITIONS, ids=lambda p: p.name)
def test_module_arguments_are_module_variables(env: Path) -> None:
    calls = _module_calls(env)
    assert calls
    for name, (source, arguments) in calls.items():
        assert source.is_dir(), f"{_rel(env)}: module {name} source {source} does not exist"
        variables = _blocks(source, "variable")
        given = set(arguments) - META_ARGUMENTS
        unknown = given - set(variables)
        assert not unknown, f"{_rel(env)}: module {name} has no variables {sorted(unknown)}"
        required = {v for v, body in variables.items() if "default" not in body}
        missing = required - given
        assert not missing, f"{_rel(env)}: module {name} misses required {sorted(missing)}"


@pytest.mark.parametrize("env", COMPOSITIONS, ids=lambda p: p.name)
def test_module_references_name_outputs(env: Path) -> None:
    calls = _module_calls(env)
    code = re.sub(r"(?m)^\s*#.*$", "", _text(env))  # comments may name nested addresses
    references = set(re.findall(r"\bmodule\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)", code))
    assert references
    for module, output in sorted(references):
        assert module in calls, f"{_rel(env)}: module.{module} is not declared"
        outputs = _blocks(calls[module][0], "output")
        assert output in outputs, f"{_rel(env)}: module {module} has no output {output}"


def test_environments_differ_only_in_sizing() -> None:
    # The three environments set the same values (each its own), which the shared call uses.
    def values(env: Path) -> set[str]:
        [locals_block] = _load(env / "main.tf")["locals"]
        return {k for k in locals_block if not k.startswith("__")}

    names = [values(env) for env in ENVIRONMENTS]
    assert all(n == names[0] for n in names)
    used = set(re.findall(r"\blocal\.([A-Za-z_]\w*)", (SHARED / "platform.tf").read_text()))
    assert used == names[0]


def test_platform_topics_are_the_native_topics() -> None:
    [locals_block] = _load(INFRA / "modules" / "platform" / "main.tf")["locals"]
    assert set(_unquote(locals_block["topic_names"])) == NATIVE_TOPICS


def test_module_defaults_match_native_names_and_ports() -> None:
    topics = _blocks(INFRA / "modules" / "kafka_topics", "variable")["topics"]["default"]
    assert set(_unquote(topics)) == NATIVE_TOPICS
    lake = _blocks(INFRA / "modules" / "s3_data_lake", "variable")
    assert {(e["domain"], e["name"]) for e in _unquote(lake["entities"]["default"])} == {
        (entity.domain, entity.name) for entity in ENTITIES
    }
    assert _unquote(lake["gold_products"]["default"]) == GOLD_PRODUCTS
    rds = _blocks(INFRA / "modules" / "rds_postgres", "variable")
    # The fields' defaults, not an instance: production refuses an instance without a password.
    fields = PostgresSettings.model_fields
    assert rds["port"]["default"] == fields["port"].default
    assert _unquote(rds["database_name"]["default"]) == fields["db"].default
    documents = _blocks(INFRA / "modules" / "documentdb", "variable")
    assert documents["port"]["default"] == 27017  # compose's MongoDB, natively FerretDB


def test_lake_table_paths_follow_the_native_layout() -> None:
    text = (INFRA / "modules" / "s3_data_lake" / "main.tf").read_text(encoding="utf-8")
    for layer in ("bronze", "silver", "quarantine"):
        assert f'"s3://${{aws_s3_bucket.lake.bucket}}/{layer}/${{e.domain}}/${{e.name}}"' in text
    assert '"s3://${aws_s3_bucket.lake.bucket}/gold/${domain}/${product}"' in text


def test_lambda_environment_names_are_platform_settings() -> None:
    env_example = (ROOT / ".env.example").read_text(encoding="utf-8")
    # Set lines and the overrides the comments name (`Set INGESTOR_SINK=postgres|kafka`).
    known = set(re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", env_example, flags=re.M))
    function = _blocks(INFRA / "modules" / "lambda_api_ingestor", "resource")
    body = _unquote(function["aws_lambda_function"])["ingestor"]
    [environment] = body["environment"]
    variables = environment["variables"]
    names = set(variables) - {"POSTGRES_PASSWORD_SECRET_ID"}  # read by the Lambda handler
    assert names <= known, f"not in .env.example: {sorted(names - known)}"


def test_checkov_skips_carry_reasons() -> None:
    skips = [
        (path, match)
        for path in TF_FILES
        for match in re.finditer(r"#\s*checkov:skip=([^\n]*)", path.read_text(encoding="utf-8"))
    ]
    assert skips
    for path, match in skips:
        check_id, _, reason = match.group(1).partition(":")
        assert re.fullmatch(r"CKV2?_AWS_\d+", check_id), f"{_rel(path)}: {match.group(0)}"
        assert len(reason.strip()) >= 30, f"{_rel(path)}: skip {check_id} gives no reason"


def test_checkov_reports_no_failure() -> None:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `bash tools/install.sh` (./quick_start.sh does)")
    command = [str(CHECKOV), "-d", str(INFRA), "--framework", "terraform", "-o", "json"]
    result = subprocess.run(
        [*command, "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        # Offline: no policy download, no Prowler mapping, no PyPI update check.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"},
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for r in reports
        for check in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100  # the checks really ran over the resources
    for r in reports:
        for check in r["results"]["skipped_checks"]:
            reason = check["check_result"].get("suppress_comment")
            assert reason, f"skip without reason: {check['check_id']} {check['resource']}"


def test_tofu_fmt_reports_no_difference() -> None:
    if not TOFU.exists():
        pytest.skip(
            f"{TOFU} missing: `DATAPLATFORM_TOFU=1 bash tools/install.sh` builds it "
            "(15-45 min the first time; docs/CLOUD.md)"
        )
    result = subprocess.run(
        [str(TOFU), "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
