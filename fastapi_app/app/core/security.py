"""API-key authentication (hashed keys in the store, cached briefly) and per-key rate limits."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from dataplatform.db.apikeys import parse, secret_matches
from fastapi_app.app.core.store import IngestStore


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the API key's public id (or `anonymous` with auth off)."""

    name: str
    rate_limit_per_s: float | None = None


ANONYMOUS = Principal("anonymous")


class ApiKeyAuthenticator:
    """Verifies presented keys against the store, caching the verdict for `ttl_s` seconds.

    The cache is keyed by a hash of the presented key, so secrets are not kept in memory; a
    revocation takes effect within `ttl_s`.
    """

    _MAX_CACHED = 10_000

    def __init__(self, store: IngestStore, *, ttl_s: float) -> None:
        """Use `store` for lookups."""
        self._store = store
        self._ttl_s = ttl_s
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}

    async def authenticate(self, presented: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise."""
        digest = hashlib.sha256(presented.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = await self._lookup(presented)
        if len(self._cache) >= self._MAX_CACHED:
            # Cheap bound against floods of random keys: start over rather than track LRU.
            self._cache.clear()
        self._cache[digest] = (now + self._ttl_s, principal)
        return principal

    async def _lookup(self, presented: str) -> Principal | None:
        parsed = parse(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        stored = await self._store.find_api_key(key_id)
        if stored is None or stored.revoked or not secret_matches(secret, stored.secret_sha256):
            return None
        return Principal(key_id, stored.rate_limit_per_s)


class RateLimiter:
    """Token bucket per principal: `rate` requests per second, bursts up to `burst`.

    Per process: with several workers each enforces the limit on its share of the traffic.
    """

    def __init__(self, *, rate: float, burst: int) -> None:
        """`rate` 0 disables limiting."""
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, list[float]] = {}

    def acquire(self, principal: Principal) -> float:
        """Take one token; return 0 when allowed, else the seconds until a token is free."""
        rate = principal.rate_limit_per_s if principal.rate_limit_per_s is not None else self._rate
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
