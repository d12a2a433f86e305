from __future__ import annotations

import os
import stat
from pathlib import Path

from dataplatform import envfile
from dataplatform.files import write_private


def test_ensure_env_file_generates_distinct_secrets(tmp_path: Path) -> None:
    example = tmp_path / ".env.example"
    example.write_text(
        "# comment\nA=1\nSECRET_A=<generate>\nSECRET_B=<generate>\nID=<generate-kafka-cluster-id>\n"
    )
    target = tmp_path / ".env"
    added = envfile.ensure_env_file(example, target)
    values = envfile.parse(target.read_text())
    assert added == ["A", "SECRET_A", "SECRET_B", "ID"]
    assert values["A"] == "1"
    assert len(values["SECRET_A"]) >= 24 and values["SECRET_A"] != values["SECRET_B"]
    assert len(values["ID"]) == 22
    assert target.stat().st_mode & 0o777 == 0o600


def test_ensure_env_file_keeps_values_and_appends_new(tmp_path: Path) -> None:
    example = tmp_path / ".env.example"
    example.write_text("SECRET=<generate>\n")
    target = tmp_path / ".env"
    envfile.ensure_env_file(example, target)
    first = envfile.parse(target.read_text())["SECRET"]
    example.write_text("SECRET=<generate>\nNEW=value\n")
    assert envfile.ensure_env_file(example, target) == ["NEW"]
    values = envfile.parse(target.read_text())
    assert values == {"SECRET": first, "NEW": "value"}
    assert envfile.ensure_env_file(example, target) == []


def test_secret_files_are_owner_only_from_creation(tmp_path: Path) -> None:
    old = os.umask(0)  # a permissive umask must not leak into the files' mode
    try:
        target = tmp_path / ".env"
        envfile.set_value(target, "X", "secret")
        private = tmp_path / "private.json"
        write_private(private, "{}")
        write_private(private, "more", append=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text() == "{}more"


def test_ensure_env_file_generates_fernet_key(tmp_path: Path) -> None:
    import base64

    example = tmp_path / ".env.example"
    example.write_text("A_FERNET_KEY=<generate-fernet-key>\n", encoding="utf-8")
    target = tmp_path / ".env"
    envfile.ensure_env_file(example, target)
    key = envfile.parse(target.read_text(encoding="utf-8"))["A_FERNET_KEY"]
    assert len(base64.urlsafe_b64decode(key)) == 32


def test_generate_rsa_key_gives_openmetadata_der_pair() -> None:
    from cryptography.hazmat.primitives import serialization

    from dataplatform.envfile import generate_rsa_key, rsa_key_files

    value = generate_rsa_key()
    assert "\n" not in value and value != generate_rsa_key()
    files = rsa_key_files(value)
    private = serialization.load_der_private_key(files["private_key.der"], password=None)
    public = serialization.load_der_public_key(files["public_key.der"])
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]


def test_rsa_key_files_not_a_key_refused() -> None:
    import pytest

    from dataplatform.envfile import rsa_key_files

    with pytest.raises(ValueError):
        rsa_key_files("bm90IGEga2V5")
