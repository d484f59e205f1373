"""API key records in AWS Systems Manager Parameter Store.

One ``SecureString`` parameter per key, named ``<path><key_id>`` (``path`` is
``SLUICE_API_KEYS_SSM_PATH``, for example ``/sluice-prod/api-keys/``), whose value is
the JSON of its :class:`~ingest_api.auth.ApiKeyRecord` (the SHA-256 hash, tenant, event
types, rate limit: never the key itself). Reading is one ``GetParametersByPath`` walk
(10 parameters a page, decrypted); a parameter that is not a valid record is logged
and left out, so one bad record never locks every client out. Revoking a key deletes
its parameter. Standard parameters hold 4 KB each and an account 10,000 of them.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from pydantic import ValidationError

from ingest_api.auth import ApiKeyRecord
from ingest_api.config import ApiSettings
from ingest_api.exceptions import KeySourceUnavailable, KeyStoreError
from sluice.config import AwsSettings

logger = logging.getLogger(__name__)

# Parameter Store's rule for a hierarchy path (letters, digits, . - _ and slashes).
_PATH = re.compile(r"^/(?:[A-Za-z0-9_.-]+/)*$")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


class SsmKeySource:
    """Key records under one Parameter Store path.

    Args:
        path: the hierarchy holding the records, with a trailing ``/``.
        client: a boto3 SSM client (built from ``SLUICE_AWS_*`` on first use otherwise).
        kms_key_id: the KMS key that encrypts new records (AWS's ``aws/ssm`` when unset).
    """

    name = "Parameter Store"

    def __init__(
        self,
        path: str,
        *,
        client: Any = None,
        aws: AwsSettings | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        if not _PATH.match(path) or path == "/":
            raise KeyStoreError(
                f"SLUICE_API_KEYS_SSM_PATH must be an absolute path ending with '/', got {path!r}",
                code="bad_ssm_path",
            )
        self.path = path
        self._client = client
        self._aws = aws
        self._kms_key_id = kms_key_id

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> SsmKeySource:
        """The source of ``SLUICE_API_KEYS_SSM_PATH`` (and its KMS key)."""
        if settings.api_keys_ssm_path is None:
            raise KeyStoreError("SLUICE_API_KEYS_SSM_PATH is not set", code="no_ssm_path")
        return cls(
            settings.api_keys_ssm_path,
            aws=AwsSettings(),
            kms_key_id=settings.api_keys_ssm_kms_key,
        )

    def _ssm(self) -> Any:
        if self._client is None:
            self._client = (self._aws or AwsSettings()).client("ssm")
        return self._client

    def parameter_name(self, key_id: str) -> str:
        """The parameter holding the record of ``key_id``."""
        return f"{self.path}{key_id}"

    def load(self) -> list[ApiKeyRecord]:
        """Every valid record under the path (decrypted)."""
        from botocore.exceptions import BotoCoreError, ClientError

        records: list[ApiKeyRecord] = []
        try:
            pages = (
                self._ssm()
                .get_paginator("get_parameters_by_path")
                .paginate(Path=self.path.rstrip("/"), Recursive=False, WithDecryption=True)
            )
            parameters = [parameter for page in pages for parameter in page["Parameters"]]
        except (ClientError, BotoCoreError) as exc:
            raise KeySourceUnavailable(
                f"cannot read the API keys under {self.path}: {_error_code(exc)}"
            ) from exc
        for parameter in parameters:
            name = str(parameter["Name"])
            try:
                record = ApiKeyRecord.model_validate(json.loads(parameter["Value"]))
            except (ValueError, ValidationError) as exc:
                logger.error(
                    "API key parameter %s is not a key record: %s", name, type(exc).__name__
                )
                continue
            if name != self.parameter_name(record.key_id):
                logger.error("API key parameter %s holds key_id %r: left out", name, record.key_id)
                continue
            records.append(record)
        return records

    def put(self, record: ApiKeyRecord) -> None:
        """Store ``record`` as a new SecureString; an existing key id is refused."""
        from botocore.exceptions import BotoCoreError, ClientError

        request: dict[str, Any] = {
            "Name": self.parameter_name(record.key_id),
            "Description": f"Sluice API key record of tenant {record.tenant_id}",
            "Value": record.model_dump_json(),
            "Type": "SecureString",
            "Overwrite": False,
        }
        if self._kms_key_id:
            request["KeyId"] = self._kms_key_id
        try:
            self._ssm().put_parameter(**request)
        except ClientError as exc:
            if _error_code(exc) == "ParameterAlreadyExists":
                raise KeyStoreError(
                    f"key {record.key_id!r} exists under {self.path}", code="key_exists"
                ) from exc
            raise KeyStoreError(
                f"cannot store key {record.key_id!r} under {self.path}: {_error_code(exc)}",
                code="key_store_write_failed",
            ) from exc
        except BotoCoreError as exc:
            raise KeyStoreError(
                f"cannot store key {record.key_id!r} under {self.path}: {exc}",
                code="key_store_write_failed",
            ) from exc

    def delete(self, key_id: str) -> bool:
        """Delete the record of ``key_id`` (revocation); False when there was none."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._ssm().delete_parameter(Name=self.parameter_name(key_id))
        except ClientError as exc:
            if _error_code(exc) == "ParameterNotFound":
                return False
            raise KeyStoreError(
                f"cannot delete key {key_id!r} under {self.path}: {_error_code(exc)}",
                code="key_store_write_failed",
            ) from exc
        except BotoCoreError as exc:
            raise KeyStoreError(
                f"cannot delete key {key_id!r} under {self.path}: {exc}",
                code="key_store_write_failed",
            ) from exc
        return True
