"""The console in Chromium: sign up, a key, an SDK call seen in usage and the chart, a code
redeemed, the playground streaming, "Try it out" in the API reference, and an operator's
grant and price change seen by the client. Money is checked to the micro-credit."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
import openai
from console_ui import PAINTER, SIGNUP_CREDITS, eventually, make_operator, sign_up
from harness import PRICES, Gateway
from playwright.sync_api import Browser, Page, Route, expect

from faregate.billing.pricing import to_usd

MODEL = "sim-small"


def usd(amount: int) -> str:
    return "$" + to_usd(amount, 1_000_000)


def create_key(page: Page, name: str) -> str:
    page.goto("/console/keys")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#secret-value")
    expect(secret).to_be_visible()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    return secret.input_value()


def test_signup_key_sdk_call_usage_chart_and_redeem(page: Page, console_gw: Gateway) -> None:
    sign_up(page)
    expect(page.locator("#balance")).to_have_text(usd(SIGNUP_CREDITS))
    key = create_key(page, "sdk")
    assert key.startswith("fg-")
    expect(page.locator("#keys")).to_contain_text("sdk")

    client = openai.OpenAI(base_url=f"{console_gw.url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello console"}], max_tokens=20
    )
    reply = raw.parse()
    cost = int(raw.headers["x-faregate-cost"])
    assert reply.usage is not None
    assert cost > 0
    assert (reply.usage.model_extra or {})["cost_micro_credits"] == cost

    def usage_row() -> Any:
        page.goto("/console/usage")
        rows = page.locator("#usage tbody tr", has_text=MODEL)
        return rows if rows.count() == 1 else None

    row = eventually(usage_row, "the request in the usage table")
    expect(row.locator("td[data-cost]")).to_have_attribute("data-cost", str(cost))
    expect(row).to_contain_text(str(reply.usage.prompt_tokens))

    page.goto("/console")
    expect(page.locator("#spend-today")).to_have_text(usd(cost))
    expect(page.locator("#per-model tbody tr", has_text=MODEL)).to_contain_text(usd(cost))
    bars = page.locator('svg[data-chart="spend"] rect')
    expect(bars).to_have_count(30)
    expect(bars.last).to_have_attribute("data-value", str(cost))
    expect(page.locator('svg[data-chart="requests"] rect').last).to_have_attribute(
        "data-value", "1"
    )
    expect(page.locator("#balance")).to_have_text(usd(SIGNUP_CREDITS - cost))

    with page.expect_download() as download:
        page.goto("/console/usage")
        page.get_by_role("link", name="Export CSV").click()
    text = Path(download.value.path()).read_text()
    lines = text.strip().splitlines()
    assert lines[0].startswith("at,request_id,key_id,model")
    assert len(lines) == 2 and f",{cost}," in lines[1]

    code = console_gw.admin("POST", "/codes", json={"amount": 2_500_000})["code"]
    page.goto("/console/topup")
    page.get_by_label("Redemption code").fill(code)
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_role("status")).to_contain_text(f"{usd(2_500_000)} added")
    expect(page.locator("#balance")).to_have_text(usd(SIGNUP_CREDITS - cost + 2_500_000))
    expect(page.locator("#ledger")).to_contain_text("redemption code")
    page.get_by_label("Redemption code").fill(code)
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_role("alert")).to_contain_text("used up")
    expect(page.locator("#balance")).to_have_text(usd(SIGNUP_CREDITS - cost + 2_500_000))


def test_playground_streams_with_a_session_key(page: Page, console_gw: Gateway) -> None:
    sign_up(page)
    page.goto("/console/playground")
    assert "fg-" not in page.content()  # no key in the page

    def slow_stream(route: Route) -> None:  # the simulator spaces the chunks out
        body = json.loads(route.request.post_data or "{}")
        body["user"] = "sim:chunk_delay_ms=40"
        route.continue_(post_data=json.dumps(body))

    page.route("**/v1/chat/completions", slow_stream)
    page.evaluate(
        """() => {
        window.seen = [];
        new MutationObserver(() => {
          const t = document.querySelector('#pg-transcript li.assistant .text');
          if (t) window.seen.push(t.textContent);
        }).observe(document.getElementById('pg-transcript'),
                   {subtree: true, childList: true, characterData: true});
      }"""
    )
    page.get_by_label("Model", exact=True).select_option(MODEL)
    page.get_by_label("System prompt").fill("Be brief.")
    page.get_by_label("Temperature").fill("0.5")
    page.get_by_label("Max tokens").fill("40")
    page.get_by_label("Message", exact=True).fill("Tell me a story")
    page.get_by_role("button", name="Send").click()
    answer = page.locator("#pg-transcript li.assistant")
    expect(answer.locator(".cost")).to_contain_text("Cost $", timeout=20_000)
    seen = [s for s in page.evaluate("window.seen") if s]
    final = answer.locator(".text").inner_text()
    assert final and len(set(seen)) >= 3, seen  # the text grew chunk by chunk
    assert all(final.startswith(s) for s in seen)
    cost_text = answer.locator(".cost").inner_text()
    cost = round(float(re.search(r"\$([0-9.]+)", cost_text).group(1)) * 1_000_000)

    def charged() -> Any:
        page.goto("/console/usage")
        row = page.locator("#usage tbody tr", has_text=MODEL)
        return row if row.count() == 1 else None

    row = eventually(charged, "the playground's request in usage")
    expect(row.locator("td[data-cost]")).to_have_attribute("data-cost", str(cost))
    page.goto("/console/keys")
    expect(page.locator("#keys")).to_contain_text("Playground (console session)")


def test_reference_try_it_out_on_models(page: Page, console_gw: Gateway) -> None:
    sign_up(page)
    key = create_key(page, "reference")
    page.goto("/console/reference")
    expect(page.locator("#s-curl")).to_contain_text(f"{console_gw.url}/v1/chat/completions")
    expect(page.locator("#s-curl")).to_contain_text('"model": "embed-sim"')
    expect(page.locator("#s-curl")).to_contain_text(f"{console_gw.url}/v1/messages")
    page.get_by_role("tab", name="Python").click()
    expect(page.locator("#s-python")).to_contain_text(f'base_url="{console_gw.url}/v1"')
    page.get_by_role("tab", name="Node").click()
    expect(page.locator("#s-node")).to_contain_text(f'baseURL: "{console_gw.url}/v1"')
    expect(page.locator("#s-python")).to_be_hidden()
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".auth-container input").first.fill(key)
    page.locator(".auth-btn-wrapper .authorize").click()
    page.locator(".btn-done").click()
    block = page.locator("#operations-OpenAI-compatible-get_v1_models")
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    body = block.locator(".live-responses-table tbody .response-col_status")
    expect(body.first).to_have_text("200")
    expect(block.locator(".live-responses-table")).to_contain_text(MODEL)


def test_operator_grant_and_price_change_seen_by_client(
    browser: Browser, page: Page, console_gw: Gateway
) -> None:
    address = sign_up(page, name="Priced Client")
    expect(page.locator("#prices tr[data-model='sim-large']")).to_contain_text(usd(PRICES["input"]))
    operator = browser.new_context(base_url=console_gw.url)
    op = operator.new_page()
    try:
        make_operator(console_gw, op)
        op.get_by_role("link", name="Priced Client").first.click()
        expect(op.locator("h1")).to_have_text("Priced Client")
        op.get_by_label("Amount in $").fill("1.25")
        op.get_by_label("Note").fill("goodwill")
        op.get_by_role("button", name="Apply").click()
        expect(op.get_by_role("status")).to_contain_text(usd(SIGNUP_CREDITS + 1_250_000))

        op.goto("/console/admin/prices")
        row = op.locator("#prices tr[data-model='sim-large']")
        row.get_by_label("Input price of sim-large", exact=True).fill("3000000")
        row.get_by_label("Output price of sim-large", exact=True).fill("7000000")
        row.get_by_role("button", name="Save").click()
        expect(op.get_by_role("status")).to_contain_text("sim-large was changed")
        expect(op.locator("#prices tr[data-model='sim-large']")).to_contain_text("admin")
        page.goto("/console")
        client_row = page.locator("#prices tr[data-model='sim-large']")
        expect(client_row).to_contain_text(usd(3_000_000))
        expect(client_row).to_contain_text(usd(7_000_000))

        op.goto("/console/admin/audit")
        expect(op.locator("#audit")).to_contain_text("price.set")
        expect(op.locator("#audit")).to_contain_text("credits.grant")
        actors = op.locator("#audit tbody tr", has_text="price.set").first.inner_text()
        assert "console:user_" in actors
    finally:
        prices = console_gw.admin("GET", "/prices")["data"]
        if any(p["model"] == "sim-large" and p["source"] == "admin" for p in prices):
            console_gw.admin("DELETE", "/prices/sim-large")
        operator.close()

    page.goto("/console")
    expect(page.locator("#balance")).to_have_text(usd(SIGNUP_CREDITS + 1_250_000))
    page.goto("/console/topup")
    expect(page.locator("#ledger")).to_contain_text("goodwill")
    assert address


def test_public_document_served(console_gw: Gateway) -> None:
    reply = httpx.get(
        f"{console_gw.url}/openapi.json", headers={"origin": "https://docs.example"}, timeout=10
    )
    assert reply.headers.get_list("access-control-allow-origin") == ["https://docs.example"]
    doc = reply.json()
    assert doc["servers"] == [{"url": console_gw.url}]
    assert "/v1/chat/completions" in doc["paths"]
    assert not [p for p in doc["paths"] if p.startswith(("/admin", "/console"))]


PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_playground_paints_with_a_real_image_model(page: Page, console_gw: Gateway) -> None:
    """An image model of the catalog, through the playground's chat call: the simulator's
    PNG is shown from its data URL, with what it cost."""
    sign_up(page)
    page.goto("/console/playground")
    page.get_by_label("Model", exact=True).select_option(PAINTER)
    page.get_by_label("Message", exact=True).fill("Paint a red dot")
    page.get_by_role("button", name="Send").click()
    answer = page.locator("#pg-transcript li.assistant")
    expect(answer.locator(".cost")).to_contain_text("Cost $0.04 ", timeout=20_000)
    expect(answer.locator("img")).to_have_count(1)
    src = answer.locator("img").get_attribute("src") or ""
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")


def test_playground_shows_the_images_of_an_image_model(page: Page, console_gw: Gateway) -> None:
    """An image model's chat reply (whole, its images as data URLs in `message.images`) is
    shown as images with its cost; the reply here stands in for an image model's."""
    sign_up(page)
    page.goto("/console/playground")
    page.evaluate(
        """() => {
        const o = document.createElement('option');
        o.value = 'painter'; o.dataset.kind = 'images'; o.textContent = 'painter';
        document.getElementById('pg-model').appendChild(o);
      }"""
    )
    sent: list[dict[str, Any]] = []

    def image_reply(route: Route) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        message = {
            "role": "assistant",
            "content": "A red dot.",
            "images": [
                {"type": "image_url", "image_url": {"url": PIXEL}},
                {"type": "image_url", "image_url": {"url": "javascript:alert(1)"}},
            ],
        }
        usage = {
            "prompt_tokens": 4,
            "completion_tokens": 0,
            "cost": 0.04,
            "cost_micro_credits": 40_000,
        }
        route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"choices": [{"index": 0, "message": message}], "usage": usage}),
        )

    page.route("**/v1/chat/completions", image_reply)
    page.get_by_label("Model", exact=True).select_option("painter")
    page.get_by_label("Message", exact=True).fill("Paint a red dot")
    page.get_by_role("button", name="Send").click()
    answer = page.locator("#pg-transcript li.assistant")
    expect(answer.locator(".cost")).to_contain_text("Cost $0.04 ")
    expect(answer.locator("img")).to_have_count(1)  # only data:image/ URLs are shown
    expect(answer.locator("img")).to_have_attribute("src", PIXEL)
    expect(answer.locator(".text")).to_have_text("A red dot.")
    assert sent == [
        {"model": "painter", "messages": [{"role": "user", "content": "Paint a red dot"}]}
    ]
