"""API-key authentication (hashed keys in the store, cached briefly) and per-key rate limits."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from dataplatform.db.apikeys import parse, secret_matches
from fastapi_app.app.core.store import IngestStore, StoredApiKey

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the API key's public id (or `anonymous` with auth off)."""

    name: str
    rate_limit_per_s: float | None = None


ANONYMOUS = Principal("anonymous")


class ApiKeyAuthenticator:
    """Verifies presented keys against a snapshot of the store's API keys.

    The snapshot is reloaded every `ttl_s` seconds by the request that finds it expired, so a
    revocation applies within `ttl_s`. When that reload fails (the store is down) and there is
    a snapshot, it stays in use (nobody can revoke a key then either), and further reloads run
    in the background until one succeeds, so requests do not each wait for the store's
    timeout: ingest without an `Idempotency-Key` keeps working for the keys already known
    (docs/API.md). A key id missing from the snapshot waits for a snapshot taken after the
    request arrived, and such reloads run at most once per `miss_reload_s`: a key created a
    moment ago is accepted (its first request waits up to that interval), and a flood of
    random well-formed keys costs at most one query per interval instead of one per request.
    Only secret hashes are held.
    """

    def __init__(self, store: IngestStore, *, ttl_s: float, miss_reload_s: float = 1.0) -> None:
        """Use `store` for the snapshot."""
        self._store = store
        self._ttl_s = ttl_s
        self._miss_reload_s = min(miss_reload_s, ttl_s)
        self._keys: dict[str, StoredApiKey] = {}
        self._loaded_at = -math.inf
        self._reload_lock = asyncio.Lock()
        #: The background reload of an expired snapshot, while it runs.
        self._refresh: asyncio.Task[None] | None = None
        #: Whether the last reload failed (then expired snapshots reload in the background).
        self._store_down = False

    @property
    def has_snapshot(self) -> bool:
        """Whether keys were ever loaded: requests can be authenticated while the store is
        down."""
        return self._loaded_at > -math.inf

    def _refresh_later(self, older_than: float) -> None:
        """Reload in a task of its own (one at a time); on failure keep the snapshot."""
        if self._refresh is not None and not self._refresh.done():
            return

        self._refresh = asyncio.get_running_loop().create_task(self._reload_or_keep(older_than))

    async def _reload_or_keep(self, older_than: float) -> None:
        """Reload; when that fails, keep the snapshot (raise if there is none)."""
        try:
            await self._reload(older_than)
        except Exception as exc:
            if not self.has_snapshot:
                raise
            self._store_down = True
            log.warning("API key reload failed, keeping the keys loaded before: %s", exc)

    async def _reload(self, older_than: float) -> None:
        """Make sure the snapshot's query started after `older_than`."""
        async with self._reload_lock:  # one query for all requests waiting on it
            if self._loaded_at > older_than:
                return
            started = time.monotonic()
            keys = await self._store.list_api_keys()
            self._keys = {key.key_id: key for key in keys}
            self._loaded_at = started
            self._store_down = False

    async def authenticate(self, presented: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise.

        Raises:
            Exception: The store could not be read when a snapshot was needed: none was loaded
                yet, or the key id is not in it.
        """
        parsed = parse(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        now = time.monotonic()
        if now - self._loaded_at > self._ttl_s:
            if self._store_down:
                self._refresh_later(older_than=now - self._ttl_s)
            else:
                await self._reload_or_keep(older_than=now - self._ttl_s)
        stored = self._keys.get(key_id)
        if stored is None:
            await asyncio.sleep(max(0.0, self._loaded_at + self._miss_reload_s - now))
            await self._reload(older_than=now)
            stored = self._keys.get(key_id)
        if stored is None or stored.revoked or not secret_matches(secret, stored.secret_sha256):
            return None
        return Principal(key_id, stored.rate_limit_per_s)


class RateLimiter:
    """Token bucket per principal: `rate` requests per second, bursts up to `burst`.

    Counted in the process: with several workers, `rate` and `burst` are a worker's share
    (`IngestorSettings.worker_share`) and a key's own limit is divided by `workers` here, so the
    workers together never admit more than the limit.
    """

    def __init__(self, *, rate: float, burst: int, workers: int = 1) -> None:
        """`rate` 0 disables limiting."""
        self._rate = rate
        self._burst = burst
        self._workers = workers
        self._buckets: dict[str, list[float]] = {}

    def acquire(self, principal: Principal) -> float:
        """Take one token; return 0 when allowed, else the seconds until a token is free."""
        rate = (
            principal.rate_limit_per_s / self._workers
            if principal.rate_limit_per_s is not None
            else self._rate
        )
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._buckets.get(principal.name)
        if bucket is None:
            bucket = self._buckets[principal.name] = [float(self._burst), now]
        tokens = min(float(self._burst), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / rate
