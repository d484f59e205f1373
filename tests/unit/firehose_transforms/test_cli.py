"""``sluice firehose run`` argument handling."""

from __future__ import annotations

import pytest

from sluice.cli import build_parser


@pytest.mark.parametrize(
    "args",
    [
        ["--buffer-mib", "0"],
        ["--buffer-mib", "129"],
        ["--buffer-seconds", "-1"],
        ["--buffer-seconds", "901"],
        ["--buffer-mib", "five"],
        ["--source", "sqs"],
    ],
)
def test_out_of_range_hints_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["firehose", "run", "--event-type", "insurance-claim", *args])
    assert info.value.code == 2


def test_limits_are_accepted() -> None:
    args = build_parser().parse_args(
        [
            "firehose",
            "run",
            "--event-type",
            "financial-transaction",
            "--buffer-mib",
            "128",
            "--buffer-seconds",
            "0",
            "--source",
            "kinesis",
            "--once",
        ]
    )
    assert (args.buffer_mib, args.buffer_seconds, args.source, args.once) == (
        128,
        0,
        "kinesis",
        True,
    )


def test_metrics_are_served() -> None:
    import urllib.request

    from deploy.local.base import free_port
    from firehose_transforms.metrics import DeliveryMetrics

    metrics = DeliveryMetrics()
    metrics.records.labels("insurance-claim", "Ok").inc(3)
    port = free_port()
    metrics.serve(port)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'sluice_firehose_records_total{event_type="insurance-claim",result="Ok"} 3.0' in body


@pytest.mark.parametrize(
    ("flag", "setting", "on"),
    [
        ([], False, False),
        ([], True, True),
        (["--raw-backup"], False, True),
        (["--no-raw-backup"], True, False),
    ],
)
def test_raw_backup_flag_overrides_the_setting(flag: list[str], setting: bool, on: bool) -> None:
    from firehose_transforms.cli import build_options
    from firehose_transforms.config import DeliverySettings

    args = build_parser().parse_args(
        ["firehose", "run", "--event-type", "insurance-claim", "--source", "kafka", *flag]
    )
    options = build_options(args, DeliverySettings(firehose_raw_backup=setting))
    assert options.raw_backup is on
