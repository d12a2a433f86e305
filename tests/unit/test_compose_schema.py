"""The compose files validate against the Compose Specification JSON schema.

`tests/data/compose-spec.json` is the Compose Specification's schema as compose's own loader
ships it: `schema/compose-spec.json` of the Go module `github.com/compose-spec/compose-go/v2`
v2.16.2 (Apache-2.0), the version `tools/compose-resolve` builds with. Update both together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from dataplatform.composefiles import BASE, OVERLAYS, ROOT, VARIANTS, load, merged_model, untagged

SCHEMA_PATH = ROOT / "tests" / "data" / "compose-spec.json"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def test_schema_is_the_compose_specification(validator: Draft202012Validator) -> None:
    assert validator.schema["title"] == "Compose Specification"
    assert "services" in validator.schema["properties"]


@pytest.mark.parametrize("path", [BASE, *OVERLAYS], ids=lambda p: Path(p).name)
def test_validate_compose_file_against_schema(validator: Draft202012Validator, path: Path) -> None:
    # An overlay alone is a partial model, but the spec requires no key of a service, so each
    # file validates on its own; the merged models are checked below as well.
    assert _errors(validator, untagged(load(path))) == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_validate_merged_model_against_schema(
    validator: Draft202012Validator, variant: str
) -> None:
    assert _errors(validator, merged_model(*VARIANTS[variant])) == []


def test_validate_schema_rejects_a_broken_service(validator: Draft202012Validator) -> None:
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
