"""The control of every HTTP benchmark: a bare ASGI callable that reads the body, returns 202.

Run under the same server and flags as the ingestor (`dataplatform run ingestor`: uvicorn,
uvloop, httptools, no access log), so the ratio real/control isolates what the ingestor adds:

    uvicorn bare_asgi:app --app-dir benchmarks --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

from typing import Any

_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole request body, answer `202 {}`; lifespan events are acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})
