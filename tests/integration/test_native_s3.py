from __future__ import annotations

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from dataplatform.clients.s3 import s3_client
from dataplatform.settings import S3Settings
from tests.factories import unique


@pytest.fixture
def prefix(s3_settings: S3Settings):
    client = s3_client(s3_settings)
    name = unique("tests/s3")
    yield name
    listed = client.list_objects_v2(Bucket=s3_settings.bucket, Prefix=name).get("Contents", [])
    if listed:
        client.delete_objects(
            Bucket=s3_settings.bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listed]}
        )


def test_s3_put_get_list_delete(s3_settings: S3Settings, prefix: str) -> None:
    client = s3_client(s3_settings)
    for i in range(3):
        client.put_object(
            Bucket=s3_settings.bucket, Key=f"{prefix}/part-{i}.json", Body=b'{"i": %d}' % i
        )
    body = client.get_object(Bucket=s3_settings.bucket, Key=f"{prefix}/part-1.json")["Body"].read()
    assert body == b'{"i": 1}'
    listed = client.list_objects_v2(Bucket=s3_settings.bucket, Prefix=f"{prefix}/")
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}/part-{i}.json" for i in range(3)]
    client.delete_object(Bucket=s3_settings.bucket, Key=f"{prefix}/part-0.json")
    with pytest.raises(ClientError) as info:
        client.head_object(Bucket=s3_settings.bucket, Key=f"{prefix}/part-0.json")
    assert info.value.response["Error"]["Code"] in ("404", "NoSuchKey")


def test_s3_multipart_upload_round_trip(s3_settings: S3Settings, prefix: str) -> None:
    client = s3_client(s3_settings)
    key = f"{prefix}/big.bin"
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1024 * 1024)]
    upload = client.create_multipart_upload(Bucket=s3_settings.bucket, Key=key)
    etags = [
        client.upload_part(
            Bucket=s3_settings.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n, Body=data
        )["ETag"]
        for n, data in enumerate(parts, start=1)
    ]
    client.complete_multipart_upload(
        Bucket=s3_settings.bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
    )
    body = client.get_object(Bucket=s3_settings.bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()


def test_s3_wrong_secret_rejected(s3_settings: S3Settings) -> None:
    wrong = s3_settings.model_copy(update={"secret_key": s3_settings.secret_key.__class__("wrong")})
    with pytest.raises(ClientError) as info:
        s3_client(wrong).list_objects_v2(Bucket=s3_settings.bucket)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
