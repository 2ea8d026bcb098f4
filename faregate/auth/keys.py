"""API keys: generation, keyed hashing and the cached lookup on the request path."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from faregate.billing.store import Store, now_ms
from faregate.billing.types import KeyRecord
from faregate.errors import Unauthorized

KEY_PREFIX = "fg-"
ADMIN_PREFIX = "fga-"


def generate_key(prefix: str = KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def display_prefix(key: str) -> str:
    return key[:10]


@dataclass(frozen=True, slots=True)
class KeyHasher:
    """HMAC-SHA256 under the server secret: a leaked table alone cannot test guesses."""

    secret: bytes

    def __call__(self, key: str) -> str:
        return hmac.new(self.secret, key.encode(), hashlib.sha256).hexdigest()


def load_secret(env_value: str | None, home: Path) -> bytes:
    """The hashing secret: FAREGATE_SECRET_KEY, else a file created once under the home folder."""
    if env_value:
        return env_value.encode()
    path = home / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    home.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
    return secret


class KeyCache:
    """Key lookups cached for a few seconds, refusals included; a key revoked through this
    process is dropped at once, through another process within `ttl` seconds."""

    def __init__(self, store: Store, hasher: KeyHasher, ttl: float, max_entries: int = 50_000):
        self._store = store
        self._hash = hasher
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, KeyRecord | None]] = {}

    def forget(self, key_hash: str | None = None) -> None:
        if key_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(key_hash, None)

    async def authenticate(self, key: str | None) -> KeyRecord:
        if not key:
            raise Unauthorized(
                "No API key provided. Send it as 'Authorization: Bearer KEY'.",
                code="missing_api_key",
            )
        digest = self._hash(key)
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            record = hit[1]
        else:
            record = await self._store.find_key(digest)
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[digest] = (now + self._ttl, record)
        if record is None:
            raise Unauthorized("Invalid API key provided.")
        if record.revoked:
            raise Unauthorized("This API key has been revoked.", code="revoked_api_key")
        if record.expires_at is not None and record.expires_at <= now_ms():
            raise Unauthorized("This API key has expired.", code="expired_api_key")
        return record
