"""AWS Lambda entry point of the ingestor: the same FastAPI app, behind API Gateway, via Mangum.

The container image for Lambda runs `fastapi_app.lambda_handler.handler` (terraform_infra/
modules/lambda_api_ingestor). Mangum turns each API Gateway event (HTTP API payload 2.0, REST
API, ALB) into an ASGI request and the response back into the event's answer shape.

The app's lifespan (Kafka producer, Postgres pools, migrations) runs once per execution
environment, at the first event, not around every request as Mangum's own lifespan handling
would: a Lambda environment serves many events, and a producer per request would cost a
connection handshake each time. SIGTERM (sent to the runtime when the environment is shut
down) runs the lifespan's exit, which drains the in-flight records and closes the clients.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, MutableMapping
from contextlib import ExitStack
from types import FrameType
from typing import Any

from fastapi import FastAPI
from mangum import Mangum
from mangum.protocols import LifespanCycle

#: Name of the variable holding the Secrets Manager id of the Postgres password (the
#: RDS-managed master secret, a JSON object with `password`).
PASSWORD_SECRET_VARIABLE = "POSTGRES_PASSWORD_SECRET_ID"  # noqa: S105 (a variable name, not a secret)


def load_postgres_password(
    environ: MutableMapping[str, str],
    fetch_secret: Callable[[str], str] | None = None,
) -> None:
    """Set POSTGRES_PASSWORD from Secrets Manager when only its secret id is configured.

    Lambda environment variables are visible to anyone who may read the function's
    configuration, so the password itself is never one of them.

    Args:
        environ: The environment to read and update (os.environ in Lambda).
        fetch_secret: Returns the secret string for a secret id; default Secrets Manager
            through boto3.
    """
    secret_id = environ.get(PASSWORD_SECRET_VARIABLE)
    if not secret_id or environ.get("POSTGRES_PASSWORD"):
        return
    fetch = fetch_secret or _fetch_secret
    secret = json.loads(fetch(secret_id))
    environ["POSTGRES_PASSWORD"] = secret["password"]


def _fetch_secret(secret_id: str) -> str:
    import boto3

    value: str = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    return value


class LambdaIngestor:
    """A FastAPI app answering Lambda events; its lifespan is entered once, at the first event.

    Args:
        app: The ingestor app (`fastapi_app.app.main.create_app()`).
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        # lifespan="off": Mangum would start and stop the app around every event.
        self._adapter = Mangum(app, lifespan="off")
        self._lifespan: ExitStack | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Answer one API Gateway / ALB event."""
        if self._lifespan is None:
            stack = ExitStack()
            # Mangum runs the startup on the same event loop it serves requests on.
            stack.enter_context(LifespanCycle(self._app, "on"))
            self._lifespan = stack
        response: dict[str, Any] = self._adapter(event, context)
        return response

    def close(self) -> None:
        """Run the app's shutdown (drain, flush the producer, close pools) if it started."""
        if self._lifespan is not None:
            stack, self._lifespan = self._lifespan, None
            stack.close()


_ingestor: LambdaIngestor | None = None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _ingestor is not None:
        _ingestor.close()
    raise SystemExit(0)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda function's handler: builds the app from the environment at the first event."""
    global _ingestor
    if _ingestor is None:
        from fastapi_app.app.main import create_app

        load_postgres_password(os.environ)
        _ingestor = LambdaIngestor(create_app())
        signal.signal(signal.SIGTERM, _on_sigterm)
    return _ingestor(event, context)
