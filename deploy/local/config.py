"""Settings of the local stack (``sluice stack up``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sluice.config import SluiceSettings


class StackSettings(SluiceSettings):
    """Where the local stack runs: its folder, host and one port per service.

    Every port can be changed with its ``SLUICE_STACK_*_PORT`` variable; a port that is
    already taken is reported with the variable that changes it.
    """

    stack_dir: Path = Field(default=Path(".sluice"), description="Folder for state, logs and data.")
    stack_host: str = Field(default="127.0.0.1", description="Address every local service binds.")
    stack_kafka_port: int = Field(default=19092, ge=1, le=65535, description="Kafka broker port.")
    stack_aws_port: int = Field(default=14566, ge=1, le=65535, description="moto server port.")
    stack_pg_port: int = Field(default=15432, ge=1, le=65535, description="PostgreSQL port.")
    stack_kafka_partitions: int = Field(
        default=4, ge=1, le=64, description="Partitions of each topic the stack creates."
    )
    stack_kinesis_shards: int = Field(
        default=2, ge=1, le=16, description="Shards of each stream the stack creates."
    )
    stack_ready_timeout: float = Field(
        default=30.0, gt=0, description="Seconds each service may take to answer."
    )
    stack_warehouse_database: str = Field(
        default="sluice", description="PostgreSQL database the stack creates for the warehouse."
    )

    @property
    def env_file(self) -> Path:
        """The env file the stack writes: ``<stack_dir>/stack.env``."""
        return self.stack_dir / "stack.env"

    @property
    def state_file(self) -> Path:
        """Pids and endpoints of the processes the stack started."""
        return self.stack_dir / "stack.json"

    @property
    def log_dir(self) -> Path:
        """One log file per service."""
        return self.stack_dir / "logs"
