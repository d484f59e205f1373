"""The S3 zone on Amazon S3 (or moto)."""

from __future__ import annotations

from typing import Any

from firehose_transforms.exceptions import DeliveryConfigurationError, DeliveryError
from sluice.config import AwsSettings

_FATAL_CODES = frozenset({"NoSuchBucket", "AccessDenied", "InvalidBucketName", "AllAccessDisabled"})


class S3ObjectStore:
    """One bucket. The boto3 client is created on first use unless ``client`` is given.

    Errors: missing bucket / access denied raise
    :class:`~firehose_transforms.exceptions.DeliveryConfigurationError` (fatal), every
    other client error :class:`~firehose_transforms.exceptions.DeliveryError`
    (retryable), both with the S3 error code.
    """

    def __init__(self, bucket: str, *, client: Any = None, aws: AwsSettings | None = None) -> None:
        self.bucket = bucket
        self._client = client
        self._aws = aws

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = (self._aws or AwsSettings()).client("s3")
        return self._client

    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Write ``body`` under ``key``."""
        self._call("put_object", Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``KeyError`` when there is none."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(key) from exc
            raise _wrap(exc, f"reading s3://{self.bucket}/{key}") from exc
        return bytes(response["Body"].read())

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except ClientError as exc:
            raise _wrap(exc, f"listing s3://{self.bucket}/{prefix}") from exc
        except BotoCoreError as exc:
            raise DeliveryError(
                f"listing s3://{self.bucket}/{prefix}: {exc}", code="s3_unreachable"
            ) from exc
        return sorted(keys)

    def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            raise _wrap(exc, f"{method} on s3://{self.bucket}/{kwargs.get('Key', '')}") from exc
        except BotoCoreError as exc:
            raise DeliveryError(
                f"{method} on s3://{self.bucket}: {exc}", code="s3_unreachable"
            ) from exc


def _wrap(exc: Any, what: str) -> DeliveryError | DeliveryConfigurationError:
    code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
    if code in _FATAL_CODES:
        return DeliveryConfigurationError(f"{what}: {code}", code=code)
    return DeliveryError(f"{what}: {code}", code=code)
