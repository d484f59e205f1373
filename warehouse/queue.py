"""The loader's notification queue: S3 ``ObjectCreated`` events on the clean prefix.

On AWS the bucket notifies an SQS queue, which the loader Lambda consumes through an
event source mapping; ``sluice load --follow`` reads the same queue itself. The
boundary is :class:`NotificationQueue` (receive, delete) with an SQS implementation
(boto3, client created on first use) and an in-memory one for unit tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sluice.config import AwsSettings
from sluice.errors import ZoneReadError

SQS_MAX_MESSAGES = 10
"""ReceiveMessage returns at most 10 messages per call."""
SQS_MAX_WAIT_SECONDS = 20
"""The longest long poll SQS allows."""


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One SQS message: its id, the handle that deletes it, and its body."""

    message_id: str
    receipt_handle: str
    body: str


class NotificationQueue(Protocol):
    """Where S3 event notifications wait for the loader."""

    def receive(self, *, max_messages: int, wait_seconds: float) -> list[QueueMessage]:
        """Up to ``max_messages`` messages, waiting at most ``wait_seconds`` for the first."""
        ...

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        """Delete handled messages (the others come back after the visibility timeout)."""
        ...


class MemoryQueue:
    """Messages in a list (for unit tests): received messages stay until deleted."""

    def __init__(self) -> None:
        self.messages: list[QueueMessage] = []
        self._next = 0

    def send(self, body: str) -> QueueMessage:
        """Append a message."""
        self._next += 1
        message = QueueMessage(f"m-{self._next}", f"r-{self._next}", body)
        self.messages.append(message)
        return message

    def receive(self, *, max_messages: int, wait_seconds: float) -> list[QueueMessage]:
        """The first ``max_messages`` messages."""
        return list(self.messages[:max_messages])

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        """Forget these messages."""
        gone = {m.receipt_handle for m in messages}
        self.messages = [m for m in self.messages if m.receipt_handle not in gone]


class SqsQueue:
    """An SQS queue through boto3 (or the local moto server)."""

    def __init__(self, url: str, *, client: Any = None, aws: AwsSettings | None = None) -> None:
        self.url = url
        self._client = client
        self._aws = aws

    @property
    def client(self) -> Any:
        """The boto3 SQS client (created on first use)."""
        if self._client is None:
            self._client = (self._aws or AwsSettings()).client("sqs")
        return self._client

    def receive(self, *, max_messages: int, wait_seconds: float) -> list[QueueMessage]:
        """ReceiveMessage with a long poll of up to 20 s."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(max_messages, SQS_MAX_MESSAGES)),
                WaitTimeSeconds=int(max(0, min(wait_seconds, SQS_MAX_WAIT_SECONDS))),
            )
        except (BotoCoreError, ClientError) as exc:
            raise ZoneReadError(f"receiving from {self.url} failed: {exc}") from exc
        return [
            QueueMessage(m["MessageId"], m["ReceiptHandle"], m.get("Body", ""))
            for m in answer.get("Messages", [])
        ]

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        """DeleteMessageBatch, 10 at a time; a message that could not be deleted raises."""
        from botocore.exceptions import BotoCoreError, ClientError

        for i in range(0, len(messages), SQS_MAX_MESSAGES):
            part = messages[i : i + SQS_MAX_MESSAGES]
            try:
                answer = self.client.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m.receipt_handle}
                        for n, m in enumerate(part)
                    ],
                )
            except (BotoCoreError, ClientError) as exc:
                raise ZoneReadError(f"deleting from {self.url} failed: {exc}") from exc
            if answer.get("Failed"):
                raise ZoneReadError(
                    f"{len(answer['Failed'])} message(s) could not be deleted from {self.url}"
                )
