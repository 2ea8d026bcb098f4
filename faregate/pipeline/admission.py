"""Admission: the key may use the model, and the account can cover the worst case."""

from __future__ import annotations

from faregate import tokens
from faregate.billing import spend
from faregate.billing.charge import Charge
from faregate.billing.pricing import worst_case
from faregate.billing.types import KeyRecord
from faregate.errors import BadRequest, InsufficientBalance, PermissionDenied
from faregate.pipeline import guard
from faregate.pipeline.services import Services
from faregate.providers.base import ChatCall
from faregate.routing.catalog import ModelEntry


def check_model_allowed(key: KeyRecord, model: str) -> None:
    if key.allowed_models is not None and model not in key.allowed_models:
        raise PermissionDenied(
            f"This API key may not use the model '{model}'.",
            code="model_not_allowed",
            param="model",
        )


def hold_amount(chain: list[ModelEntry], call: ChatCall) -> int:
    """The worst case over every model that may serve (the model and its fallbacks): a
    byte-bounded prompt and every output token allowed, per choice."""
    body = call.body
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 1 else 1
    prompt = tokens.prompt_upper_bound(body.get("messages") or [], body.get("tools"))
    worst = 0
    for entry in chain:
        max_out = min(call.max_output or entry.max_output_tokens, entry.max_output_tokens)
        worst = max(worst, worst_case(entry.price, prompt, max_out * choices))
    return worst


async def take_hold(
    svc: Services, key: KeyRecord, model: str, amount: int, request_id: str
) -> Charge:
    """The hold of `amount` on the key's account, or 402 when the balance cannot cover it."""
    ticket = await svc.store.hold(
        account_id=key.account_id,
        key_id=key.id,
        amount=amount,
        model=model,
        request_id=request_id,
        ttl_ms=svc.config.billing.hold_ttl_seconds * 1000,
        spend=spend.windows(key),
        overlap=True,  # the upstream call may start while the hold commits (Charge.confirm)
    )
    if ticket is None:
        raise InsufficientBalance(
            "Insufficient balance: this request may cost up to "
            f"{amount} micro-credits. Top up the account or lower max_tokens.",
        )
    return Charge(svc.store, ticket)


async def admit(svc: Services, key: KeyRecord, call: ChatCall) -> tuple[ModelEntry, Charge]:
    """Resolve the model, check the key may use it, and take the hold (402 if it can't)."""
    entry = svc.catalog.get(call.model)
    check_model_allowed(key, call.model)
    if call.max_output is not None and call.max_output > entry.max_output_tokens:
        raise BadRequest(
            f"max_tokens is {call.max_output}, but '{call.model}' produces at most "
            f"{entry.max_output_tokens} tokens.",
            code="max_tokens_too_large",
            param="max_tokens",
        )
    await guard.screen(svc, key, call)  # before the hold: a refusal costs nothing
    amount = hold_amount(svc.catalog.chain(entry), call)
    charge = await take_hold(svc, key, call.model, amount, call.request_id)
    return entry, charge
