"""Shared steps of the clicks tests, spoken through the HTTP API."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import REGISTRY

from tests.conftest import Harness
from tests.factories import HOST

TARGET = f"https://{HOST}/sale"  # a link target every campaign made by make_campaign allows


async def click(h: Harness | httpx.AsyncClient, **params: Any) -> httpx.Response:
    """GET /__track with the given parameters (`to` defaults to an allowed target)."""
    params.setdefault("to", TARGET)
    client = h.client if isinstance(h, Harness) else h
    return await client.get("/__track", params={k: v for k, v in params.items() if v is not None})


async def campaign(h: Harness, auth: dict[str, str], campaign_id: int) -> dict[str, Any]:
    response = await h.client.get(f"/api/clicks/campaigns/{campaign_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def users(
    h: Harness, auth: dict[str, str], campaign_id: int, **params: Any
) -> list[dict[str, Any]]:
    response = await h.client.get(
        f"/api/clicks/campaigns/{campaign_id}/users",
        params={"page_size": 200, **params},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def summary_of(items: list[dict[str, Any]], line_id: str, src: int = 0) -> dict[str, Any]:
    found = [s for s in items if s["line_id"] == line_id and s["source_campaign_id"] == src]
    assert len(found) == 1, items
    return found[0]


def metric(name: str, **labels: str) -> float:
    """The current value of a Prometheus sample in this process (0 when absent)."""
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0
