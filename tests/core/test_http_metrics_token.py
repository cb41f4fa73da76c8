"""GET /metrics: public by default; with TALLYHUB_METRICS_TOKEN set, only for that bearer
token (a 401 envelope otherwise)."""

from __future__ import annotations

from typing import Any

from tests.conftest import TestDatabase
from tests.core.test_http_errors import sqlite_db

__all__ = ["sqlite_db"]  # a fixture of this module too

TOKEN = "scrape-me-0123456789abcdef"


async def test_with_a_token_set_metrics_need_it(
    sqlite_db: TestDatabase, harness_factory: Any
) -> None:
    async with harness_factory(sqlite_db, metrics_token=TOKEN) as h:
        refused = [
            await h.client.get("/metrics"),
            await h.client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
            await h.client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
            await h.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}),
        ]
        scraped = await h.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    for response in refused:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "metrics_token"
        assert "http_requests_total" not in response.text
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert 'auth_failures_total{kind="metrics_token"}' in scraped.text


async def test_without_a_token_metrics_are_public(
    sqlite_db: TestDatabase, harness_factory: Any
) -> None:
    async with harness_factory(sqlite_db) as h:
        response = await h.client.get("/metrics")
    assert response.status_code == 200
    assert "http_requests_total" in response.text
