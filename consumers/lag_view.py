"""Text rendering of a :class:`~consumers.lag.LagReport` that fits a narrow terminal.

Names are never cut: the group heads the report and each stream gets a heading line of
its own, so the partition rows below carry only short columns (partition, lag, age,
position, commit time, status, owner). Long Kinesis sequence numbers keep their last
digits (``…`` marks the cut); ``--json`` carries them whole.
"""

from __future__ import annotations

import textwrap
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


def _cells(row: PartitionLag, owner: str) -> tuple[str, ...]:
    return (
        row.partition,
        f"{row.lag_records}{'' if row.exact else '+'}",
        f"{row.lag_seconds:.1f}",
        short_position(row.committed),
        row.last_commit_at.strftime("%H:%M:%S") if row.last_commit_at else "-",
        row.status.value,
        owner,
    )


def render_lag(report: LagReport, width: int = DEFAULT_WIDTH) -> list[str]:
    """Plain lines of the lag report that fit ``width``.

    Group, stream and owner names are never cut: a name too long for its column is
    replaced by a tag (``#1``) and spelled out on a line of its own below the table; a
    group or stream name longer than the terminal is printed whole (the terminal wraps).
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
                lines.extend(
                    textwrap.wrap(
                        f"{row.partition}: {status_reason(row)}",
                        width=width,
                        initial_indent="  ",
                        subsequent_indent="    ",
                        break_on_hyphens=False,
                    )
                )
    lines.extend(f"note: {p}" for p in report.problems)
    return lines


def _table(rows: list[PartitionLag], width: int) -> list[str]:
    names = [r.owner or "-" for r in rows]
    widths = [
        max(len(h), *(len(c[i]) for c in (_cells(r, "") for r in rows)))
        for i, h in enumerate(HEADERS)
    ]
    room = width - 2 - sum(widths[:-1]) - 2 * (len(widths) - 1)
    tags: dict[str, str] = {}
    if max(len(n) for n in names) > max(room, len(HEADERS[-1])):
        for name in names:
            if name != "-" and name not in tags:
                tags[name] = f"#{len(tags) + 1}"
    body = [_cells(r, tags.get(n, n)) for r, n in zip(rows, names, strict=True)]
    widths[-1] = max(len(HEADERS[-1]), *(len(c[-1]) for c in body))
    right = {1, 2, 3}

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(parts)).rstrip()

    legend = [f"  owner {tag}: {name}" for name, tag in tags.items()]
    return [line(HEADERS), *(line(c) for c in body), *legend]


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
