"""Usage reports through a running gateway (SQLite and PostgreSQL): the admin and client
usage APIs agree with the ledger's settle rows to the token and micro-credit, before and after
the rollup, and a client sees its own key only."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import httpx
from harness import ADMIN_KEY, Gateway

MODEL = "sim-small"


def chat(gw: Gateway, key: str, model: str = MODEL) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={
            "model": model,
            "messages": [{"role": "user", "content": "count my usage"}],
            "max_tokens": 20,
        },
        timeout=20,
    )


def client(gw: Gateway, key: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{gw.url}{path}", headers={"authorization": f"Bearer {key}"}, params=params, timeout=10
    )


def settled_by_key(gw: Gateway, account: str) -> dict[str, dict[str, int]]:
    """Per key: the tokens and cost of the ledger's settle rows."""
    out: dict[str, dict[str, int]] = defaultdict(
        lambda: {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0}
    )
    for row in gw.ledger(account):
        if row["kind"] == "settle":
            t = out[row["key_id"]]
            t["prompt_tokens"] += row["prompt_tokens"]
            t["completion_tokens"] += row["completion_tokens"]
            t["cost"] += row["cost"]
    return dict(out)


def wait_for_rows(gw: Gateway, account: str, requests: int, within: float = 10.0) -> None:
    """The usage writer flushes every 0.5 s: poll the report until every request is in."""
    deadline = time.monotonic() + within
    while True:
        got = gw.admin("GET", f"/usage?group_by=day&account_id={account}")["totals"]["requests"]
        if got == requests:
            return
        assert got < requests and time.monotonic() < deadline, got
        time.sleep(0.1)


def new_key(gw: Gateway, account: str) -> tuple[str, str]:
    made = gw.admin("POST", f"/accounts/{account}/keys", json={"name": "second"})
    return made["id"], made["key"]


def key_id_of(gw: Gateway, account: str, name: str = "k") -> str:
    keys = gw.admin("GET", f"/accounts/{account}/keys")["data"]
    return str(next(k["id"] for k in keys if k["name"] == name))


def test_usage_reports_agree_with_the_ledger(any_gateway: Gateway) -> None:
    gw = any_gateway
    gw.reset_routing()
    account, key1 = gw.account(10_000_000)
    id1 = key_id_of(gw, account)
    id2, key2 = new_key(gw, account)
    other, key3 = gw.account(10_000_000)
    sent: list[str] = []
    for key in (key1, key1, key1, key2, key2):
        r = chat(gw, key)
        assert r.status_code == 200, r.text
        sent.append(r.headers["x-request-id"])
    failed = chat(gw, key1, model="no-such-model")
    assert failed.status_code == 404
    sent.append(failed.headers["x-request-id"])
    assert chat(gw, key3).status_code == 200
    wait_for_rows(gw, account, 6)
    wait_for_rows(gw, other, 1)

    ledger = settled_by_key(gw, account)
    assert set(ledger) == {id1, id2}

    def check_reports() -> None:
        by_key = gw.admin("GET", f"/usage?group_by=key&account_id={account}")
        assert by_key["unit"] == "micro_credits"
        rows = {d["key_id"]: d for d in by_key["data"]}
        assert set(rows) == {id1, id2}
        for key_id, want in ledger.items():
            got = {k: rows[key_id][k] for k in want}
            assert got == want, key_id
        assert (rows[id1]["requests"], rows[id1]["errors"]) == (4, 1)
        assert (rows[id2]["requests"], rows[id2]["errors"]) == (2, 0)
        assert by_key["totals"]["cost"] == sum(t["cost"] for t in ledger.values())

        by_model = gw.admin("GET", f"/usage?group_by=model&account_id={account}")
        models = {d["model"]: (d["requests"], d["errors"]) for d in by_model["data"]}
        assert models == {MODEL: (5, 0), None: (1, 1)}  # refused before a model was chosen
        by_day = gw.admin("GET", f"/usage?group_by=day&key_id={id2}")
        assert len(by_day["data"]) == 1
        assert by_day["totals"]["cost"] == ledger[id2]["cost"]

        for path in ("/api/client/usage", "/v1/client/usage"):
            mine = client(gw, key1, path, group_by="model")
            assert mine.status_code == 200, mine.text
            body = mine.json()
            assert body["key_id"] == id1 and body["account_id"] == account
            assert {k: body["totals"][k] for k in ledger[id1]} == ledger[id1]
            assert body["totals"]["requests"] == 4
        theirs = client(gw, key3, "/api/client/usage").json()
        assert theirs["totals"]["requests"] == 1  # only key3's own request

    check_reports()
    rolled = gw.admin("POST", "/usage/rollup")
    assert rolled["watermark"] > 0
    check_reports()  # the same answers from usage_daily

    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = gw.admin(
            "GET",
            f"/usage/requests?account_id={account}&limit=4"
            + (f"&cursor={cursor}" if cursor else ""),
        )
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(r["request_id"] for r in rows) == sorted(sent)
    assert sum(r["cost"] for r in rows) == sum(t["cost"] for t in ledger.values())
    assert other not in {r["account_id"] for r in rows}


def test_a_client_cannot_read_another_keys_usage(gateway: Gateway) -> None:
    gw = gateway
    account, key1 = gw.account(1_000_000)
    id2, _ = new_key(gw, account)
    for params in ({"key_id": id2}, {"account_id": account}):
        r = client(gw, key1, "/api/client/usage", **params)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "usage_not_allowed"
    assert client(gw, "fg-not-a-key", "/api/client/usage").status_code == 401
    bad = client(gw, key1, "/v1/client/usage", group_by="week")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
    bad = client(gw, key1, "/v1/client/usage", **{"from": "2026-13-01"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_date"
    r = httpx.get(
        f"{gw.url}/admin/v1/usage",
        params={"from": "2020-01-01", "to": "2026-01-01"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "range_too_long"


def test_a_refused_request_records_the_model_asked_for(gateway: Gateway) -> None:
    gw = gateway
    account, key = gw.account(1)  # cannot cover any worst case: 402
    refused = chat(gw, key)
    assert refused.status_code == 402, refused.text
    embedding = httpx.post(
        f"{gw.url}/v1/embeddings",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "embed-sim", "input": "x" * 4000},
        timeout=20,
    )
    assert embedding.status_code == 402, embedding.text
    wait_for_rows(gw, account, 2)
    rows = gw.admin("GET", f"/usage/requests?account_id={account}")["data"]
    assert sorted((r["status"], r["model"]) for r in rows) == [
        (402, "embed-sim"),
        (402, MODEL),
    ]
