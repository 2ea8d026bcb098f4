"""The rate limiter alone: CPU per request (acquire, count the tokens, release) in process and
in Redis, against no limits, in one run."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time

import redis.asyncio as aioredis

from faregate.billing.types import KeyRecord
from faregate.limits.base import Limiter, Unlimited
from faregate.limits.config import Limits, Plan, RouteLimits
from faregate.limits.factory import make_limiter
from faregate.metrics import Metrics

KEY = KeyRecord(
    id="key_bench", account_id="acct_bench", allowed_models=None, expires_at=None, revoked=False
)
PLANS = {"bench": Plan(chat=RouteLimits(rpm=10**8, tpm=10**12))}


async def per_request(limiter: Limiter, n: int, width: int) -> float:
    """CPU µs per request over `n` requests, `width` at a time."""

    async def one() -> None:
        lease = await limiter.acquire(KEY, "chat")
        await limiter.record_tokens(KEY, "chat", 300)
        lease.release()

    for _ in range(200 // width):  # warm-up
        await asyncio.gather(*(one() for _ in range(width)))
    t0 = time.process_time()
    for _ in range(n // width):
        await asyncio.gather(*(one() for _ in range(width)))
    await asyncio.sleep(0.05)  # the slots' release tasks
    return (time.process_time() - t0) / n * 1e6


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=3, help="best of N")
    args = p.parse_args()
    prefix = f"faregate-bench-{secrets.token_hex(4)}"
    local = Limits(default_plan="bench")
    shared = Limits(default_plan="bench", redis_url=args.redis, key_prefix=prefix, replicas=2)
    print("| limiter | at a time | CPU µs per request | above no limits |")
    print("| --- | ---: | ---: | ---: |")
    try:
        for width in (1, 32):
            base = None
            for name, limits in (("none", None), ("in process", local), ("Redis", shared)):
                limiter = Unlimited() if limits is None else make_limiter(limits, PLANS, Metrics())
                best = min([await per_request(limiter, args.n, width) for _ in range(args.rounds)])
                close = getattr(limiter, "close", None)
                if close is not None:
                    await close()
                base = best if base is None else base
                print(f"| {name} | {width} | {best:.1f} | {best - base:+.1f} |", flush=True)
    finally:
        r = aioredis.from_url(args.redis)
        keys = [k async for k in r.scan_iter(match=f"{prefix}*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
