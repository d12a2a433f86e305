"""Validate OpenMetadata ingestion workflow configs with the ingestion library's own models.

Runs in `.venv-openmetadata` (tools/install.sh), never in the project's venv: the library's pins
conflict with the platform's. Each file is read the way `metadata ingest -c FILE` reads it
(`${VAR}`s expanded from the environment) and parsed with the parser that command uses, which
checks the source's connection and source config against that connector's own model.

    .venv-openmetadata/bin/python tools/openmetadata_validate.py \
        docker/openmetadata/workflows/*.yaml

Prints one JSON line per file, `{"file": ..., "ok": true|false, "error": ...}`; exits 1 if any
file is invalid.
"""

from __future__ import annotations

import json
import pathlib
import sys


def validate(path: pathlib.Path) -> str | None:
    """The validation error of one workflow file, or None when it is valid."""
    from metadata.config.common import load_config_file
    from metadata.ingestion.api.parser import parse_workflow_config_gracefully

    try:
        config = load_config_file(path)
        parsed = parse_workflow_config_gracefully(config)
    except Exception as exc:  # the parser raises its own and pydantic's errors
        return f"{type(exc).__name__}: {exc}"
    source = parsed.source
    if source.serviceConnection is None:
        return "no serviceConnection: the workflow would need the service to exist already"
    return None


def main(argv: list[str]) -> int:
    """Validate every file named in `argv`; 0 when all are valid."""
    failed = 0
    for name in argv:
        error = validate(pathlib.Path(name))
        failed += error is not None
        sys.stdout.write(json.dumps({"file": name, "ok": error is None, "error": error}) + "\n")
    return 1 if failed or not argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
