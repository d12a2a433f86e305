"""MSK's JVM IAM handlers (the `aws-msk-iam-auth` jar Spark loads) sign what a broker checks.

Runs tests/integration/jvm/MskIamTokens.java on the Spark classpath (`.jars/spark` and the
pyspark wheel's jars, as `build_spark_session` passes them) with static test credentials and
verifies both the OAUTHBEARER token and the AWS_MSK_IAM initial response by an independent SigV4
computation (tests/sigv4.py). No service and no network: signing is local. It is in the
integration tier because it needs the Maven-resolved jars and a JVM.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from dataplatform.clients.kafka import jvm_client_config
from dataplatform.settings import KafkaSettings, get_runtime_settings
from pyspark_jobs.session import spark_jars
from tests.sigv4 import MskToken, decode_token, signature_is_valid

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PROGRAM = Path(__file__).parent / "jvm" / "MskIamTokens.java"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BROKER = "b-1.dataplatform.abc123.c2.kafka.eu-west-1.amazonaws.com"


def _classpath() -> str:
    import pyspark

    wheel_jars = Path(pyspark.__file__).parent / "jars"
    return os.pathsep.join([*(str(jar) for jar in spark_jars()), f"{wheel_jars}/*"])


@pytest.fixture(scope="module")
def jvm_output() -> list[str]:
    """The two lines the JVM handlers produce from static credentials in the environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "eu-west-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    }
    java = get_runtime_settings().java_bin()
    result = subprocess.run(
        [str(java), "-cp", _classpath(), str(PROGRAM), BROKER],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 2, result.stdout
    return lines


def test_sign_jvm_oauthbearer_token_static_credentials_verifies(jvm_output: list[str]) -> None:
    token = decode_token(jvm_output[0])
    assert token.host == "kafka.eu-west-1.amazonaws.com"
    assert token.params["Action"] == "kafka-cluster:Connect"
    assert token.params["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert token.params["X-Amz-Credential"].endswith("/eu-west-1/kafka-cluster/aws4_request")
    assert signature_is_valid(token, SECRET_KEY)
    assert not signature_is_valid(token, "another-secret")


def test_sign_jvm_aws_msk_iam_response_static_credentials_verifies(
    jvm_output: list[str],
) -> None:
    payload = json.loads(jvm_output[1])
    assert payload["version"] == "2020_10_22"
    assert payload["host"] == BROKER
    # The broker rebuilds the presigned request from the payload's fields and checks it.
    request = MskToken(
        host=payload["host"],
        path="/",
        params={
            "Action": payload["action"],
            "X-Amz-Algorithm": payload["x-amz-algorithm"],
            "X-Amz-Credential": payload["x-amz-credential"],
            "X-Amz-Date": payload["x-amz-date"],
            "X-Amz-Expires": payload["x-amz-expires"],
            "X-Amz-SignedHeaders": payload["x-amz-signedheaders"],
            "X-Amz-Signature": payload["x-amz-signature"],
        },
    )
    assert request.params["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert signature_is_valid(request, SECRET_KEY)
    signed_at = time.mktime(time.strptime(payload["x-amz-date"], "%Y%m%dT%H%M%SZ"))
    assert abs(signed_at - time.mktime(time.gmtime())) < 300


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "AWS_MSK_IAM"])
def test_load_jvm_config_classes_on_spark_classpath(mechanism: str) -> None:
    """Every class the Spark Kafka source is told to load is in the jars it gets."""
    import zipfile

    config = jvm_client_config(
        KafkaSettings(
            _env_file=None,
            bootstrap_servers=f"{BROKER}:9098",
            security_protocol="SASL_SSL",
            sasl_mechanism=mechanism,
            aws_region="eu-west-1",
        )
    )
    wanted = {
        value.split()[0].replace(".", "/") + ".class"
        for name, value in config.items()
        if name.endswith(".class") or name == "sasl.jaas.config"
    }
    found: set[str] = set()
    for jar in spark_jars():
        with zipfile.ZipFile(jar) as archive:
            found |= wanted & set(archive.namelist())
    assert found == wanted
