"""Helpers of the console's browser tests: act as a visitor would (sign up, sign in, become
an operator) and wait for the usage log."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from harness import Gateway
from playwright.sync_api import Page

T = TypeVar("T")
PASSWORD = "correct horse battery"
SIGNUP_CREDITS = 5_000_000
PAINTER = "console-painter"  # an image model, served through the playground's chat call
PAINTER_PRICE = 40_000
CONSOLE = f"""
[console]
signup = "open"
signup_credits = {SIGNUP_CREDITS}

[models."{PAINTER}"]
kind = "images"
provider = "sim"
upstream = "dall-e-3"
price = {{ image = {PAINTER_PRICE} }}
"""


def chromium_path() -> str:
    """Debian's Chromium (`.ci/run` installs it), or FAREGATE_TEST_CHROMIUM."""
    path = os.environ.get("FAREGATE_TEST_CHROMIUM") or shutil.which("chromium") or ""
    if not path or not Path(path).exists():
        pytest.fail("Chromium is not installed: `apt-get install -y chromium` (see .ci/run)")
    return path


def email() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


def sign_up(page: Page, address: str | None = None, name: str = "Test Client") -> str:
    """Sign up through the form; returns the email. Ends on the dashboard."""
    address = address or email()
    page.goto("/console/signup")
    page.locator("#name").fill(name)
    page.locator("#email").fill(address)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password2").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url("**/console")
    return address


def sign_in(page: Page, address: str, password: str = PASSWORD) -> None:
    page.goto("/console/signin")
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def cli(gw: Gateway, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "faregate.cli", *args, "--config", str(gw.config_path)],
        env=gw.env,
        cwd=gw.config_path.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def make_operator(gw: Gateway, page: Page) -> str:
    """A new operator through the CLI, whose password is set from the printed reset link."""
    address = f"op-{secrets.token_hex(4)}@example.com"
    made = cli(gw, "console", "operator", address)
    page.goto(made["reset_path"])
    page.locator("#password").fill(PASSWORD)
    page.locator("#password2").fill(PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    page.wait_for_url("**/console/admin/accounts")
    return address


def eventually(check: Callable[[], T | None], what: str, attempts: int = 100) -> T:
    """Poll `check` until it returns something (the usage log is written in batches)."""
    for _ in range(attempts):
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never saw {what}")


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def http_sign_up(
    new: Callable[..., httpx.Client], name: str = "HTTP Client"
) -> tuple[httpx.Client, str]:
    """A signed-in HTTP client (no browser) of a new account: (client, its CSRF token)."""
    client = new()
    page = client.get("/console/signup")
    token = form_token(page.text)
    reply = client.post(
        "/console/signup",
        data={
            "csrf": token,
            "name": name,
            "email": email(),
            "password": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert reply.status_code == 303, reply.text
    return client, form_token(client.get("/console/keys").text)


def http_operator(new: Callable[..., httpx.Client], gw: Gateway) -> tuple[httpx.Client, str]:
    """A signed-in operator over HTTP (made by the CLI, password set through the reset
    link): (client, its CSRF token)."""
    made = cli(gw, "console", "operator", f"op-{secrets.token_hex(4)}@example.com")
    client = new()
    csrf = form_token(client.get("/console/reset").text)
    reply = client.post(
        "/console/reset",
        data={
            "csrf": csrf,
            "token": made["reset_path"].rsplit("#", 1)[1],
            "password": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert reply.status_code == 303, reply.text
    return client, form_token(client.get("/console/admin/accounts").text)
