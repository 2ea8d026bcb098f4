"""The console on PostgreSQL: an operator set up from the CLI sets a password through the
reset link and creates an account with credits, audited with their identity."""

from __future__ import annotations

import httpx
import pytest
from console_ui import PASSWORD, cli, email, form_token
from harness import Gateway


@pytest.mark.postgres
def test_console_on_postgres(pg_gateway: Gateway) -> None:
    made = cli(pg_gateway, "console", "operator", f"pg-{email()}")
    token = made["reset_path"].rsplit("#", 1)[1]
    with httpx.Client(base_url=pg_gateway.url, timeout=10) as client:
        csrf = form_token(client.get("/console/reset").text)
        reply = client.post(
            "/console/reset",
            data={"csrf": csrf, "token": token, "password": PASSWORD, "password2": PASSWORD},
        )
        assert reply.status_code == 303
        accounts = client.get("/console/admin/accounts")
        assert accounts.status_code == 200
        csrf = form_token(accounts.text)
        created = client.post(
            "/console/admin/accounts", data={"csrf": csrf, "name": "pg-acct", "credits": "1.5"}
        )
        assert created.status_code == 303
        account_id = created.headers["location"].rsplit("/", 1)[1]
    assert pg_gateway.account_state(account_id)["balance"] == 1_500_000
    audit = pg_gateway.admin("GET", "/audit", params={"target": account_id})["data"]
    assert audit[0]["action"] == "account.create"
    assert audit[0]["actor"] == f"console:{made['user_id']}"
