"""Signed media URLs: HMAC-SHA256 over the id and the expiry, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

SECRET_FILE = "media.secret"
_HEX = re.compile(r"[0-9a-fA-F]{64}")


class Signer:
    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the media signing secret is empty")
        self._key = hashlib.sha256(b"faregate media url\x00" + secret).digest()

    def sign(self, media_id: str, expires: int) -> str:
        """The hex signature of (`media_id`, `expires`)."""
        message = f"{media_id}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def valid(self, media_id: str, expires: int, signature: str) -> bool:
        """Whether `signature` is this signer's for (`media_id`, `expires`); expiry aside."""
        if _HEX.fullmatch(signature) is None:
            return False
        return hmac.compare_digest(self.sign(media_id, expires), signature.lower())


def load_secret(
    secret_env: str | None, home: Path, environ: Mapping[str, str] = os.environ
) -> bytes:
    """The signing secret: the variable named by `secret_env` (refused when unset or empty),
    else `$FAREGATE_HOME/media.secret`, generated once with mode 0600."""
    if secret_env is not None:
        value = environ.get(secret_env, "")
        if not value:
            raise ValueError(f"media.secret_env: the environment variable {secret_env} is not set")
        return value.encode()
    path = home / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    partial = home / f".{SECRET_FILE}.{secrets.token_hex(8)}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secret)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(partial, path)  # whole or not at all, and never over another's secret
        except FileExistsError:  # another process of the same home made it first
            return path.read_bytes().strip()
    finally:
        partial.unlink(missing_ok=True)
    return secret
