"""Generates the git-ignored `.env` from `.env.example`, with random secrets.

`.env.example` lists every variable with a comment. A value of `<generate>` there becomes a
fresh random secret in `.env`. Running it again keeps existing values and only appends
variables that `.env.example` gained since, so it is idempotent.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from pathlib import Path

from dataplatform.files import write_private

GENERATE = "<generate>"
GENERATE_KAFKA_ID = "<generate-kafka-cluster-id>"
GENERATE_FERNET_KEY = "<generate-fernet-key>"


def _fresh(placeholder: str) -> str:
    if placeholder == GENERATE_KAFKA_ID:
        # KRaft cluster ids are a base64url-encoded UUID without padding (22 characters).
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if placeholder == GENERATE_FERNET_KEY:
        # A Fernet key: 32 random bytes, base64url-encoded with padding.
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(24)


def parse(text: str) -> dict[str, str]:
    """Parse `KEY=value` lines, ignoring comments and blanks."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        values[key.strip()] = value.strip()
    return values


def ensure_env_file(example: Path, target: Path) -> list[str]:
    """Create or complete `target` from `example`; return the names of variables added."""
    existing = parse(target.read_text(encoding="utf-8")) if target.exists() else {}
    added: list[str] = []
    lines: list[str] = []
    for line in example.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key.startswith("#") or key in existing:
            continue
        value = value.strip()
        lines.append(f"{key}={_fresh(value) if value.startswith('<generate') else value}")
        added.append(key)
    if lines:
        prefix = "" if not target.exists() else "\n"
        header = (
            ""
            if target.exists()
            else "# Generated from .env.example by `dataplatform env init`. Never commit it.\n"
        )
        write_private(target, prefix + header + "\n".join(lines) + "\n", append=True)
    elif target.exists():
        target.chmod(0o600)
    return added


def set_value(target: Path, key: str, value: str) -> None:
    """Set `key` in `target`, replacing an existing line or appending one."""
    lines = target.read_text(encoding="utf-8").splitlines() if target.exists() else []
    out = [line for line in lines if line.partition("=")[0].strip() != key]
    out.append(f"{key}={value}")
    write_private(target, "\n".join(out) + "\n")
