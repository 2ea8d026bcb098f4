"""Screenshots of every console page, client and operator, into docs/console/*.png.

Run from the repository root: `python tests/console/screenshots.py` (Chromium from Debian's
package, as the browser tests use). It starts the simulator and a gateway of its own, signs
up a client who calls the API, redeems a code and uses the playground, then visits each
operator page."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import openai  # noqa: E402
from console_ui import CONSOLE, PASSWORD, chromium_path, cli, sign_up  # noqa: E402
from harness import start_gateway, start_sim, stop  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

OUT = ROOT / "docs" / "console"


def shot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"docs/console/{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="console-shots-"))
    sim = start_sim(tmp / "sim.log")
    gw = start_gateway(sim.url, tmp, sections=CONSOLE)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True)
            client = browser.new_context(base_url=gw.url, viewport={"width": 1280, "height": 860})
            page = client.new_page()
            page.goto("/console/signin")
            shot(page, "signin")
            page.goto("/console/signup")
            shot(page, "signup")
            sign_up(page, "ada@example.com", "Ada's Lab")
            page.goto("/console/keys")
            page.get_by_label("Name").fill("production")
            page.get_by_label("Allowed models", exact=False).fill("sim-small, sim-large")
            page.get_by_label("Spend limit in $", exact=False).fill("20")
            page.get_by_role("button", name="Create key").click()
            key = page.locator("#secret-value").input_value()
            shot(page, "keys")
            sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
            for i, model in enumerate(["sim-small", "sim-large", "sim-small"]):
                sdk.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": f"Write a haiku number {i}"}],
                    max_tokens=60,
                )
            sdk.close()
            code = gw.admin("POST", "/codes", json={"amount": 10_000_000, "max_uses": 5})["code"]
            page.goto("/console/topup")
            page.get_by_label("Redemption code").fill(code)
            page.get_by_role("button", name="Redeem").click()
            shot(page, "topup")
            page.wait_for_timeout(1200)  # the usage log is written every half second
            page.goto("/console")
            shot(page, "dashboard")
            page.goto("/console/usage")
            shot(page, "usage")
            page.goto("/console/playground")
            page.get_by_label("System prompt").fill("Answer in one short paragraph.")
            page.get_by_label("Message", exact=True).fill("What is a gateway?")
            page.get_by_role("button", name="Send").click()
            page.locator("#pg-transcript .cost").wait_for()
            shot(page, "playground")
            page.goto("/console/reference")
            page.locator(".opblock").first.wait_for()
            shot(page, "reference")
            page.goto("/console/password")
            shot(page, "password")
            phone = browser.new_context(
                base_url=gw.url, viewport={"width": 390, "height": 844}, is_mobile=True
            )
            phone.add_cookies(client.cookies())
            mobile = phone.new_page()
            mobile.goto("/console")
            shot(mobile, "dashboard-phone")
            page.goto("/console/admin/accounts")
            shot(page, "forbidden")

            operator = browser.new_context(base_url=gw.url, viewport={"width": 1280, "height": 860})
            op = operator.new_page()
            made = cli(gw, "console", "operator", "grace@example.com", "--name", "Grace")
            op.goto(made["reset_path"])
            shot(op, "reset")
            op.locator("#password").fill(PASSWORD)
            op.locator("#password2").fill(PASSWORD)
            op.get_by_role("button", name="Set password and sign in").click()
            op.wait_for_url("**/console/admin/accounts")
            shot(op, "admin-accounts")
            op.get_by_role("link", name="Ada's Lab").click()
            shot(op, "admin-account")
            op.goto("/console/admin/users")
            op.locator("tr", has_text="ada@example.com").get_by_role(
                "button", name="Reset link"
            ).click()
            shot(op, "admin-users")
            op.goto("/console/admin/codes")
            shot(op, "admin-codes")
            op.locator("#codes a").first.click()
            shot(op, "admin-code")
            op.goto("/console/admin/prices")
            shot(op, "admin-prices")
            op.goto("/console/admin/routing")
            shot(op, "admin-routing")
            op.goto("/console/admin/usage?group_by=model")
            shot(op, "admin-usage")
            op.goto("/console/admin/audit")
            shot(op, "admin-audit")
            browser.close()
    finally:
        stop(gw.proc)
        stop(sim.proc)


if __name__ == "__main__":
    main()
