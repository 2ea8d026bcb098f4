"""Admission: the key may use the model, and the account can cover the worst case."""

from __future__ import annotations

from faregate.billing import spend
from faregate.billing.charge import Charge
from faregate.billing.types import KeyRecord
from faregate.errors import InsufficientBalance, PermissionDenied
from faregate.pipeline.services import Services
from faregate.trace import current as current_trace


def check_model_allowed(key: KeyRecord, model: str) -> None:
    if key.allowed_models is not None and model not in key.allowed_models:
        raise PermissionDenied(
            f"This API key may not use the model '{model}'.",
            code="model_not_allowed",
            param="model",
        )


async def take_hold(
    svc: Services, key: KeyRecord, model: str, amount: int, request_id: str
) -> Charge:
    """The hold of `amount` on the key's account, or 402 when the balance cannot cover it.
    The request's usage row names the model asked for from here on (a refusal's included);
    the attempts replace it with the model that served."""
    trace = current_trace.get()
    if trace is not None:
        trace.model = model
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
