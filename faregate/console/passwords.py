"""Passwords: argon2id hashes (argon2-cffi), checked off the event loop."""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 10
MAX_LENGTH = 200


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2id with the library's recommended parameters, loaded on the first password: a
    gateway that serves no sign-in does not hold the library in memory."""
    from argon2 import PasswordHasher

    return PasswordHasher()


@functools.cache
def _dummy() -> str:
    """A hash for unknown accounts, made on first use: hashing takes argon2's 64 MiB, which
    a gateway that never serves a sign-in should not hold at its peak."""
    return _hasher().hash("a password nobody has: unknown accounts take as long to refuse")


def problem(password: str) -> str | None:
    """Why `password` cannot be used, or None."""
    if len(password) < MIN_LENGTH:
        return f"The password must be at least {MIN_LENGTH} characters long."
    if len(password) > MAX_LENGTH:
        return f"The password must be at most {MAX_LENGTH} characters long."
    return None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher().hash, password)


def _verify(stored: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(stored or _dummy(), password)) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; None (no such user) takes as long and fails."""
    return await asyncio.to_thread(_verify, stored, password)
