"""Text rendering of a :class:`~consumers.lag.LagReport` that fits a narrow terminal.

Names are never cut: the group heads the report and each stream gets a heading line of
its own, so the partition rows below carry only short columns (partition, lag, age,
position, commit time, status, owner). Long Kinesis sequence numbers keep their last
digits (``…`` marks the cut); ``--json`` carries them whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from consumers.models import LagStatus, PartitionLag

if TYPE_CHECKING:
    from consumers.lag import LagReport

DEFAULT_WIDTH = 80
POSITION_WIDTH = 12
STATUS_STYLE = {
    LagStatus.OK: "green",
    LagStatus.WARNING: "yellow",
    LagStatus.STALLED: "red",
    LagStatus.STOPPED: "bold red",
}
HEADERS = ("partition", "lag", "lag s", "position", "commit", "status", "owner")


def status_reason(row: PartitionLag) -> str:
    """Why a partition has its status, in words (the status itself comes from lag.py)."""
    explicit = getattr(row, "reason", None)
    if explicit:
        return str(explicit)
    if row.status is LagStatus.OK:
        return "caught up" if row.lag_records == 0 else "commits keep up"
    if row.status is LagStatus.STOPPED:
        return f"no live consumer, {row.lag_records} behind, commits not moving"
    if row.status is LagStatus.STALLED:
        return f"owner {row.owner or '?'} alive but not committing, {row.lag_records} behind"
    return f"lag not shrinking ({row.lag_records} behind) or position moved back"


def short_position(value: int | None, width: int = POSITION_WIDTH) -> str:
    """A position that fits ``width``: its last digits after ``…`` when longer."""
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _cells(row: PartitionLag) -> tuple[str, ...]:
    return (
        row.partition,
        f"{row.lag_records}{'' if row.exact else '+'}",
        f"{row.lag_seconds:.1f}",
        short_position(row.committed),
        row.last_commit_at.strftime("%H:%M:%S") if row.last_commit_at else "-",
        row.status.value,
        row.owner or "-",
    )


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def render_lag(report: LagReport, width: int = DEFAULT_WIDTH) -> list[str]:
    """Plain lines of the lag report; every line but a full name fits ``width``.

    A group or stream name longer than the terminal is printed whole on its own line
    (the terminal wraps it) rather than cut.
    """
    lines = [
        f"group {report.group}: {report.status.value}",
        f"  total lag {report.total_records} records, oldest {report.max_seconds:.1f} s",
    ]
    streams: dict[tuple[str, str], list[PartitionLag]] = {}
    for row in report.rows:
        streams.setdefault((row.backend, row.stream), []).append(row)
    for (backend, stream), rows in streams.items():
        lines.append(f"{backend} stream {stream}")
        lines.extend(_table(rows, width))
        for row in rows:
            if row.status is not LagStatus.OK:
                lines.append(_fit(f"  {row.partition}: {status_reason(row)}", width))
    lines.extend(f"note: {p}" for p in report.problems)
    return lines


def _table(rows: Iterable[PartitionLag], width: int) -> list[str]:
    body = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(HEADERS)]
    right = {1, 2, 3}
    fixed = 2 + sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = max(len(HEADERS[-1]), min(widths[-1], width - fixed))

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            _fit(c, w).rjust(w) if i in right else _fit(c, w).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(parts)).rstrip()

    return [line(HEADERS), *(line(c) for c in body)]


def print_lag(report: LagReport, console: object | None = None) -> None:
    """Print :func:`render_lag` at the console's width, statuses in colour."""
    from rich.console import Console
    from rich.text import Text

    out = console if isinstance(console, Console) else Console()
    for text in render_lag(report, out.width):
        styled = Text(text)
        for status, style in STATUS_STYLE.items():
            styled.highlight_words([status.value], style=style)
        out.print(styled, soft_wrap=True)
