"""Before checking a secret (an admin key, a sign-in): failed attempts throttled per address.

A few failures are free; each further one makes the address wait twice as long before its
next attempt is even checked, and past a limit the address is blocked for a while. State is
an LRU map of bounded size whose entries expire, so many addresses cannot grow it without
bound. IPv6 addresses count per /64, the block one host usually has. Checks that wait on
I/O run one at a time per address, so concurrent guesses cannot all pass before the first
failure counts. The state is per process: each worker throttles on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures: int = 5
    """Failures allowed without any wait (typos)."""
    first_wait_seconds: float = 1.0
    """The wait after the first failure past the free ones; it doubles with each further one."""
    max_wait_seconds: float = 60.0
    block_after: int = 10
    """Failures (without a success in between) that block the address."""
    block_seconds: float = 900.0
    forget_seconds: float = 3600.0
    """An address without a failure for this long starts again from nothing."""
    max_entries: int = 10_000


@dataclass(frozen=True, slots=True)
class Failure:
    """What one failed attempt led to."""

    failures: int
    wait_seconds: int
    """Seconds before the address may try again (0: at once)."""
    blocked: bool
    """Whether this failure blocked the address (rather than only delaying it)."""


@dataclass(slots=True)
class _Entry:
    failures: int
    last: float
    until: float


@dataclass(slots=True)
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def address_key(address: str) -> str:
    """The address as the throttle counts it: IPv4 as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Throttle:
    """Failed attempts per address: `wait` before checking, `failed` or `succeeded` after."""

    def __init__(
        self,
        policy: ThrottlePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._turns: dict[str, _Turn] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, address: str) -> AsyncIterator[None]:
        """Hold the address's turn: a check that awaits I/O, then records its outcome, runs
        alone for its address. Only addresses with a check under way hold a lock."""
        key = address_key(address)
        turn = self._turns.setdefault(key, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[key]

    def wait(self, address: str) -> int | None:
        """Whole seconds `address` must still wait before an attempt is checked, or None."""
        key = address_key(address)
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if now < entry.until:
            return max(1, math.ceil(entry.until - now))
        if now - entry.last >= self.policy.forget_seconds:
            del self._entries[key]
        return None

    def failed(self, address: str) -> Failure:
        """Count a failed attempt from `address`: how long it must now wait."""
        p = self.policy
        key = address_key(address)
        now = self._clock()
        entry = self._entries.pop(key, None)
        if entry is None or now - entry.last >= p.forget_seconds:
            entry = _Entry(0, now, now)
        entry.failures += 1
        entry.last = now
        blocked = entry.failures >= p.block_after
        if blocked:
            wait = p.block_seconds
        elif entry.failures > p.free_failures:
            wait = min(
                p.max_wait_seconds,
                p.first_wait_seconds * 2 ** (entry.failures - p.free_failures - 1),
            )
        else:
            wait = 0.0
        entry.until = now + wait
        self._entries[key] = entry
        while len(self._entries) > p.max_entries:
            self._entries.popitem(last=False)
        return Failure(entry.failures, math.ceil(wait), blocked)

    def succeeded(self, address: str) -> None:
        """A correct secret from `address`: its failures are forgotten."""
        self._entries.pop(address_key(address), None)
