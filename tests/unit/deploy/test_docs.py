"""Runbooks and the deploy guide: present, complete, and naming real commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from deploy import tfmodules
from sluice.cli import build_parser

REPO = Path(__file__).resolve().parents[3]
RUNBOOKS = REPO / "docs" / "runbooks"
DEPLOY_GUIDE = REPO / "docs" / "deploy.md"
REQUIRED_RUNBOOKS = {
    "README.md",
    "consumer-lag.md",
    "dlq-not-empty.md",
    "firehose-processing-failures.md",
    "replay-window.md",
    "rotate-api-keys.md",
    "scaling.md",
    "api-errors.md",
}
CODE_BLOCK = re.compile(r"```(?:bash|sh)?\n(.*?)```", re.DOTALL)
DOCUMENTS = [*sorted(RUNBOOKS.glob("*.md")), DEPLOY_GUIDE]


def sluice_commands(markdown: str) -> list[str]:
    """Every ``sluice ...`` command line in the shell code blocks of ``markdown``."""
    commands: list[str] = []
    for block in CODE_BLOCK.findall(markdown):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            words = line.strip()
            # Leading VAR=value assignments are part of the shell line, not the command.
            while re.match(r"^[A-Z_]+=\S+\s", words):
                words = words.split(None, 1)[1]
            if words.startswith("sluice "):
                # Comments, redirections and pipes are the shell's, not the command's.
                for separator in (" #", " >", " |", " &&"):
                    words = words.split(separator, 1)[0]
                commands.append(words.strip())
    return commands


def test_every_runbook_exists() -> None:
    assert {path.name for path in RUNBOOKS.glob("*.md")} >= REQUIRED_RUNBOOKS
    assert DEPLOY_GUIDE.is_file()


@pytest.mark.parametrize("name", sorted(REQUIRED_RUNBOOKS - {"README.md"}), ids=lambda name: name)
def test_runbook_has_the_on_call_sections(name: str) -> None:
    text = (RUNBOOKS / name).read_text(encoding="utf-8")
    assert "## Rollback" in text
    assert sluice_commands(text), f"{name} names no sluice command"
    if name not in {"replay-window.md", "rotate-api-keys.md", "scaling.md"}:
        assert "## Symptoms" in text or "Alarms:" in text
        assert "## Dashboards and metrics" in text


def test_every_alarm_names_an_existing_runbook() -> None:
    text = tfmodules.source_text(tfmodules.TERRAFORM_ROOT / "modules" / "monitoring")
    targets = set(re.findall(r"Runbook: (docs/runbooks/[\w./-]+\.md)", text))
    assert len(targets) >= 4
    for target in targets:
        assert (REPO / target).is_file(), target
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for target in targets - {"docs/runbooks/README.md"}:
        assert Path(target).name in index


def _custom_metrics(directory: Path) -> dict[str, str]:
    document = tfmodules.load_tf(directory / "variables.tf")
    for entry in document["variable"]:
        if "custom_metrics" in entry:
            default: dict[str, str] = entry["custom_metrics"]["default"]
            return default
    raise AssertionError(f"{directory} has no custom_metrics variable")


def test_runbooks_use_the_metric_names_the_alarms_read() -> None:
    root = tfmodules.TERRAFORM_ROOT
    metrics = _custom_metrics(root / "modules" / "monitoring")
    # The example environment passes the same names on (one place to align them).
    assert _custom_metrics(root / "environments" / "example") == metrics
    lag = (RUNBOOKS / "consumer-lag.md").read_text(encoding="utf-8")
    dlq = (RUNBOOKS / "dlq-not-empty.md").read_text(encoding="utf-8")
    assert metrics["namespace"] in lag
    assert metrics["consumer_lag_records"] in lag
    assert metrics["consumer_lag_seconds"] in lag
    assert metrics["dlq_records"] in dlq


def test_sluice_commands_extracted_from_markdown() -> None:
    markdown = (
        "text\n```bash\nsluice lag --group g   # comment\n"
        "SLUICE_X=1 \\\n  sluice load --json > out.json\necho no\n```\n"
    )
    assert sluice_commands(markdown) == ["sluice lag --group g", "sluice load --json"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_documented_commands_are_real(document: Path) -> None:
    parser = build_parser()
    for command in sluice_commands(document.read_text(encoding="utf-8")):
        argv = shlex.split(command)[1:]
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{document.name}: `{command}` is not a valid sluice command")
        assert callable(args.handler)
