"""Pure helpers of the local stack: env files, port checks, tables."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping

from deploy.local.exceptions import StackError

_ENV_LINE = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def render_env(values: Mapping[str, str]) -> str:
    """Render ``SLUICE_*`` values as an env file, sorted, one ``KEY=value`` per line.

    Raises:
        StackError: a key does not start with ``SLUICE_`` or a value has a newline.
    """
    lines = ["# Written by `sluice stack up`. SLUICE_* settings of the local stack."]
    for key in sorted(values):
        value = values[key]
        if not key.startswith("SLUICE_"):
            raise StackError(f"stack env keys must start with SLUICE_, got {key!r}")
        if "\n" in value or "\r" in value:
            raise StackError(f"stack env value for {key} must be one line")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> dict[str, str]:
    """Parse an env file written by :func:`render_env` (comments and blanks ignored).

    Raises:
        StackError: a line is not ``KEY=value``.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            raise StackError(f"line {number} of the stack env file is not KEY=value: {raw!r}")
        value = match["value"]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[match["key"]] = value
    return values


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` and it can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (for tests that need fresh ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def format_table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A plain aligned text table (used where rich is not wanted, e.g. in logs)."""
    head = list(headers)
    body = [list(r) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=False)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in body)
    return "\n".join(out)
