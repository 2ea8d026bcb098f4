"""The Gemini upstream protocol of the simulator."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register the Gemini routes."""
