"""Console fixtures: a gateway with open sign-up and Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from console_ui import CONSOLE, chromium_path
from harness import Gateway, Sim, start_gateway, stop
from playwright.sync_api import Browser, Page, sync_playwright


@pytest.fixture(scope="session")
def console_gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose console lets anyone sign up; X-Forwarded-For from loopback counts,
    so tests can sign in from addresses of their own."""
    gw = start_gateway(
        sim.url,
        tmp_path_factory.mktemp("console"),
        trusted_proxies=["127.0.0.1/32"],
        sections=CONSOLE,
    )
    yield gw
    stop(gw.proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, console_gw: Gateway) -> Iterator[Page]:
    context = browser.new_context(base_url=console_gw.url)
    context.set_default_timeout(15_000)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield p
    context.close()
    assert not errors, errors  # no script error, nothing the CSP refused


@pytest.fixture
def http(console_gw: Gateway) -> Iterator[Callable[..., httpx.Client]]:
    """HTTP clients of the console gateway, closed after the test."""
    made: list[httpx.Client] = []

    def new(**kw: object) -> httpx.Client:
        client = httpx.Client(base_url=console_gw.url, timeout=10, **kw)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield new
    for client in made:
        client.close()
