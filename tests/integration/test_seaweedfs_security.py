"""SeaweedFS's internal listeners refuse requests without its JWT keys; S3 with keys works.

Runs its own real `weed mini` (the binary the native runtime runs, with the native runtime's
prepare step and command) on a free block of ports, not the platform's, so it needs no running
platform and cannot disturb one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from dataplatform.clients.s3 import s3_client
from dataplatform.native.base import Context, port_open, wait_until
from dataplatform.native.services import SERVICES, _s3_ports, _weed_binary, seaweed_ports
from dataplatform.settings import (
    KafkaSettings,
    PostgresSettings,
    RuntimeSettings,
    S3Settings,
)

SECRET_KEY = "integration-secret-key-0123456789"


def _free_s3_port() -> int:
    # Below 8122 every derived port (up to S3 + 24646) stays under the ephemeral range (32768+).
    for candidate in range(6000, 8000, 100):
        probe = Context(
            runtime=RuntimeSettings(),
            postgres=PostgresSettings(),
            kafka=KafkaSettings(),
            s3=S3Settings(endpoint_url=f"http://127.0.0.1:{candidate}"),
            track="starter",
        )
        if not any(port_open("127.0.0.1", port) for port in _s3_ports(probe)):
            return candidate
    pytest.fail("no free block of ports for a second SeaweedFS (S3 between 6000 and 8000)")


@pytest.fixture(scope="module")
def weed_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Context, subprocess.Popen[bytes]]]:
    """A real `weed mini` started with the native runtime's prepare step and command."""
    port = _free_s3_port()
    ctx = Context(
        runtime=RuntimeSettings(data_dir=tmp_path_factory.mktemp("seaweedfs")),
        postgres=PostgresSettings(),
        kafka=KafkaSettings(),
        s3=S3Settings(
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key=SecretStr("integration-access"),
            secret_key=SecretStr(SECRET_KEY),
            bucket="lakehouse",
        ),
        track="starter",
    )
    service = SERVICES["s3"]
    assert service.prepare is not None and service.initialise is not None
    service.prepare(ctx)
    log = (ctx.runtime.data_dir / "weed.log").open("wb")
    process = subprocess.Popen(service.command(ctx), stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_until(lambda: service.probe(ctx), timeout_s=60):
            pytest.fail(f"weed did not serve S3: {(ctx.runtime.data_dir / 'weed.log').read_text()}")
        service.initialise(ctx)  # the bucket
        yield ctx, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def weed(weed_process: tuple[Context, subprocess.Popen[bytes]]) -> Context:
    return weed_process[0]


def _url(ctx: Context, name: str, path: str) -> str:
    return f"http://127.0.0.1:{seaweed_ports(ctx)[name]}{path}"


@pytest.fixture(scope="module")
def backup_object(weed: Context) -> str:
    """An object under `_backups/`, written through S3 with the platform's keys."""
    key = "_backups/postgres/dump.bin"
    s3_client(weed.s3).put_object(Bucket=weed.s3.bucket, Key=key, Body=b"a database dump")
    return key


def test_write_secret_files_owner_only(weed: Context) -> None:
    conf = weed.conf_dir("s3")
    assert conf.stat().st_mode & 0o777 == 0o700
    assert (conf / "tls").stat().st_mode & 0o777 == 0o700
    for name in ("security.toml", "identities.json", "tls/ca.key", "tls/node.key"):
        assert (conf / name).stat().st_mode & 0o777 == 0o600, name
    assert SECRET_KEY not in (conf / "security.toml").read_text()


def test_s3_with_credentials_reads_and_lists_backup(weed: Context, backup_object: str) -> None:
    client = s3_client(weed.s3)
    body = client.get_object(Bucket=weed.s3.bucket, Key=backup_object)["Body"].read()
    assert body == b"a database dump"
    listed = client.list_objects_v2(Bucket=weed.s3.bucket, Prefix="_backups/")
    assert [item["Key"] for item in listed["Contents"]] == [backup_object]


def test_s3_with_wrong_secret_refused(weed: Context, backup_object: str) -> None:
    wrong = weed.s3.model_copy(update={"secret_key": SecretStr("not-the-secret")})
    with pytest.raises(ClientError) as refused:
        s3_client(wrong).get_object(Bucket=weed.s3.bucket, Key=backup_object)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/buckets/lakehouse/",
        "/buckets/lakehouse/_backups/",
        "/buckets/lakehouse/_backups/postgres/dump.bin",
    ],
)
def test_filer_refuses_unauthenticated_read(weed: Context, backup_object: str, path: str) -> None:
    response = httpx.get(_url(weed, "filer", path), timeout=5)
    assert response.status_code == 401, response.text
    assert "dump" not in response.text


def test_filer_refuses_unauthenticated_write(weed: Context) -> None:
    response = httpx.put(_url(weed, "filer", "/buckets/lakehouse/planted.txt"), content=b"x")
    assert response.status_code == 401, response.text
    with pytest.raises(ClientError):
        s3_client(weed.s3).head_object(Bucket=weed.s3.bucket, Key="planted.txt")


def test_master_assignment_carries_no_token_and_volume_refuses_upload(weed: Context) -> None:
    assignment = httpx.post(_url(weed, "master", "/dir/assign"), timeout=5).json()
    assert not assignment.get("auth"), "the master hands out write tokens to anyone"
    upload = httpx.post(
        f"http://{assignment['url']}/{assignment['fid']}",
        files={"file": ("planted.txt", b"x")},
        timeout=5,
    )
    assert upload.status_code == 401, upload.text


def test_volume_refuses_unauthenticated_read(weed: Context, backup_object: str) -> None:
    status = httpx.get(_url(weed, "master", "/dir/status"), timeout=5).json()
    assert status["Topology"]["DataCenters"], status
    for path in ("/ui/index.html", "/1,01637037d6"):
        response = httpx.get(_url(weed, "volume", path), timeout=5)
        assert response.status_code == 401, (path, response.text)


def test_weed_listens_only_on_its_derived_ports(
    weed_process: tuple[Context, subprocess.Popen[bytes]],
) -> None:
    ctx, process = weed_process
    result = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True)
    listening = {
        line.split()[3] for line in result.stdout.splitlines() if f"pid={process.pid}," in line
    }
    assert listening == {f"127.0.0.1:{port}" for port in _s3_ports(ctx)}


def _weed_shell_ls(ctx: Context, path: str, cwd: Path) -> str:
    """`fs.ls` through `weed shell` (gRPC to master and filer), run in `cwd`.

    `weed shell` reads `security.toml` from its working folder: the run folder holds the
    certificate; elsewhere it has none. A client refused by TLS retries forever: stop it.
    """
    ports = seaweed_ports(ctx)
    process = subprocess.Popen(
        [
            str(_weed_binary()),
            "shell",
            f"-master=127.0.0.1:{ports['master']}.{ports['master.grpc']}",
            f"-filer=127.0.0.1:{ports['filer']}.{ports['filer.grpc']}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env={"HOME": str(cwd), "PATH": "/usr/bin:/bin"},
    )
    try:
        output, _ = process.communicate(f"fs.ls -l {path}\n", timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_filer_grpc_lists_for_client_with_certificate(weed: Context, backup_object: str) -> None:
    assert "dump.bin" in _weed_shell_ls(
        weed, "/buckets/lakehouse/_backups/postgres", weed.conf_dir("s3")
    )


def test_filer_grpc_refuses_client_without_certificate(
    weed: Context, backup_object: str, tmp_path: Path
) -> None:
    assert "dump.bin" not in _weed_shell_ls(weed, "/buckets/lakehouse/_backups/postgres", tmp_path)
