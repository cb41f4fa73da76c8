"""`tallyhub demo seed`: each domain's demo data, made once however often it runs."""

from __future__ import annotations

from datetime import date, timedelta

from tallyhub import demo
from tests.conftest import Harness


async def test_demo_data_is_made_once_and_visible_to_the_demo_admin(harness: Harness) -> None:
    first = await demo.seed(harness.runtime)
    second = await demo.seed(harness.runtime)
    assert first == second
    assert first["leads"] == {"groups": 3, "incoming_events": 3000}
    assert first["clicks"]["click_events"] == 1500
    assert first["clicks"]["bot_click_events"] == 120

    response = await harness.client.post(
        "/api/auth/token", data={"username": "demo", "password": "demo"}
    )
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
    groups = (await harness.client.get("/api/leads/groups", headers=auth)).json()
    assert groups["total"] == 3
    # A second run counted nothing again: every lead of the 3,000 is counted once.
    assert sum(g["total_incoming"] for g in groups["items"]) == 3000
    campaign_id = first["clicks"]["campaign_id"]
    campaign = (
        await harness.client.get(f"/api/clicks/campaigns/{campaign_id}", headers=auth)
    ).json()
    assert campaign["clicked_count"] == 1500
    # The link previews are kept apart: not in the count, in bot_clicks and by bot name.
    assert campaign["bot_clicks"] == 120
    since = date.fromisoformat(campaign["business_date"]) - timedelta(days=20)
    params = {"dimension": "bot", "from": since.isoformat()}
    bots = (
        await harness.client.get(
            f"/api/clicks/campaigns/{campaign_id}/breakdown", params=params, headers=auth
        )
    ).json()
    assert bots["clicks"] == 120, bots
    assert {v["key"] for v in bots["values"]["items"]} == {"LINE", "Telegram", "Facebook"}, bots
