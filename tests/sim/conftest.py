"""Fixtures: a simulator on a free port, driven by the openai SDK and aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from faregate.sim.server import start


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    runner, port = await start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(sim_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{sim_url}/v1", api_key="sk-test", max_retries=0, timeout=5.0
    ) as sdk:
        yield sdk


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session
