"""Video jobs submitted: admitted like any request, a job-owned hold of the worst case taken
with the job row, then the upstream submit (with fallback); a submit that fails releases the
hold at once. The poller (`jobs/poller.py`) takes it from there."""

from __future__ import annotations

import os
import secrets
from typing import Any, cast

import orjson

from faregate.billing import spend
from faregate.billing.jobs import QUEUED, Job, Jobs, TooManyJobs
from faregate.billing.pricing import UnpricedUnit, worst_case
from faregate.billing.store import now_ms
from faregate.billing.types import KeyRecord, Units
from faregate.errors import (
    BadRequest,
    FailureClass,
    FaregateError,
    InsufficientBalance,
    RateLimited,
    UpstreamError,
)
from faregate.kinds import Kind
from faregate.limits.config import effective
from faregate.pipeline import guard
from faregate.pipeline.admission import check_model_allowed
from faregate.pipeline.attempts import run_attempts
from faregate.pipeline.services import Services
from faregate.providers.video import VideoCall, VideoProtocol
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import Deployment, ModelEntry
from faregate.trace import current as current_trace

OWNER = f"p{os.getpid()}-{secrets.token_hex(8)}"
"""This process, as a job lease's owner."""


def units_of(call_variant: str, seconds: float) -> Units:
    """The meter of `seconds` of video at a price variant (milliseconds, so counts are whole)."""
    meter = f"video_ms:{call_variant}" if call_variant else "video_ms"
    return ((meter, round(seconds * 1000)),)


def check_seconds(svc: Services, model: str, seconds: int, param: str) -> None:
    """400 naming `param` when the duration is outside the model's range."""
    spec = svc.config.video.model(model)
    if not spec.min_seconds <= seconds <= spec.max_seconds:
        raise BadRequest(
            f"'{param}' must be between {spec.min_seconds} and {spec.max_seconds} seconds"
            f" for the model '{model}' (got {seconds}).",
            code="invalid_duration",
            param=param,
        )


def hold_of(chain: list[ModelEntry], call: VideoCall) -> int:
    """Every second asked for at the dearest model of the chain (400 when a model has no
    price for the asked resolution)."""
    units = units_of(call.variant, call.seconds)
    try:
        return max(worst_case(m.price, units=units) for m in chain)
    except UnpricedUnit:
        raise BadRequest(
            f"The model '{call.model}' has no price for video at '{call.variant or 'default'}'.",
            code="unsupported_resolution",
            param="resolution",
        ) from None


def _max_active(svc: Services, key: KeyRecord) -> int | None:
    cfg = svc.config
    eff = effective(cfg.limits, cfg.plans, key.plan, key.account_limits, key.key_limits, "video")
    return eff.limits.concurrency


def encode_deployment(attempt: Attempt) -> str:
    """Who accepted the job: the model that served, its deployment and upstream key, so that
    every poll goes to the same upstream account."""
    dep = attempt.deployment
    index = dep.keys.index(attempt.key) if attempt.key in dep.keys else -1
    return orjson.dumps(
        {"model": attempt.model.name, "deployment": dep.name, "key": index}
    ).decode()


def decode_deployment(
    svc: Services, value: str | None
) -> tuple[ModelEntry, Deployment, str | None] | None:
    """The model, deployment and upstream key a job was submitted to, if still served."""
    if not value:
        return None
    try:
        data: dict[str, Any] = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    entry = svc.catalog.models.get(str(data.get("model")))
    if entry is None:
        return None
    for dep in entry.deployments:
        if dep.name == data.get("deployment"):
            index = int(data.get("key", -1))
            key = dep.keys[index] if 0 <= index < len(dep.keys) else None
            return entry, dep, key
    return None


def check_inputs(chain: list[ModelEntry], call: VideoCall) -> None:
    """400 `unsupported_feature` when no deployment of the chain can carry the call's input
    files (one that cannot is skipped by the attempts)."""
    reasons = [
        cast(VideoProtocol, dep.adapter).unsupported(call)
        for model in chain
        for dep in model.deployments
    ]
    if reasons and all(reasons):
        raise BadRequest(
            f"The model '{call.model}' cannot take these inputs: {reasons[0]}.",
            code="unsupported_feature",
        )


async def _submit_once(svc: Services, call: VideoCall, attempt: Attempt) -> str:
    dep = attempt.deployment
    adapter = cast(VideoProtocol, dep.adapter)
    reason = adapter.unsupported(call)
    if reason is not None:  # another deployment of the chain can: try it
        raise UpstreamError(FailureClass.REFUSED, reason)
    creds = dep.creds(attempt.key)
    request = adapter.submit_request(call, dep.upstream_model, creds)
    reply = await svc.upstream.send(creds, request, dep.timeouts)
    if reply.status >= 400:
        raise adapter.classify_error(reply.status, reply.headers, reply.body)
    return adapter.parse_submit(reply.body)


async def submit(svc: Services, key: KeyRecord, call: VideoCall, surface: str) -> Job:
    """Admit, hold, submit upstream. The job comes back queued with its upstream id; any
    failure before that ends the job and releases its hold before the error is raised."""
    entry = svc.catalog.get(call.model, Kind.VIDEO)
    check_model_allowed(key, call.model)
    chain = svc.catalog.chain(entry)
    check_inputs(chain, call)
    amount = hold_of(chain, call)
    texts = [t for t in (call.prompt, call.negative_prompt) if t]
    await guard.screen(svc, key, call.model, call.request_id, lambda: texts)  # before the hold
    trace = current_trace.get()
    if trace is not None:
        trace.model = call.model
    jobs = Jobs(svc.store)
    lease_ms = int(
        (svc.config.routing.retry_budget_seconds + svc.config.video.lease_seconds) * 1000
    )
    limit = _max_active(svc, key)
    try:
        job = await jobs.create_job(
            account_id=key.account_id,
            key_id=key.id,
            model=call.model,
            kind=Kind.VIDEO.value,
            surface=surface,
            request=call.stored(),
            amount=amount,
            spend=spend.windows(key),
            lease=(OWNER, lease_ms),
            max_active=limit,
        )
    except TooManyJobs as exc:
        raise RateLimited(
            f"This account already has {exc.limit} video jobs in flight; wait for one to finish.",
            code="concurrency_exceeded",
            retry_after=5,
        ) from None
    if job is None:
        raise InsufficientBalance(
            f"Insufficient balance: this video may cost up to {amount} micro-credits."
        )
    try:
        upstream_id, served, _ = await run_attempts(
            svc, entry, lambda attempt: _submit_once(svc, call, attempt)
        )
    except FaregateError as exc:
        await jobs.fail_job(job.id, f"submit failed: {exc.code}")
        raise
    except BaseException:
        await jobs.fail_job(job.id, "submit failed")
        raise
    if trace is not None:
        trace.deployment = served.deployment.name
    await jobs.update_progress(
        job.id,
        OWNER,
        state=QUEUED,
        next_poll_at=now_ms() + int(svc.config.video.first_poll_seconds * 1000),
        upstream_id=upstream_id,
        deployment=encode_deployment(served),
    )
    found = await jobs.get_job(job.id, key.account_id)
    return found or job
