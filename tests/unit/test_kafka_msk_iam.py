"""Amazon MSK IAM authentication of the Kafka clients, chosen by `KAFKA_*` settings.

The client configs are checked as librdkafka and the Java client read them, and the Python
token callback is run for real with static test credentials (no network: signing is local)
and its token verified by an independent SigV4 computation (tests/sigv4.py).
"""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from dataplatform.clients.kafka import client_config, jvm_client_config, producer_config
from dataplatform.settings import KafkaSettings
from tests.sigv4 import decode_token, signature_is_valid

#: AWS's documented example key pair (not a real account's).
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MSK_BOOTSTRAP = "b-1.dataplatform.abc123.c2.kafka.eu-west-1.amazonaws.com:9098"


def _msk(mechanism: str = "OAUTHBEARER") -> KafkaSettings:
    return KafkaSettings(
        _env_file=None,
        bootstrap_servers=MSK_BOOTSTRAP,
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        aws_region="eu-west-1",
    )


@pytest.fixture
def static_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only these credentials in the default chain: env vars win, no profile or role lookup."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_build_client_config_native_plaintext() -> None:
    settings = KafkaSettings(_env_file=None, bootstrap_servers="127.0.0.1:9092")
    assert client_config(settings) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }
    assert jvm_client_config(settings) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "AWS_MSK_IAM"])
def test_build_client_config_msk_iam_uses_oauthbearer_in_librdkafka(mechanism: str) -> None:
    config = client_config(_msk(mechanism))
    assert config["bootstrap.servers"] == MSK_BOOTSTRAP
    assert config["security.protocol"] == "SASL_SSL"
    # librdkafka has no AWS_MSK_IAM: the same IAM identity goes through OAUTHBEARER.
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    assert callable(config["oauth_cb"])


def test_build_producer_config_msk_iam_keeps_durability() -> None:
    config = producer_config(_msk())
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True


def test_build_jvm_config_oauthbearer_uses_msk_handler() -> None:
    assert jvm_client_config(_msk("OAUTHBEARER")) == {
        "bootstrap.servers": MSK_BOOTSTRAP,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.jaas.config": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
        ),
        "sasl.login.callback.handler.class": (
            "software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler"
        ),
        "sasl.client.callback.handler.class": (
            "software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler"
        ),
    }


def test_build_jvm_config_aws_msk_iam_uses_login_module() -> None:
    assert jvm_client_config(_msk("AWS_MSK_IAM")) == {
        "bootstrap.servers": MSK_BOOTSTRAP,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "AWS_MSK_IAM",
        "sasl.jaas.config": "software.amazon.msk.auth.iam.IAMLoginModule required;",
        "sasl.client.callback.handler.class": (
            "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
        ),
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sasl_mechanism": "OAUTHBEARER", "aws_region": "eu-west-1"}, "needs KAFKA_SECURITY"),
        ({"security_protocol": "SASL_SSL", "aws_region": "eu-west-1"}, "needs KAFKA_SASL_MECH"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "KAFKA_AWS_REGION is required",
        ),
        ({"sasl_mechanism": "PLAIN"}, "sasl_mechanism"),
    ],
)
def test_reject_settings_msk_iam_incomplete(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(_env_file=None, **values)


@pytest.mark.usefixtures("static_credentials")
def test_sign_token_static_credentials_verifies() -> None:
    oauth_cb = client_config(_msk())["oauth_cb"]
    assert callable(oauth_cb)
    before = time.time()
    token, expiry = oauth_cb(None)

    decoded = decode_token(token)
    assert decoded.host == "kafka.eu-west-1.amazonaws.com"
    assert decoded.params["Action"] == "kafka-cluster:Connect"
    assert decoded.params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    access_key, _, region, service, _ = decoded.params["X-Amz-Credential"].split("/")
    assert (access_key, region, service) == (ACCESS_KEY, "eu-west-1", "kafka-cluster")
    assert "X-Amz-Security-Token" not in decoded.params
    assert signature_is_valid(decoded, SECRET_KEY)
    assert not signature_is_valid(decoded, SECRET_KEY.replace("K", "J"))
    # librdkafka wants the expiry in seconds since the epoch: MSK tokens live 900 s.
    assert before + 850 < expiry < time.time() + 901


@pytest.mark.usefixtures("static_credentials")
def test_sign_token_session_credentials_carries_session_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-role-session-token")
    token, _ = client_config(_msk())["oauth_cb"](None)  # type: ignore[operator]
    decoded = decode_token(token)
    assert decoded.params["X-Amz-Security-Token"] == "a-role-session-token"
    assert signature_is_valid(decoded, SECRET_KEY)
