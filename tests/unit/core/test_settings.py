"""Settings: env file fallback, environment precedence, documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice import settings_doc
from sluice.config import AwsSettings, EventType, KafkaSettings, StreamBackend, StreamSettings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_env_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "stack.env"
    env_file.write_text("SLUICE_STREAM_BACKEND=kinesis\nSLUICE_KAFKA_BOOTSTRAP_SERVERS=file:1\n")
    monkeypatch.setenv("SLUICE_STACK_ENV", str(env_file))
    assert StreamSettings().stream_backend is StreamBackend.KINESIS
    monkeypatch.setenv("SLUICE_KAFKA_BOOTSTRAP_SERVERS", "env:2")
    assert KafkaSettings().kafka_bootstrap_servers == "env:2"


def test_settings_are_frozen_and_secrets_hidden() -> None:
    settings = KafkaSettings(kafka_sasl_password="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings)
    assert settings.client_config()["sasl.password"] == "hunter2"
    with pytest.raises(ValueError):
        settings.kafka_client_id = "x"  # type: ignore[misc]


def test_aws_client_kwargs_only_carry_credentials_when_set() -> None:
    assert AwsSettings().client_kwargs() == {"region_name": "us-east-1"}
    kwargs = AwsSettings(
        aws_endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="a",  # type: ignore[arg-type]
        aws_secret_access_key="b",  # type: ignore[arg-type]
    ).client_kwargs()
    assert kwargs["endpoint_url"] == "http://127.0.0.1:1"
    assert kwargs["aws_secret_access_key"] == "b"


def test_stream_names_per_event_type() -> None:
    s = StreamSettings(stream_insurance_claim="claims")
    assert s.name_for(EventType.INSURANCE_CLAIM) == "claims"
    assert s.name_for("financial-transaction") == "sluice-financial-transaction"
    with pytest.raises(ValueError):
        s.name_for("unknown-type")


def test_every_setting_has_a_description() -> None:
    undocumented = [d.variable for d in settings_doc.collect() if not d.description.strip()]
    assert undocumented == []


def test_readme_settings_table_is_current() -> None:
    text = README.read_text()
    block = text.split(settings_doc.START, 1)[1].split(settings_doc.END, 1)[0]
    assert block.strip() == settings_doc.markdown().strip(), (
        "README settings table is stale: python -m sluice.settings_doc --write README.md"
    )


def test_msk_iam_auth_attaches_a_signing_oauth_callback() -> None:
    from sluice.config import msk_iam_oauth_callback

    settings = KafkaSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_msk_region="eu-west-1",
    )
    assert callable(settings.client_config()["oauth_cb"])
    calls: list[str] = []

    def provider(region: str) -> tuple[str, int]:
        calls.append(region)
        return "signed-token", 1_700_000_900_000

    cb = msk_iam_oauth_callback("eu-west-1", provider)
    assert cb("ignored") == ("signed-token", 1_700_000_900.0)
    assert calls == ["eu-west-1"]
    # Plain SASL and PLAINTEXT get no callback.
    assert "oauth_cb" not in KafkaSettings().client_config()
    off = KafkaSettings(kafka_sasl_mechanism="OAUTHBEARER", kafka_oauth_provider="none")
    assert "oauth_cb" not in off.client_config()


def test_msk_iam_signing_failure_is_a_retryable_sluice_error() -> None:
    from sluice.config import msk_iam_oauth_callback
    from sluice.errors import RetryableError

    def provider(region: str) -> tuple[str, int]:
        raise RuntimeError("no credentials")

    with pytest.raises(RetryableError, match="eu-west-1") as info:
        msk_iam_oauth_callback("eu-west-1", provider)(None)
    assert info.value.code == "msk_iam_token"


def test_msk_iam_signer_produces_a_token_with_the_role_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real signer, offline: static credentials sign a token locally."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    from sluice.config import msk_iam_oauth_callback

    token, expiry = msk_iam_oauth_callback("us-east-1")(None)
    assert token
    assert expiry > 1_600_000_000
