"""What the local stack knows about its services."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class ServiceName(StrEnum):
    """The processes the local stack runs."""

    KAFKA = "kafka"
    AWS = "aws"
    POSTGRES = "postgres"


class ServiceStatus(StrEnum):
    """Health of one service as seen by ``sluice stack status``."""

    RUNNING = "running"
    NOT_ANSWERING = "not-answering"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServiceRecord:
    """One process the stack started: its pid, endpoint and what it stands in for."""

    name: ServiceName
    pid: int
    endpoint: str
    port: int
    stands_for: str
    command: tuple[str, ...]
    log_file: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["name"] = self.name.value
        data["command"] = list(self.command)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceRecord:
        return cls(
            name=ServiceName(data["name"]),
            pid=int(data["pid"]),
            endpoint=str(data["endpoint"]),
            port=int(data["port"]),
            stands_for=str(data["stands_for"]),
            command=tuple(data["command"]),
            log_file=str(data["log_file"]),
        )


@dataclass(frozen=True)
class ServiceHealth:
    """A service record with its current status."""

    record: ServiceRecord
    status: ServiceStatus
    detail: str = ""


@dataclass
class StackState:
    """The state file: every service the stack started, keyed by name."""

    services: dict[ServiceName, ServiceRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"services": {k.value: v.to_json() for k, v in self.services.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        services = {
            ServiceName(k): ServiceRecord.from_json(v) for k, v in data.get("services", {}).items()
        }
        return cls(services=services)
