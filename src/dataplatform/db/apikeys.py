"""API keys: `dpk_<key_id>_<secret>`, shown once, stored as the SHA-256 of the secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from dataplatform.db.migrate import search_path

PREFIX = "dpk"


@dataclass(frozen=True)
class ApiKey:
    """An API key's stored metadata (never its secret)."""

    key_id: str
    name: str
    rate_limit_per_s: float | None
    created_at: datetime
    revoked_at: datetime | None


def hash_secret(secret: str) -> bytes:
    """SHA-256 of a key's secret part."""
    return hashlib.sha256(secret.encode()).digest()


def parse(raw: str) -> tuple[str, str] | None:
    """Split `dpk_<key_id>_<secret>` into `(key_id, secret)`; None when malformed."""
    prefix, sep, rest = raw.partition("_")
    key_id, sep2, secret = rest.partition("_")
    if prefix != PREFIX or not sep or not sep2 or not key_id or len(secret) < 16:
        return None
    return key_id, secret


def secret_matches(secret: str, stored: bytes) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored)


def create(
    conninfo: str, schema: str, *, name: str, rate_limit_per_s: float | None = None
) -> tuple[str, ApiKey]:
    """Create a key; returns the full key (shown once) and its metadata."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    with psycopg.connect(conninfo) as conn:
        conn.execute(search_path(schema))
        cur = conn.cursor(row_factory=class_row(ApiKey))
        row = cur.execute(
            "INSERT INTO api_keys (key_id, secret_sha256, name, rate_limit_per_s)"
            " VALUES (%s, %s, %s, %s)"
            " RETURNING key_id, name, rate_limit_per_s, created_at, revoked_at",
            (key_id, hash_secret(secret), name, rate_limit_per_s),
        ).fetchone()
    assert row is not None
    return f"{PREFIX}_{key_id}_{secret}", row


def list_keys(conninfo: str, schema: str) -> list[ApiKey]:
    """Every key, newest first."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(search_path(schema))
        cur = conn.cursor(row_factory=class_row(ApiKey))
        return cur.execute(
            "SELECT key_id, name, rate_limit_per_s, created_at, revoked_at"
            " FROM api_keys ORDER BY created_at DESC, id DESC"
        ).fetchall()


def is_active(conninfo: str, schema: str, raw: str) -> bool:
    """True when `raw` is a well-formed key whose secret matches an unrevoked stored key."""
    parsed = parse(raw)
    if parsed is None:
        return False
    key_id, secret = parsed
    with psycopg.connect(conninfo) as conn:
        conn.execute(search_path(schema))
        row = conn.execute(
            "SELECT secret_sha256 FROM api_keys WHERE key_id = %s AND revoked_at IS NULL",
            (key_id,),
        ).fetchone()
    return row is not None and secret_matches(secret, bytes(row[0]))


def revoke(conninfo: str, schema: str, key_id: str) -> bool:
    """Revoke a key by its id; False when no active key has that id."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(search_path(schema))
        cur = conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
            (key_id,),
        )
        return cur.rowcount == 1
