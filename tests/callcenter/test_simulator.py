"""The Guanke simulator keeps the contract the client is written against (envelope, item
schemas, exact paging, parameter checks, the key), draws the same calls from the same seed,
lets today's calls arrive with the clock and always at the end of the list, and its truth
adds up the very records it serves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from tallyhub.callcenter.contract import (
    API_KEY_HEADER,
    BAD_PARAMETER,
    CALL_RECORDS,
    CHINA,
    CONNECTED,
    GRADE_1,
    GRADE_9,
    GRADE_NONE,
    GRADES,
    STATUSES,
    TASK_STATS,
    UNAUTHORIZED,
    CallRecord,
    Envelope,
    Page,
    TaskStatsItem,
    parse_call_time,
)
from tallyhub.callcenter.simulator import CallCenterWorld, create_app
from tallyhub.core.simulation import SimClock, running

KEY = "sim-test-key"
START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)  # 14:00 in China
TODAY = date(2026, 3, 1)
YESTERDAY = TODAY - timedelta(days=1)


@dataclass
class Sim:
    http: httpx.Client
    clock: SimClock
    world: CallCenterWorld

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers={API_KEY_HEADER: KEY})

    def page(self, path: str, **params: Any) -> dict[str, Any]:
        answer = self.get(path, **params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert body["code"] == 0
        data: dict[str, Any] = body["data"]
        return data

    def rows(self, path: str, day: date, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every row of a date, walked the plain way."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self.page(path, date=str(day), page=page, page_size=page_size)
            found.extend(data["items"])
            if page * page_size >= data["total"]:
                return found
            page += 1

    def truth(self, day: date) -> dict[str, Any]:
        truth: dict[str, Any] = self.http.get("/__sim/truth", params={"date": str(day)}).json()
        return truth


@pytest.fixture
def sim() -> Iterator[Sim]:
    clock = SimClock(START)
    app = create_app(seed=4, records_per_day=3000, clock=clock, api_key=KEY, tasks=12, agents=9)
    with running(app) as url, httpx.Client(base_url=url) as http:
        yield Sim(http, clock, app.state.world)


def test_rows_are_the_contracts_items_and_call_times_fall_on_the_date(sim: Sim) -> None:
    records = sim.rows(CALL_RECORDS, YESTERDAY)
    assert len(records) == 3000
    assert all(set(row) == set(CallRecord.model_fields) for row in records)
    parsed = [CallRecord.model_validate(row) for row in records]
    # The JSON form of the model is the vendor's row: the contract reads and writes one shape.
    assert [record.model_dump(mode="json") for record in parsed] == records
    local = [record.call_time.astimezone(CHINA) for record in parsed]
    assert {moment.date() for moment in local} == {YESTERDAY}
    assert min(moment.hour for moment in local) >= 8
    assert {record.status for record in parsed} == set(STATUSES)
    assert {record.grade for record in parsed} == set(GRADES)
    assert all(r.grade == GRADE_NONE and r.duration == 0 for r in parsed if r.status != CONNECTED)
    assert len({record.record_id for record in parsed}) == 3000
    tasks = sim.rows(TASK_STATS, YESTERDAY)
    assert all(set(row) == set(TaskStatsItem.model_fields) for row in tasks)
    assert [TaskStatsItem.model_validate(row).model_dump() for row in tasks] == tasks


def test_every_answer_is_the_envelope_with_exact_paging(sim: Sim) -> None:
    body = sim.get(CALL_RECORDS, date=str(YESTERDAY), page=3, page_size=700).json()
    answered = Envelope[Page[CallRecord]].model_validate(body)
    assert (answered.code, answered.data.total, answered.data.page) == (0, 3000, 3)
    assert (answered.data.page_size, answered.data.total_pages) == (700, 5)
    assert len(answered.data.items) == 700
    last = sim.page(CALL_RECORDS, date=str(YESTERDAY), page=5, page_size=700)
    assert len(last["items"]) == 3000 - 4 * 700
    past_the_end = sim.page(CALL_RECORDS, date=str(YESTERDAY), page=6, page_size=700)
    assert (past_the_end["items"], past_the_end["total"]) == ([], 3000)
    defaults = sim.page(CALL_RECORDS, date=str(YESTERDAY))
    assert (defaults["page"], defaults["page_size"], len(defaults["items"])) == (1, 20, 20)
    # Pages of any size cut the same list.
    small = sim.rows(CALL_RECORDS, YESTERDAY, page_size=7)
    assert small == sim.rows(CALL_RECORDS, YESTERDAY, page_size=1000)


def test_the_same_seed_draws_the_same_calls_and_another_seed_others() -> None:
    def first_page(seed: int) -> list[dict[str, Any]]:
        world = CallCenterWorld(
            seed=seed, records_per_day=500, clock=SimClock(START), tasks=5, agents=5
        )
        rows, total = world.records(YESTERDAY, 0, 500)
        assert total == 500
        return rows

    assert first_page(1) == first_page(1)
    assert first_page(1) != first_page(2)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"page": 1, "page_size": 10}, "date"),
        ({"date": "2026/02/28", "page": 1}, "date"),
        ({"date": "2026-02-30", "page": 1}, "date"),
        ({"date": "2026-02-28", "page": 0}, "page"),
        ({"date": "2026-02-28", "page": "two"}, "page"),
        ({"date": "2026-02-28", "page_size": 0}, "page_size"),
        ({"date": "2026-02-28", "page_size": 1001}, "page_size"),
        ({"date": "2026-02-28", "page_size": "1e3"}, "page_size"),
    ],
)
@pytest.mark.parametrize("path", [CALL_RECORDS, TASK_STATS])
def test_a_bad_parameter_is_http_400_naming_it(
    sim: Sim, path: str, params: dict[str, Any], parameter: str
) -> None:
    answer = sim.get(path, **params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == BAD_PARAMETER
    assert f"invalid parameter {parameter}:" in body["message"]


def test_the_largest_page_size_is_accepted(sim: Sim) -> None:
    assert len(sim.page(CALL_RECORDS, date=str(YESTERDAY), page_size=1000)["items"]) == 1000


@pytest.mark.parametrize("headers", [{}, {API_KEY_HEADER: "wrong"}, {API_KEY_HEADER: ""}])
def test_a_missing_or_wrong_key_is_401(sim: Sim, headers: dict[str, str]) -> None:
    for path in (CALL_RECORDS, TASK_STATS):
        answer = sim.http.get(path, params={"date": str(YESTERDAY)}, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["code"] == UNAUTHORIZED


def test_today_holds_the_calls_up_to_now_and_new_ones_come_last(sim: Sim) -> None:
    before = sim.rows(CALL_RECORDS, TODAY)
    now = sim.clock.now()
    assert 0 < len(before) < 3000
    assert all(parse_call_time(row["call_time"]) <= now for row in before)
    sim.clock.advance(3 * 3600)
    after = sim.rows(CALL_RECORDS, TODAY)
    assert len(after) > len(before)
    assert after[: len(before)] == before
    assert all(
        now < parse_call_time(row["call_time"]) <= sim.clock.now() for row in after[len(before) :]
    )
    assert sim.truth(TODAY)["total_records"] == len(after)
    sim.clock.advance(24 * 3600)  # the next day: yesterday is complete
    assert len(sim.rows(CALL_RECORDS, TODAY)) == 3000


def test_a_future_date_lists_nothing(sim: Sim) -> None:
    tomorrow = str(TODAY + timedelta(days=1))
    assert sim.page(CALL_RECORDS, date=tomorrow) == {
        "items": [],
        "total": 0,
        "page": 1,
        "page_size": 20,
    }
    assert sim.page(TASK_STATS, date=tomorrow)["total"] == 0
    assert sim.truth(TODAY + timedelta(days=1))["total_records"] == 0


def test_arrivals_are_listed_after_every_call_visible_now(sim: Sim) -> None:
    before = sim.rows(CALL_RECORDS, YESTERDAY)
    answer = sim.http.post("/__sim/arrivals", json={"date": str(YESTERDAY), "count": 25})
    assert answer.status_code == 200
    added = answer.json()
    assert added["total_records"] == 3025
    after = sim.rows(CALL_RECORDS, YESTERDAY)
    assert after[:3000] == before
    assert [row["record_id"] for row in after[3000:]] == added["record_ids"]
    assert len({row["record_id"] for row in after}) == 3025
    assert all(row["call_time"].startswith(str(YESTERDAY)) for row in after[3000:])
    # Today's arrivals have call times up to now, and later calls still come after them.
    today = sim.http.post("/__sim/arrivals", json={"date": str(TODAY), "count": 3}).json()
    sim.clock.advance(3600)
    listed = [row["record_id"] for row in sim.rows(CALL_RECORDS, TODAY)]
    at = listed.index(today["record_ids"][0])
    assert listed[at : at + 3] == today["record_ids"]
    assert at + 3 < len(listed)
    refused = sim.http.post("/__sim/arrivals", json={"date": str(TODAY + timedelta(1)), "count": 1})
    assert refused.status_code == 422


def _sums(records: list[CallRecord]) -> dict[str, Any]:
    def calls(rows: list[CallRecord]) -> dict[str, int]:
        return {
            "calls": len(rows),
            "connected": sum(r.status == CONNECTED for r in rows),
            "grade_9": sum(r.grade == GRADE_9 for r in rows),
            "grade_1": sum(r.grade == GRADE_1 for r in rows),
        }

    def grouped(key: Any) -> dict[Any, list[CallRecord]]:
        groups: dict[Any, list[CallRecord]] = {}
        for record in records:
            groups.setdefault(key(record), []).append(record)
        return groups

    hours = grouped(lambda r: r.call_time.astimezone(CHINA).hour)
    return {
        "grades": {grade: Counter(r.grade for r in records)[grade] for grade in GRADES},
        "by_agent": {agent: calls(rows) for agent, rows in grouped(lambda r: r.agent_id).items()},
        "by_hour": {str(hour): calls(hours.get(hour, [])) for hour in range(24)},
        "by_task": grouped(lambda r: r.task_id),
    }


@pytest.mark.parametrize("day", [YESTERDAY, TODAY])
def test_truth_and_task_dimension_add_up_the_records_served(sim: Sim, day: date) -> None:
    sim.http.post("/__sim/arrivals", json={"date": str(day), "count": 40})
    records = [CallRecord.model_validate(row) for row in sim.rows(CALL_RECORDS, day)]
    truth = sim.truth(day)
    sums = _sums(records)
    assert truth["date"] == str(day)
    assert truth["total_records"] == len(records)
    assert truth["grades"] == sums["grades"]
    assert truth["by_agent"] == sums["by_agent"]
    assert truth["by_hour"] == sums["by_hour"]
    tasks = {row["task_id"]: row for row in sim.rows(TASK_STATS, day, page_size=5)}
    assert set(sums["by_task"]) <= set(tasks) == set(truth["by_task"])
    for task_id, row in tasks.items():
        mine = sums["by_task"].get(task_id, [])
        connected = sum(r.status == CONNECTED for r in mine)
        assert row["callout_number"] == len(mine)
        assert row["called_number"] == row["intention_number"] == connected
        assert row["success_number"] == sum(r.grade in (GRADE_9, GRADE_1) for r in mine)
        assert row["intention_number2"] == sum(
            r.status == CONNECTED and r.grade != GRADE_NONE for r in mine
        )
        assert truth["by_task"][task_id] == {
            **row,
            "grade_9": sum(r.grade == GRADE_9 for r in mine),
            "grade_1": sum(r.grade == GRADE_1 for r in mine),
        }
    totals = truth["tasks"]
    assert totals["total_tasks"] == len(tasks)
    assert totals["callout_number"] == len(records)
    assert totals["success_number"] == sums["grades"][GRADE_9] + sums["grades"][GRADE_1]


def test_grades_9_and_1_are_about_3_and_1_percent_of_connected_calls() -> None:
    world = CallCenterWorld(
        seed=11, records_per_day=60_000, clock=SimClock(START), tasks=40, agents=60
    )
    truth = world.truth(YESTERDAY)
    connected = sum(agent["connected"] for agent in truth["by_agent"].values())
    assert 0.35 < connected / 60_000 < 0.55
    assert 0.02 < truth["grades"][GRADE_9] / connected < 0.04
    assert 0.005 < truth["grades"][GRADE_1] / connected < 0.016
    assert len(truth["by_agent"]) == 60
    busiest = max(range(24), key=lambda h: truth["by_hour"][str(h)]["calls"])
    assert all(truth["by_hour"][str(h)]["calls"] == 0 for h in range(8))
    assert 8 <= busiest <= 23


def test_slow_pages_are_switched_on_and_off(sim: Sim) -> None:
    assert sim.http.get("/__sim/pages/slow").json() == {"ms": 0}
    assert sim.http.post("/__sim/pages/slow", json={"ms": 30}).json() == {"ms": 30}
    assert sim.world.page_delay_ms == 30
    assert len(sim.page(CALL_RECORDS, date=str(YESTERDAY), page_size=10)["items"]) == 10
    assert sim.http.post("/__sim/pages/slow", json={"ms": -1}).status_code == 422
    assert sim.http.post("/__sim/pages/slow", json={"ms": 0}).json() == {"ms": 0}


def test_the_world_describes_its_tasks_and_agents(sim: Sim) -> None:
    world = sim.http.get("/__sim/world").json()
    assert world["today"] == str(TODAY)
    assert world["records_per_day"] == 3000
    assert len(world["tasks"]) == 12
    assert len({task["task_id"] for task in world["tasks"]}) == 12
    assert len(world["agents"]) == 9
