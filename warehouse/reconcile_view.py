"""Text rendering of a :class:`~warehouse.reconcile.ReconcileReport` for an 80-column
terminal: short column names, one row per stage, ids on lines of their own."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warehouse.reconcile import ReconcileReport

DEFAULT_WIDTH = 80
MAX_IDS = 20
# (header, StageCount.as_dict key); every header is short so eight columns fit 80.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("events", "total"),
    ("distinct", "distinct"),
    ("diff", "difference"),
    ("dups", "duplicates"),
    ("missing", "missing"),
    ("unident", "unidentified"),
    ("tests", "test_events"),
)
LEGEND = (
    "diff: distinct here minus the stage it is fed from; dups: ids seen twice or more; "
    "unident: copies without a readable event id; tests: test events (dropped on purpose)"
)


def render_reconcile(report: ReconcileReport, width: int = DEFAULT_WIDTH) -> list[str]:
    """Plain lines: the stage table, then missing and lost ids, then the verdict."""
    stages = [s.as_dict() for s in report.stages]
    name_w = max(len("stage"), *(len(s["stage"]) for s in stages))
    cells: list[list[str]] = []
    for s in stages:
        if not s["available"]:
            cells.append(["n/a"] + [""] * (len(COLUMNS) - 1))
            continue
        cells.append([f"{s[key]:+d}" if key == "difference" else str(s[key]) for _, key in COLUMNS])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(COLUMNS)]

    def line(name: str, row: list[str]) -> str:
        return " ".join(
            [name.ljust(name_w), *(c.rjust(w) for c, w in zip(row, widths, strict=True))]
        )

    lines = [line("stage", [h for h, _ in COLUMNS])]
    lines += [line(s["stage"], row) for s, row in zip(stages, cells, strict=True)]
    lines += _wrap(LEGEND, width)
    for count in report.stages:
        for eid in count.missing[:MAX_IDS]:
            lines.append(f"missing at {count.stage}: {eid}")
        if len(count.missing) > MAX_IDS:
            more = len(count.missing) - MAX_IDS
            lines.append(f"... and {more} more missing at {count.stage} (--json)")
    for eid in report.lost[:MAX_IDS]:
        lines.append(f"lost: {eid}")
    if len(report.lost) > MAX_IDS:
        lines.append(f"... and {len(report.lost) - MAX_IDS} more lost (--json)")
    for eid, hold in report.withheld[:MAX_IDS]:
        lines.append(f"withheld: {eid}")
        lines.append(f"  behind load {hold.load_id}")
        lines.append(f"  ({hold.status}, lease until {hold.lease_expires_at or '-'})")
    if len(report.withheld) > MAX_IDS:
        lines.append(f"... and {len(report.withheld) - MAX_IDS} more withheld (--json)")
    for reason, n in sorted(report.quarantined.items()):
        lines.append(f"quarantined ({reason}): {n}")
    lines.append("OK: nothing missing" if report.ok else "MISMATCH")
    return lines


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width)


def print_reconcile(report: ReconcileReport, console: object | None = None) -> None:
    """Print :func:`render_reconcile` at the console's width, the verdict in colour."""
    from rich.console import Console
    from rich.text import Text

    out = console if isinstance(console, Console) else Console()
    for text in render_reconcile(report, out.width):
        styled = Text(text)
        if text.startswith(("missing at", "lost:", "MISMATCH")):
            styled.stylize("red")
        elif text.startswith("withheld:"):
            styled.stylize("yellow")
        elif text.startswith("OK:"):
            styled.stylize("green")
        out.print(styled, soft_wrap=True)
