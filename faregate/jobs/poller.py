"""The poller every gateway process runs: lease due jobs (one holder per job; PostgreSQL skips
rows another process holds), ask their upstream once, back off, and end each job exactly once:
a finished video (and its cover) is copied into the media store and its seconds settled; a
failure, an expiry or a lost submission releases the hold. Jobs survive any restart: the
database, not the process, holds their state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import cast

from faregate.billing.jobs import QUEUED, RUNNING, Job, Jobs
from faregate.billing.pricing import cost_of
from faregate.billing.store import now_ms
from faregate.billing.types import Price, Settlement, Usage
from faregate.errors import FailureClass, UpstreamError
from faregate.media.types import MediaItem, MediaTooLarge
from faregate.pipeline.services import Services
from faregate.pipeline.video import OWNER, decode_deployment, units_of
from faregate.providers.base import UpstreamRequest
from faregate.providers.video import Asset, VideoProtocol, VideoStatus, download
from faregate.routing.catalog import Deployment
from faregate.trace import Trace
from faregate.upstream.base import Reply

log = logging.getLogger("faregate.jobs")

NO_RESULT = "expired: no result within the model's time limit"


def next_interval(svc: Services, polls: int) -> float:
    """Seconds until the next poll after `polls` polls: the first interval, times the backoff
    per poll, capped."""
    v = svc.config.video
    return min(v.max_poll_interval_seconds, v.first_poll_seconds * v.backoff ** max(polls - 1, 0))


class Poller:
    """One process's polling loop (started and stopped by the app)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            found = 0
            try:
                found = await self.tick()
            except Exception:
                log.exception("video job poll failed; retrying")
            if found < self.svc.config.video.batch:
                await asyncio.sleep(self.svc.config.video.tick_seconds)

    async def tick(self) -> int:
        """Lease the due jobs and poll each once; the number leased."""
        v = self.svc.config.video
        jobs = await Jobs(self.svc.store).lease_due(OWNER, v.batch, int(v.lease_seconds * 1000))
        if jobs:
            await asyncio.gather(*(self.poll(job) for job in jobs))
        return len(jobs)

    async def poll(self, job: Job) -> None:
        """One poll of one leased job; never raises."""
        try:
            await self._poll(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("polling job %s failed", job.id)
            with contextlib.suppress(Exception):
                await self._later(job, job.state)

    async def _later(self, job: Job, state: str) -> None:
        if state != job.state:
            log.info("job %s: %s -> %s (poll %d)", job.id, job.state, state, job.polls)
        delay = next_interval(self.svc, job.polls)
        await Jobs(self.svc.store).update_progress(
            job.id, OWNER, state=state, next_poll_at=now_ms() + int(delay * 1000)
        )

    async def _fail(self, job: Job, note: str) -> None:
        if await Jobs(self.svc.store).fail_job(job.id, note):
            log.info("job %s: %s -> failed: %s", job.id, job.state, note)
            record_end(self.svc, job, 0, (), None, 502)

    async def _poll(self, job: Job) -> None:
        svc = self.svc
        timeout_ms = svc.config.video.timeout_of(job.model) * 1000
        if now_ms() - job.created_at > timeout_ms:
            await self._fail(job, NO_RESULT)
            return
        served = decode_deployment(svc, job.deployment)
        if job.upstream_id is None:
            await self._fail(job, "the submission did not complete")
            return
        if served is None:
            await self._fail(job, "the deployment that accepted the job is no longer served")
            return
        entry, dep, key = served
        adapter = cast(VideoProtocol, dep.adapter)
        creds = dep.creds(key)
        try:
            reply = await svc.upstream.send(
                creds, adapter.poll_request(job.upstream_id, creds), dep.timeouts, method="GET"
            )
        except UpstreamError as exc:  # unreachable, timed out: the next poll may get through
            log.warning("job %s: poll failed (%s): %s", job.id, exc.failure.value, exc.message)
            await self._later(job, job.state)
            return
        if reply.status >= 400:
            err = adapter.classify_error(reply.status, reply.headers, reply.body)
            if reply.status == 404 or err.failure is FailureClass.CALLER:
                await self._fail(job, f"the provider no longer knows the job: {err.message}")
            else:
                await self._later(job, job.state)
            return
        try:
            status = adapter.parse_poll(reply.body)
        except UpstreamError:
            await self._later(job, job.state)
            return
        if status.phase == "failed":
            await self._fail(job, f"failed upstream: {status.error or 'no reason given'}")
        elif status.phase == "succeeded":
            await self._finish(job, entry.price, dep, key, status)
        else:
            await self._later(job, RUNNING if status.phase == "running" else QUEUED)

    async def _finish(
        self, job: Job, price: Price, dep: Deployment, key: str | None, status: VideoStatus
    ) -> None:
        svc = self.svc
        jobs = Jobs(svc.store)
        asked = float(job.request.get("seconds") or 0)
        seconds = min(status.seconds, asked) if status.seconds and asked else asked
        variant = str(job.request.get("size") or job.request.get("resolution") or "")
        units = units_of(variant, seconds)
        usage = Usage(0, 0, units=units)
        cost = cost_of(price, usage)
        assert status.video is not None
        await jobs.renew(job.id, OWNER, int(svc.config.video.lease_seconds * 1000))
        media = svc.media
        if media is None:
            await self._later(job, RUNNING)
            return
        try:
            video = await self._copy(job, dep, key, status.video, "video/mp4")
            cover = None
            if status.cover is not None:
                with contextlib.suppress(UpstreamError):
                    cover = await self._copy(job, dep, key, status.cover, "image/jpeg")
        except UpstreamError as exc:
            log.warning("job %s: the video could not be fetched yet: %s", job.id, exc.message)
            await self._later(job, RUNNING)
            return
        except MediaTooLarge:
            await self._fail(job, "the finished video is larger than media.max_bytes")
            return
        result = {
            "video": video.as_dict(),
            "cover": cover.as_dict() if cover is not None else None,
            "seconds": seconds,
            "cost": cost,
        }
        if await jobs.finish_job(job.id, Settlement.of(cost, usage), result):
            log.info("job %s: %s -> succeeded, %s s, cost %d", job.id, job.state, seconds, cost)
            record_end(self.svc, job, cost, units, dep.name, 200)
        else:  # another poller ended it first: its copies are the job's
            await media.store.delete(video.id)
            if cover is not None:
                await media.store.delete(cover.id)

    async def _copy(
        self, job: Job, dep: Deployment, key: str | None, asset: Asset, fallback: str
    ) -> MediaItem:
        """Stream one upstream file into the media store, chunk by chunk."""
        svc = self.svc
        assert svc.media is not None
        adapter = cast(VideoProtocol, dep.adapter)
        creds, path = download(asset, dep.creds(key), adapter.auth_headers(dep.creds(key)))
        opened = await svc.upstream.stream(
            creds, UpstreamRequest(path, dict(creds.headers), b""), dep.timeouts, method="GET"
        )
        if isinstance(opened, Reply):
            raise adapter.classify_error(opened.status, opened.headers, opened.body)
        stream = opened
        if stream.status >= 400:
            stream.close()
            raise UpstreamError(
                FailureClass.TRANSIENT, f"HTTP {stream.status}", status=stream.status
            )
        ctype = stream.headers.get("content-type", "").split(";")[0].strip() or fallback

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream.chunks():
                    yield chunk
            finally:
                stream.close()

        keep = svc.config.video.retention_seconds
        return await svc.media.save(chunks(), ctype, job.account_id, retention_seconds=keep)


def record_end(
    svc: Services,
    job: Job,
    cost: int,
    units: tuple[tuple[str, int], ...],
    dep: str | None,
    status: int,
) -> None:
    """A job's end as a usage-log row keyed by the job id (its submit has a row of its own)."""
    trace = Trace("video", request_id=job.id)
    trace.key_id, trace.account_id, trace.model = job.key_id, job.account_id, job.model
    trace.deployment, trace.cost, trace.units = dep, cost, units
    trace.at_ms = now_ms()
    trace.status = status
    trace.latency_ms = max(0, now_ms() - job.created_at)
    svc.usage.record(trace)
    if cost:
        svc.metrics.charged(job.model, cost)
