"""Errors of the local stack."""

from __future__ import annotations

from typing import ClassVar

from sluice.errors import FatalError, RetryableError


class StackError(FatalError):
    """The local stack could not be started, checked or stopped."""

    default_code: ClassVar[str] = "stack_error"


class PortInUseError(StackError):
    """A port the stack needs is already taken by another process."""

    default_code: ClassVar[str] = "port_in_use"

    def __init__(self, service: str, host: str, port: int, setting: str) -> None:
        super().__init__(
            f"port {port} on {host} is already in use, so {service} cannot start; "
            f"stop whatever listens there or choose another port with {setting}=<port>"
        )
        self.port = port
        self.setting = setting


class ServiceNotReadyError(RetryableError):
    """A service was started but did not answer within the ready timeout."""

    default_code: ClassVar[str] = "service_not_ready"


class MissingComponentError(StackError):
    """A local-stack component is not installed (``pip install 'sluice[local]'``)."""

    default_code: ClassVar[str] = "missing_component"
