"""`/admin/v1/jobs`: every account's asynchronous jobs, their state, upstream and money."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faregate.api.admin import AdminAPI, admin_route
from faregate.api.usage import limit_of
from faregate.billing.jobs import Job, Jobs
from faregate.errors import NotFound
from faregate.http.request import Request
from faregate.http.router import Route


def job_row(job: Job) -> dict[str, Any]:
    """A job as the operator sees it (upstream id and deployment included)."""
    return {
        "id": job.id,
        "account_id": job.account_id,
        "key_id": job.key_id,
        "model": job.model,
        "kind": job.kind,
        "surface": job.surface,
        "state": job.state,
        "upstream_id": job.upstream_id,
        "deployment": job.deployment,
        "request": job.request,
        "hold_id": job.hold_id,
        "held": job.amount,
        "polls": job.polls,
        "next_poll_at": job.next_poll_at,
        "lease_owner": job.lease_owner,
        "result": job.result,
        "error": job.error,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
    }


def routes(admin: AdminAPI, prefix: str = "/admin/v1") -> list[Route]:
    """Its routes, for the route table (`faregate.api.routes`)."""
    svc = admin.svc

    async def list_jobs(req: Request) -> dict[str, Any]:
        q = req.query
        limit = limit_of(q)
        jobs = await Jobs(svc.store).list_jobs(
            account_id=q.get("account_id") or None,
            limit=limit + 1,
            after=q.get("after") or None,
            state=q.get("state") or None,
        )
        data = [job_row(j) for j in jobs[:limit]]
        return {"object": "list", "data": data, "has_more": len(jobs) > limit}

    async def get_job(req: Request) -> dict[str, Any]:
        job = await Jobs(svc.store).find_job(req.params["job_id"])
        if job is None:
            raise NotFound(f"No job {req.params['job_id']!r}.", code="job_not_found")
        return job_row(job)

    def add(path: str, method: str, fn: Callable[[Request], Awaitable[Any]]) -> Route:
        return admin_route(f"{prefix}{path}", method, admin._route(fn))

    return [add("/jobs", "GET", list_jobs), add("/jobs/{job_id}", "GET", get_job)]
