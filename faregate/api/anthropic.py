"""The Anthropic-native client protocol: routes, request translation and reply rendering."""

from __future__ import annotations

from faregate.http.router import Router
from faregate.pipeline.services import Services


def mount(router: Router, svc: Services) -> None:
    """Register the Anthropic-native routes."""
