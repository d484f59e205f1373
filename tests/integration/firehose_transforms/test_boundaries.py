"""The delivery's object store against the real local S3 (moto). The stream readers'
contract runs in tests/integration/streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from firehose_transforms.exceptions import DeliveryConfigurationError
from firehose_transforms.s3 import S3ObjectStore
from tests.unit.firehose_transforms.contract import ObjectStoreContract

pytestmark = pytest.mark.integration


class TestS3ObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, stack: Any, bucket_factory: Callable[..., str]) -> S3ObjectStore:
        return S3ObjectStore(bucket_factory(), client=stack.aws_client("s3"))


def test_missing_bucket_is_a_configuration_error(stack: Any) -> None:
    store = S3ObjectStore("no-such-bucket-firehose", client=stack.aws_client("s3"))
    with pytest.raises(DeliveryConfigurationError) as info:
        store.put("k", b"x", "application/json")
    assert info.value.code == "NoSuchBucket"
