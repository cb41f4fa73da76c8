"""The dashboard page (web/): signed in with a session cookie, every API call its script
makes answers a viewer, with the fields the script reads. No browser runs here; this
keeps the page and the API it is built on from drifting apart."""

from __future__ import annotations

import json
import re
from typing import Any

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import PASSWORD, make_campaign, make_group, make_user


def _list(html: str, name: str) -> list[str]:
    found = re.search(rf"const {name} = (\[[^\]]*\]);", html)
    assert found, f"{name} is not in the page"
    fields: list[str] = json.loads(found.group(1))
    return fields


async def test_each_call_of_the_dashboard_answers_a_viewer_with_what_it_reads(
    harness: Harness,
) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    await make_user(harness, "viewer", Role.viewer)
    await make_group(harness, admin, remark="Tokyo desk")
    await make_campaign(harness, admin)
    ran = await harness.client.post("/api/jobs/core.prune_job_runs/run", headers=admin)
    assert ran.status_code == 200, ran.text

    page = await harness.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'fetch("/api/auth/session", { method: "POST"' in html
    assert "sessionStorage" not in html and "localStorage" not in html
    harness.client.cookies.clear()
    signed_in = await harness.client.post(
        "/api/auth/session", data={"username": "viewer", "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    calls = re.findall(r'api\("([^"]+)"\)', html)
    assert set(calls) == {
        "/api/auth/me",
        "/api/leads/groups?page_size=200",
        "/api/clicks/campaigns?page_size=200",
        "/api/jobs",
    }
    answers: dict[str, Any] = {}
    for path in calls:
        response = await harness.client.get(path)  # the session cookie only
        assert response.status_code == 200, (path, response.text)
        answers[path] = response.json()

    (group,) = answers["/api/leads/groups?page_size=200"]["items"]
    assert {"id", "remark", "business_date", *_list(html, "FIELDS")} <= group.keys()
    (campaign,) = answers["/api/clicks/campaigns?page_size=200"]["items"]
    assert {"id", "name", "allowed_hosts", *_list(html, "CAMPAIGN_FIELDS")} <= campaign.keys()
    jobs = {j["name"]: j for j in answers["/api/jobs"]}
    assert set(_list(html, "JOB_FIELDS")) <= jobs["core.prune_job_runs"].keys()
    last_run = jobs["core.prune_job_runs"]["last_run"]
    assert {"error", *_list(html, "RUN_FIELDS")} <= last_run.keys()
    assert last_run["status"] == "succeeded"
    # The per-group call, a template in the page, answers the same viewer.
    assert "`/api/leads/groups/${id}/accounts`" in html
    accounts = await harness.client.get(f"/api/leads/groups/{group['id']}/accounts")
    assert accounts.status_code == 200 and accounts.json() == []
