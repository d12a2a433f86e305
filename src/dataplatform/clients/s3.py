"""S3 client and bucket helpers (boto3, path-style)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from dataplatform.settings import S3Settings


def s3_client(settings: S3Settings) -> Any:
    """A boto3 S3 client for the configured endpoint (path-style addressing)."""
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key.get_secret_value(),
        aws_secret_access_key=settings.secret_key.get_secret_value(),
        region_name=settings.region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            # SeaweedFS and MinIO accept the classic checksums; newer SDK defaults vary.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def ensure_bucket(settings: S3Settings) -> bool:
    """Create the lakehouse bucket if missing; True when it was created. Idempotent."""
    client = s3_client(settings)
    try:
        client.head_bucket(Bucket=settings.bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    client.create_bucket(Bucket=settings.bucket)
    return True


def delete_prefix(settings: S3Settings, prefix: str) -> int:
    """Delete every object under the folder `prefix` of the bucket; returns how many."""
    client = s3_client(settings)
    folder = prefix.strip("/") + "/"
    deleted = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=settings.bucket, Prefix=folder
    ):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:  # a page holds at most 1,000 keys, the most one delete_objects takes
            client.delete_objects(Bucket=settings.bucket, Delete={"Objects": keys})
            deleted += len(keys)
    return deleted
