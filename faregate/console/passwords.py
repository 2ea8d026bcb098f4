"""Passwords: argon2id hashes (argon2-cffi), checked off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 200

_hasher = PasswordHasher()  # argon2id, the library's recommended parameters
_DUMMY = _hasher.hash("a password nobody has: unknown accounts take as long to refuse")


def problem(password: str) -> str | None:
    """Why `password` cannot be used, or None."""
    if len(password) < MIN_LENGTH:
        return f"The password must be at least {MIN_LENGTH} characters long."
    if len(password) > MAX_LENGTH:
        return f"The password must be at most {MAX_LENGTH} characters long."
    return None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored or _DUMMY, password)) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; None (no such user) takes as long and fails."""
    return await asyncio.to_thread(_verify, stored, password)
