"""Concurrency on PostgreSQL and MariaDB with real parallel connections.

Requests run at the same time through the ASGI client (asyncio.gather). They race in three
shapes: one app whose BatchWriter applies them through a pool of connections; two apps on
the same database, each with its own engine and BatchWriter, as two processes would; and two
apps with batching off, so every request is its own transaction racing all the others.
SQLite serializes writers and would hide every race here, so it is not in the matrix.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from tallyhub.core.auth import Role
from tallyhub.leads import service
from tests.conftest import Harness
from tests.factories import make_group, make_user
from tests.leads.helpers import client_headers, group_figures, incoming, report_accounts

pytestmark = pytest.mark.concurrency

# Extra apps keep small pools (the database servers are shared with other test runs) and
# wait long for a connection: a loaded machine is slow, not wrong. Unbatched, each of 200
# requests waits its turn for one of those connections, longer than the default commit
# timeout (which would answer 503, as it should): these tests count, so they wait.
SMALL_POOL = {"size": 8, "max_overflow": 8, "timeout_seconds": 60}
UNBATCHED = {"batching": {"enabled": False}, "commit_timeout_ms": 60_000}
MODES = ["one_writer", "two_writers", "unbatched"]

HarnessFactory = Callable[..., Any]


@asynccontextmanager
async def racing_apps(
    mode: str, main: Harness, factory: HarnessFactory
) -> AsyncIterator[list[Harness]]:
    """The apps whose requests race each other in `mode`."""
    async with AsyncExitStack() as stack:
        if mode == "one_writer":
            yield [main]
            return
        if mode == "two_writers":
            other = await stack.enter_async_context(factory(main.db, pool=SMALL_POOL))
            yield [main, other]
            return
        assert mode == "unbatched"
        first = await stack.enter_async_context(factory(main.db, pool=SMALL_POOL, leads=UNBATCHED))
        second = await stack.enter_async_context(factory(main.db, pool=SMALL_POOL, leads=UNBATCHED))
        yield [first, second]


async def outcome(call: Awaitable[httpx.Response]) -> httpx.Response | Exception:
    """The response, or the error that escaped the app (what a client sees as a 500)."""
    try:
        return await call
    except Exception as error:
        return error


async def together(*calls: Awaitable[httpx.Response]) -> list[httpx.Response | Exception]:
    """Send all requests at once; wait for every one of them."""
    return await asyncio.gather(*(outcome(call) for call in calls))


def assert_all_ok(
    outcomes: Sequence[httpx.Response | Exception], expected: int = 200
) -> list[httpx.Response]:
    bad = [
        repr(r)[:300] if isinstance(r, Exception) else f"{r.status_code} {r.text[:300]}"
        for r in outcomes
        if isinstance(r, Exception) or r.status_code != expected
    ]
    assert bad == [], f"{len(bad)} of {len(outcomes)} requests failed: {bad[:3]}"
    return [r for r in outcomes if isinstance(r, httpx.Response)]


async def accounts_of(h: Harness, auth: dict[str, str], group_id: int) -> list[dict[str, Any]]:
    response = await h.client.get(f"/api/leads/groups/{group_id}/accounts", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def incoming_log(h: Harness, auth: dict[str, str], group_id: int) -> dict[str, Any]:
    response = await h.client.get(
        f"/api/leads/groups/{group_id}/incoming", params={"page_size": 200}, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def recalibrate(h: Harness, auth: dict[str, str]) -> dict[str, Any]:
    response = await h.client.post("/api/leads/recalibrate", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# ---------------------------------------------------------------- incoming dedup


@pytest.mark.parametrize("mode", MODES)
async def test_200_simultaneous_incoming_for_50_contacts_make_exactly_50_new(
    server_harness: Harness, harness_factory: HarnessFactory, mode: str
) -> None:
    main = server_harness
    admin = await make_user(main, "admin", Role.admin)
    groups = [
        await make_group(main, admin, remark=f"global {n}", dedup_scope="global") for n in range(2)
    ]
    for group in groups:
        response = await report_accounts(
            main,
            group,
            {"line_id": "acc-1", "online_status": "online"},
            {"line_id": "acc-2", "online_status": "offline"},
        )
        assert response.status_code == 200, response.text

    # Each contact arrives 4 times: twice in each group, on both accounts.
    contacts = [f"C{n:02d}" for n in range(50)]
    plan = [(groups[k % 2], f"acc-{1 + k // 2}", contact) for contact in contacts for k in range(4)]
    random.Random(7).shuffle(plan)

    async with racing_apps(mode, main, harness_factory) as apps:
        outcomes = await together(
            *(
                incoming(apps[n % len(apps)], group, account, contact)
                for n, (group, account, contact) in enumerate(plan)
            )
        )
    responses = assert_all_ok(outcomes)
    answers = [r.json() for r in responses]

    # Exactly one of a contact's four reports is new, whichever group it came through.
    new_contacts = [c for (_, _, c), a in zip(plan, answers, strict=True) if not a["is_duplicate"]]
    assert sorted(new_contacts) == contacts
    assert sum(a["is_duplicate"] for a in answers) == 150

    figures = [await group_figures(main, admin, g["id"]) for g in groups]
    assert [f["total_incoming"] for f in figures] == [100, 100]
    assert [f["today_incoming"] for f in figures] == [100, 100]
    assert sum(f["duplicate_incoming"] for f in figures) == 150
    for group, f in zip(groups, figures, strict=True):
        new_here = sum(
            1
            for (g, _, _), a in zip(plan, answers, strict=True)
            if g is group and not a["is_duplicate"]
        )
        assert f["total_incoming"] - f["duplicate_incoming"] == new_here

    # Every event answered with its account's figures right after it: the answers of one
    # account are exactly 1..n, each once (no lost update, no double count).
    totals: dict[tuple[int, str], list[int]] = defaultdict(list)
    todays: dict[tuple[int, str], list[int]] = defaultdict(list)
    for (group, account, _), answer in zip(plan, answers, strict=True):
        totals[group["id"], account].append(answer["total_incoming"])
        todays[group["id"], account].append(answer["today_incoming"])
    for key, seen in totals.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), key
        assert sorted(todays[key]) == list(range(1, len(seen) + 1)), key

    for group, f in zip(groups, figures, strict=True):
        accounts = await accounts_of(main, admin, group["id"])
        assert sum(a["total_incoming"] for a in accounts) == 100
        assert sum(a["today_incoming"] for a in accounts) == 100
        assert sum(a["duplicate_incoming"] for a in accounts) == f["duplicate_incoming"]
        log = await incoming_log(main, admin, group["id"])
        assert log["total"] == 100 and len(log["items"]) == 100
        assert sum(not row["is_duplicate"] for row in log["items"]) == (
            f["total_incoming"] - f["duplicate_incoming"]
        )
        answered = {a["event_id"] for (g, _, _), a in zip(plan, answers, strict=True) if g is group}
        assert {row["event_id"] for row in log["items"]} == answered

    # Every counter (all-time, daily, per account) agrees with the log.
    run = await recalibrate(main, admin)
    assert (run["drift_count"], run["drifts"]) == (0, [])


# ---------------------------------------------------------------- status flips


async def test_simultaneous_status_flips_keep_online_accounts_equal_to_accounts_online(
    server_harness: Harness, harness_factory: HarnessFactory
) -> None:
    main = server_harness
    admin = await make_user(main, "admin", Role.admin)
    group = await make_group(main, admin)
    rng = random.Random(11)
    statuses = {f"acc-{n}": rng.choice(["online", "offline"]) for n in range(6)}
    response = await report_accounts(
        main, group, *({"line_id": k, "online_status": v} for k, v in statuses.items())
    )
    assert response.status_code == 200, response.text
    online_before = sum(v == "online" for v in statuses.values())

    async with racing_apps("two_writers", main, harness_factory) as apps:
        for round_ in range(5):
            flips = [
                (rng.choice(list(statuses)), rng.choice(["online", "offline"])) for _ in range(20)
            ]
            outcomes = await together(
                *(
                    apps[n % 2].client.post(
                        f"/api/client/accounts/{line_id}/status",
                        json={"online_status": status},
                        headers=client_headers(group),
                    )
                    for n, (line_id, status) in enumerate(flips)
                )
            )
            responses = assert_all_ok(outcomes)
            accounts = await accounts_of(main, admin, group["id"])
            really_online = sum(a["online_status"] == "online" for a in accounts)
            figures = await group_figures(main, admin, group["id"])
            assert figures["online_accounts"] == really_online, f"round {round_}"
            assert figures["total_accounts"] == 6

            # Only real changes were reported as changes, and they add up to the difference.
            moved = sum(
                (1 if r.json()["online_status"] == "online" else -1)
                for r in responses
                if r.json()["changed"]
            )
            assert online_before + moved == really_online, f"round {round_}"
            # An account flipped many times changed at most once per distinct report order:
            # the changes of one account alternate, so they differ by at most one.
            per_account: dict[str, Counter[str]] = defaultdict(Counter)
            for r in responses:
                if r.json()["changed"]:
                    per_account[r.json()["line_id"]][r.json()["online_status"]] += 1
            for line_id, changes in per_account.items():
                assert abs(changes["online"] - changes["offline"]) <= 1, line_id
            online_before = really_online

    run = await recalibrate(main, admin)
    assert (run["drift_count"], run["drifts"]) == (0, [])


# ---------------------------------------------------------------- recalibration


async def test_recalibration_while_ingestion_runs_finds_no_drift(
    server_harness: Harness, harness_factory: HarnessFactory
) -> None:
    main = server_harness
    admin = await make_user(main, "admin", Role.admin)
    accounts = ["acc-a", "acc-b", "acc-c"]
    groups = [
        await make_group(main, admin, remark=f"g{n}", dedup_scope="global", accounts=accounts)
        for n in range(3)
    ]

    rng = random.Random(23)
    plan = [
        (rng.choice(groups), rng.choice(accounts), f"P{rng.randrange(200):03d}") for _ in range(600)
    ]
    waves = [plan[n : n + 60] for n in range(0, len(plan), 60)]

    async with AsyncExitStack() as stack:
        second = await stack.enter_async_context(harness_factory(main.db, pool=SMALL_POOL))
        unbatched = await stack.enter_async_context(
            harness_factory(main.db, pool=SMALL_POOL, leads=UNBATCHED)
        )
        apps = [main, second, unbatched]
        ingesting = True
        answers: list[dict[str, Any]] = []
        runs: list[tuple[bool, dict[str, Any]]] = []  # (ingestion still running at its end, run)
        flips: list[httpx.Response | Exception] = []

        async def ingest() -> None:
            nonlocal ingesting
            try:
                for wave in waves:
                    outcomes = await together(
                        *(
                            incoming(apps[n % 3], group, account, contact)
                            for n, (group, account, contact) in enumerate(wave)
                        )
                    )
                    answers.extend(r.json() for r in assert_all_ok(outcomes))
            finally:
                ingesting = False

        async def flip_statuses() -> None:
            while ingesting:
                group, account = rng.choice(groups), rng.choice(accounts)
                flips.append(
                    await outcome(
                        second.client.post(
                            f"/api/client/accounts/{account}/status",
                            json={"online_status": rng.choice(["online", "offline"])},
                            headers=client_headers(group),
                        )
                    )
                )
                await asyncio.sleep(0.005)

        async def recalibrate_repeatedly() -> None:
            turn = 0
            while ingesting:
                try:
                    if turn % 2 == 0:
                        run = await recalibrate(main, admin)
                    else:
                        # The service itself, from the other process's runtime, one group
                        # per transaction.
                        record = await service.recalibrate(second.runtime.db, chunk_size=1)
                        run = {"drift_count": record.drift_count, "drifts": record.drifts}
                except Exception as error:  # recorded here, asserted after the race
                    run = {"error": repr(error)[:500]}
                runs.append((ingesting, run))
                turn += 1

        await asyncio.gather(ingest(), flip_statuses(), recalibrate_repeatedly())

    assert sum(during for during, _ in runs) >= 2, "recalibration never overlapped ingestion"
    drifted = [run for _, run in runs if run.get("drift_count") != 0]
    assert drifted == [], f"recalibration during ingestion found drift: {drifted[:2]}"

    # Totals are exact after all of it.
    sent = Counter(group["id"] for group, _, _ in plan)
    distinct = len({contact for _, _, contact in plan})
    figures = {g["id"]: await group_figures(main, admin, g["id"]) for g in groups}
    assert {gid: f["total_incoming"] for gid, f in figures.items()} == dict(sent)
    assert sum(f["today_incoming"] for f in figures.values()) == 600
    assert sum(f["duplicate_incoming"] for f in figures.values()) == 600 - distinct
    assert sum(not a["is_duplicate"] for a in answers) == distinct
    for group in groups:
        listed = await accounts_of(main, admin, group["id"])
        f = figures[group["id"]]
        assert f["online_accounts"] == sum(a["online_status"] == "online" for a in listed)
        assert sum(a["total_incoming"] for a in listed) == f["total_incoming"]

    final = await recalibrate(main, admin)
    assert (final["drift_count"], final["drifts"]) == (0, [])
    history = await main.client.get("/api/leads/recalibrations", headers=admin)
    assert history.json()["total"] == len(runs) + 1
    assert all(item["drift_count"] == 0 for item in history.json()["items"])
    # Status changes racing ingestion and recalibration all went through.
    assert len(flips) >= 5
    assert_all_ok(flips)


# ---------------------------------------------------------------- retried event ids


@pytest.mark.parametrize("mode", MODES)
async def test_a_retried_event_id_sent_many_times_at_once_counts_once(
    server_harness: Harness, harness_factory: HarnessFactory, mode: str
) -> None:
    main = server_harness
    admin = await make_user(main, "admin", Role.admin)
    group = await make_group(main, admin, accounts=["acc"])

    # 8 events, 4 of them of a contact already seen: each sent 25 times at once.
    events = {f"evt-{n}": f"U{n % 4}" for n in range(8)}
    sends = [event_id for event_id in events for _ in range(25)]
    random.Random(5).shuffle(sends)

    async with racing_apps(mode, main, harness_factory) as apps:
        singles = [
            incoming(apps[n % len(apps)], group, "acc", events[event_id], event_id=event_id)
            for n, event_id in enumerate(sends)
        ]
        # A client retrying a whole batch, the same event ids twice inside it.
        batch_events = [
            {"account_line_id": "acc", "incoming_line_id": events[e], "event_id": e}
            for e in ["evt-0", "evt-5", "evt-0", "evt-7", "evt-5"]
        ]
        batches = [
            apps[n % len(apps)].client.post(
                "/api/client/incoming/batch",
                json={"events": batch_events},
                headers=client_headers(group),
            )
            for n in range(6)
        ]
        responses = assert_all_ok(await together(*singles, *batches))

    answers: dict[str, set[tuple[bool, int, int]]] = defaultdict(set)
    for event_id, r in zip(sends, responses[: len(sends)], strict=True):
        body = r.json()
        assert body["event_id"] == event_id
        answers[event_id].add(
            (body["is_duplicate"], body["total_incoming"], body["today_incoming"])
        )
    for r in responses[len(sends) :]:
        for item in r.json()["results"]:
            assert item["ok"] is True, item
            result = item["result"]
            answers[item["event_id"]].add(
                (result["is_duplicate"], result["total_incoming"], result["today_incoming"])
            )

    # Every copy of an event got the first answer; the answers are those of 8 events.
    assert {e: len(a) for e, a in answers.items()} == dict.fromkeys(events, 1)
    first = {e: next(iter(a)) for e, a in answers.items()}
    assert sorted(total for _, total, _ in first.values()) == list(range(1, 9))
    assert sum(dup for dup, _, _ in first.values()) == 4
    new_contacts = sorted(events[e] for e, (dup, _, _) in first.items() if not dup)
    assert new_contacts == ["U0", "U1", "U2", "U3"]

    figures = await group_figures(main, admin, group["id"])
    assert (figures["total_incoming"], figures["duplicate_incoming"]) == (8, 4)
    assert figures["today_incoming"] == 8
    log = await incoming_log(main, admin, group["id"])
    assert log["total"] == 8
    assert sorted(row["event_id"] for row in log["items"]) == sorted(events)
    (account,) = await accounts_of(main, admin, group["id"])
    assert (account["total_incoming"], account["duplicate_incoming"]) == (8, 4)


async def test_an_event_id_reused_by_another_groups_client_is_not_taken_for_a_retry(
    server_harness: Harness,
) -> None:
    """Two desktop clients of different groups may pick the same event id (a counter, a
    hash). The second lead must not be dropped and answered with the first group's figures:
    it is counted in its own group, or refused as a conflict, never silently swallowed."""
    main = server_harness
    admin = await make_user(main, "admin", Role.admin)
    first = await make_group(main, admin, accounts=["acc"])
    second = await make_group(main, admin, accounts=["acc"])
    for n in range(3):
        response = await incoming(main, first, "acc", f"A{n}", event_id=f"evt-{n}")
        assert response.status_code == 200, response.text

    reused = await incoming(main, second, "acc", "B0", event_id="evt-2")
    figures = await group_figures(main, admin, second["id"])
    if reused.status_code == 200:
        assert reused.json()["total_incoming"] == 1 == figures["total_incoming"], reused.text
    else:
        assert reused.status_code == 409, reused.text
        assert figures["total_incoming"] == 0
    assert (await group_figures(main, admin, first["id"]))["total_incoming"] == 3


# ---------------------------------------------------------------- account reports


async def test_concurrent_account_reports_never_exceed_the_account_limit(
    server_harness: Harness, harness_factory: HarnessFactory
) -> None:
    main = server_harness
    admin = await make_user(main, "admin", Role.admin)
    group = await make_group(main, admin, account_limit=10)
    response = await report_accounts(main, group, *({"line_id": f"old-{n}"} for n in range(7)))
    assert response.status_code == 200, response.text

    async with racing_apps("two_writers", main, harness_factory) as apps:
        # 12 clients each add one new account (and re-report an old one): room for 3.
        outcomes = await together(
            *(
                report_accounts(
                    apps[n % 2],
                    group,
                    {"line_id": "old-0"},
                    {"line_id": f"new-{n}", "online_status": "online"},
                )
                for n in range(12)
            )
        )
        responses = [r for r in outcomes if isinstance(r, httpx.Response)]
        assert len(responses) == 12, outcomes
        codes = Counter(r.status_code for r in responses)
        assert codes == {200: 3, 409: 9}, [r.text for r in responses]
        for r in responses:
            if r.status_code == 409:
                assert r.json()["error"]["code"] == "account_limit_exceeded"
            else:
                assert r.json()["created"] == 1

        figures = await group_figures(main, admin, group["id"])
        listed = await accounts_of(main, admin, group["id"])
        assert len(listed) == figures["total_accounts"] == 10
        assert (
            figures["online_accounts"] == 3 == sum(a["online_status"] == "online" for a in listed)
        )

        # One more at the limit is refused; a report of known accounts still passes.
        over = await report_accounts(main, group, {"line_id": "one-too-many"})
        assert over.status_code == 409
        known = await report_accounts(apps[1], group, {"line_id": "old-1"})
        assert known.status_code == 200 and known.json()["total_accounts"] == 10

        # Ten clients report the same new account at once: it is created once.
        unlimited = await make_group(main, admin)
        rng = random.Random(3)
        reports = [
            {
                "line_id": "shared",
                "online_status": rng.choice(["online", "offline"]),
                "platform_type": "line_business",
            }
            for _ in range(10)
        ]
        same = assert_all_ok(
            await together(
                *(report_accounts(apps[n % 2], unlimited, r) for n, r in enumerate(reports))
            )
        )
    assert sum(r.json()["created"] for r in same) == 1
    (account,) = await accounts_of(main, admin, unlimited["id"])
    figures = await group_figures(main, admin, unlimited["id"])
    assert (
        figures["total_accounts"],
        figures["line_business_accounts"],
        figures["line_accounts"],
        figures["online_accounts"],
    ) == (1, 1, 0, int(account["online_status"] == "online"))

    run = await recalibrate(main, admin)
    assert (run["drift_count"], run["drifts"]) == (0, [])


# ---------------------------------------------------------------- status during ingestion


async def test_status_changes_while_leads_arrive_on_the_same_accounts_all_succeed(
    server_harness: Harness, harness_factory: HarnessFactory
) -> None:
    """A client reports leads and status changes of the same accounts at the same time;
    none of its requests may fail, and the figures stay exact."""
    main = server_harness
    admin = await make_user(main, "admin", Role.admin)
    accounts = [f"acc-{n}" for n in range(3)]
    group = await make_group(main, admin, accounts=accounts)

    async with AsyncExitStack() as stack:
        second = await stack.enter_async_context(harness_factory(main.db, pool=SMALL_POOL))
        writers = (main, second)
        ingesting = True
        lead_responses: list[httpx.Response | Exception] = []
        flip_responses: list[httpx.Response | Exception] = []

        async def ingest(worker: int) -> None:
            # A steady stream, as busy clients send it: 60 clients, 20 leads each.
            for n in range(20):
                lead_responses.append(
                    await outcome(
                        incoming(
                            writers[worker % 2],
                            group,
                            accounts[(worker + n) % 3],
                            f"L{worker}-{n % 7}",
                        )
                    )
                )

        async def ingest_all() -> None:
            nonlocal ingesting
            try:
                await asyncio.gather(*(ingest(w) for w in range(60)))
            finally:
                ingesting = False

        async def flip(worker: int) -> None:
            status = ("online", "offline")[worker % 2]
            while ingesting:
                flip_responses.append(
                    await outcome(
                        second.client.post(
                            f"/api/client/accounts/{accounts[worker % 3]}/status",
                            json={"online_status": status},
                            headers=client_headers(group),
                        )
                    )
                )
                status = "online" if status == "offline" else "offline"

        await asyncio.gather(ingest_all(), *(flip(w) for w in range(12)))
    assert_all_ok(lead_responses)
    assert len(flip_responses) >= 20
    assert_all_ok(flip_responses)

    figures = await group_figures(main, admin, group["id"])
    listed = await accounts_of(main, admin, group["id"])
    assert figures["total_incoming"] == 1200
    assert figures["online_accounts"] == sum(a["online_status"] == "online" for a in listed)
