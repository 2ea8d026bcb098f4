"""Usage rows that ride the SQLite ledger's commits a few at a time, instead of a commit of
their own that stalls the one request it lands on."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

Row = tuple[Any, ...]


class _Ride:
    """Rows handed over together: `taken` of them are in a commit under way or done, `done`
    of them are committed; the future ends when all are."""

    __slots__ = ("done", "fut", "rows", "taken")

    def __init__(self, rows: list[Row], fut: asyncio.Future[None]) -> None:
        self.rows = rows
        self.fut = fut
        self.taken = 0
        self.done = 0


Slice = tuple[_Ride, int, int]
"""Rows `start:end` of a ride, carried by one commit."""


class Riders:
    """The queue of rows waiting for a commit. A commit takes a few from the front (`take`),
    and afterwards reports them written (`committed`) or puts them back (`failed`). One
    commit at a time carries rows: what a commit takes is always the front of what is left."""

    __slots__ = ("_rides", "waiting")

    def __init__(self) -> None:
        self._rides: deque[_Ride] = deque()
        self.waiting = 0
        """Rows not yet taken by a commit."""

    def add(self, rows: list[Row]) -> asyncio.Future[None]:
        fut = asyncio.get_running_loop().create_future()
        if rows:
            self._rides.append(_Ride(rows, fut))
            self.waiting += len(rows)
        else:
            fut.set_result(None)
        return fut

    def take(self, limit: int) -> tuple[list[Row], list[Slice]]:
        """Up to `limit` rows from the front, and where they came from."""
        rows: list[Row] = []
        slices: list[Slice] = []
        for ride in self._rides:
            if len(rows) >= limit:
                break
            start = ride.taken
            if start == len(ride.rows):
                continue  # all taken by the commit under way
            end = min(len(ride.rows), start + limit - len(rows))
            rows.extend(ride.rows[start:end])
            slices.append((ride, start, end))
            ride.taken = end
        self.waiting -= len(rows)
        return rows, slices

    def committed(self, slices: list[Slice]) -> None:
        for ride, start, end in slices:
            ride.done += end - start
            if ride.done == len(ride.rows):
                self._rides.remove(ride)
                if not ride.fut.done():
                    ride.fut.set_result(None)

    def failed(self, slices: list[Slice], exc: BaseException) -> None:
        """A commit failed (carrying `slices`, if any): their rows wait again. Every ride none
        of whose rows is written is given back to its writer with the error (it keeps them
        for its next try, as when the rows had a commit of their own); one partly written
        waits for the next commits."""
        for ride, start, end in reversed(slices):
            ride.taken = start
            self.waiting += end - start
        for ride in [r for r in self._rides if not r.done and not r.taken]:
            self._rides.remove(ride)
            self.waiting -= len(ride.rows)
            if not ride.fut.done():
                ride.fut.set_exception(exc)

    def abandon(self, exc: BaseException) -> None:
        """The store is closing: every ride still waiting ends with `exc`."""
        for ride in self._rides:
            if not ride.fut.done():
                ride.fut.set_exception(exc)
        self._rides.clear()
        self.waiting = 0
