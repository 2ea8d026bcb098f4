"""The response header that says a client's output cap was above the model's and was clamped."""

from __future__ import annotations

from faregate.pipeline.services import Services
from faregate.providers.base import ChatCall

CLAMPED_HEADER = "x-faregate-max-tokens-clamped"


def clamp_headers(svc: Services, call: ChatCall, model: str) -> dict[str, str]:
    """`x-faregate-max-tokens-clamped: ASKED->CAP` when the client asked for more output than
    `model` (the model that served) may produce; the upstream was asked for CAP, and the hold
    covered CAP, never ASKED."""
    entry = svc.catalog.models.get(model)
    asked = call.max_output
    if entry is None or asked is None or asked <= entry.max_output_tokens:
        return {}
    return {CLAMPED_HEADER: f"{asked}->{entry.max_output_tokens}"}
