"""What a client sees of its jobs: its own only (anyone else's id is 404), read from the
database (a client's poll never reaches an upstream), with signed media URLs."""

from __future__ import annotations

from typing import Any

from faregate.billing.jobs import DELETED, Job, Jobs
from faregate.billing.types import KeyRecord
from faregate.errors import NotFound
from faregate.http.request import Request
from faregate.jobs.poller import record_end
from faregate.media.types import MediaItem
from faregate.pipeline.services import Services


async def own_job(svc: Services, key: KeyRecord, job_id: str, param: str = "id") -> Job:
    """The caller's account's job `job_id`, else 404."""
    job = await Jobs(svc.store).get_job(job_id, key.account_id) if job_id else None
    if job is None or job.state == DELETED:
        raise NotFound(f"No job found with id '{job_id}'.", code="job_not_found", param=param)
    return job


def media_item(job: Job, which: str) -> MediaItem | None:
    """The job's finished `video` or `cover` in the media store, if it has one."""
    if not isinstance(job.result, dict):
        return None
    found = job.result.get(which)
    return MediaItem(**found) if isinstance(found, dict) else None


def media_url(svc: Services, req: Request, job: Job, which: str) -> str | None:
    """A signed, expiring gateway URL of the job's `video` or `cover`."""
    item = media_item(job, which)
    if item is None or svc.media is None:
        return None
    return svc.media.url(item, req)


def seconds_of(job: Job) -> float:
    """The seconds billed (once finished) or asked for."""
    if isinstance(job.result, dict) and job.result.get("seconds") is not None:
        return float(job.result["seconds"])
    return float(job.request.get("seconds") or 0)


def cost_of(job: Job) -> int:
    return int(job.result.get("cost", 0)) if isinstance(job.result, dict) else 0


def stored(job: Job, name: str) -> Any:
    return job.request.get(name) if isinstance(job.request, dict) else None


async def delete(svc: Services, key: KeyRecord, job: Job) -> None:
    """Cancel the job if it is in flight (its hold released), then delete it and its files."""
    jobs = Jobs(svc.store)
    if not job.finished and await jobs.fail_job(job.id, "canceled by the client"):
        record_end(svc, job, 0, (), None, 499)
    job = await jobs.get_job(job.id, key.account_id) or job  # as it ended
    await jobs.delete_job(job.id, key.account_id)
    for which in ("video", "cover"):
        item = media_item(job, which)
        if item is not None and svc.media is not None:
            await svc.media.store.delete(item.id)
