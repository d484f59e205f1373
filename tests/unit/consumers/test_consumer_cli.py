from __future__ import annotations

import pytest

from sluice.cli import build_parser


def test_replay_needs_exactly_one_target() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["replay", "--group", "g", "--to-timestamp", "2026-01-01T00:00:00Z", "--dry-run"]
    )
    assert args.to_timestamp == "2026-01-01T00:00:00Z"
    assert args.dry_run
    assert not args.force
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "--group", "g"])
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "--group", "g", "--to-earliest", "--to-latest"])


def test_consume_and_lag_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["consume", "--group", "g", "--sink", "noop", "--until-caught-up"])
    assert (args.group, args.sink, args.until_caught_up) == ("g", "noop", True)
    args = parser.parse_args(["lag", "--backend", "kafka", "--backend", "kinesis", "--json"])
    assert args.backend == ["kafka", "kinesis"]
    assert args.json


def test_replay_with_a_bad_offsets_file_fails_with_a_message(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from sluice.cli import main

    bad = tmp_path / "o.json"
    bad.write_text("not json")
    code = main(["replay", "--group", "g", "--to-offsets", str(bad), "--backend", "kafka"])
    assert code == 1
    assert "offsets file" in capsys.readouterr().err
