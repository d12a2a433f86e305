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
GENERATE_RSA_KEY = "<generate-rsa-key>"


def _fresh(placeholder: str) -> str:
    if placeholder == GENERATE_KAFKA_ID:
        # KRaft cluster ids are a base64url-encoded UUID without padding (22 characters).
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if placeholder == GENERATE_FERNET_KEY:
        # A Fernet key: 32 random bytes, base64url-encoded with padding.
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    if placeholder == GENERATE_RSA_KEY:
        return generate_rsa_key()
    return secrets.token_urlsafe(24)


def generate_rsa_key() -> str:
    """A fresh 2048-bit RSA private key: PKCS#8 DER, base64 (one line fits `.env`)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return base64.b64encode(der).decode()


def rsa_key_files(private_key_b64: str) -> dict[str, bytes]:
    """The DER files OpenMetadata reads its JWT signing keys from, from a `.env` value.

    Args:
        private_key_b64: A value written by `generate_rsa_key`.

    Returns:
        `{"private_key.der": PKCS#8 DER, "public_key.der": X.509 SubjectPublicKeyInfo DER}`.

    Raises:
        ValueError: Not base64 of an RSA private key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    der = base64.b64decode(private_key_b64, validate=True)
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"private_key.der": der, "public_key.der": public}


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
