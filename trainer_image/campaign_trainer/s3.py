"""The one place that builds boto3 S3 clients.

Credentials come only from boto3's own chain (environment, profile, IRSA...) and are never logged.
The endpoint of an S3-compatible store (MinIO, moto) comes from an explicit option, else from
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (read here too, so older boto3 behave the same).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the stubs are a dev dependency; the trainer image has boto3 only
    from types_boto3_s3.client import S3Client


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI without a bucket: {uri!r}")
    return bucket, key


def endpoint_from_env(explicit: str | None = None) -> str | None:
    return explicit or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region: str | None) -> S3Client:
    import boto3  # deferred: boto3 costs ~0.5 s to import and most trials never touch S3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def s3_client(endpoint_url: str | None = None) -> S3Client:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return _client(endpoint_from_env(endpoint_url), region)
