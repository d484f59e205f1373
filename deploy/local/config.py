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
    stack_host: str = "127.0.0.1"
    stack_kafka_port: int = Field(default=19092, ge=1, le=65535)
    stack_aws_port: int = Field(default=14566, ge=1, le=65535)
    stack_pg_port: int = Field(default=15432, ge=1, le=65535)
    stack_kafka_partitions: int = Field(default=4, ge=1, le=64)
    stack_kinesis_shards: int = Field(default=2, ge=1, le=16)
    stack_ready_timeout: float = Field(default=30.0, gt=0)
    stack_warehouse_database: str = "sluice"

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
