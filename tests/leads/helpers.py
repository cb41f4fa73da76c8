"""Shared steps of the leads tests, spoken through the HTTP API."""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness


def client_headers(group: dict[str, Any]) -> dict[str, str]:
    return {"X-Activation-Code": group["activation_code"]}


async def report_accounts(h: Harness, group: dict[str, Any], *accounts: dict[str, Any]) -> Any:
    response = await h.client.put(
        "/api/client/accounts", json={"accounts": list(accounts)}, headers=client_headers(group)
    )
    return response


async def incoming(
    h: Harness, group: dict[str, Any], account: str, contact: str, **extra: Any
) -> Any:
    return await h.client.post(
        "/api/client/incoming",
        json={"account_line_id": account, "incoming_line_id": contact, **extra},
        headers=client_headers(group),
    )


async def group_figures(h: Harness, auth: dict[str, str], group_id: int) -> dict[str, Any]:
    response = await h.client.get(f"/api/leads/groups/{group_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
