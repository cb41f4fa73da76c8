"""The webhook outbox on the three databases, delivering over real HTTP to a local
receiver: signatures that the Standard Webhooks reference library accepts, the retry
schedule on a controlled clock, 410, resend, no message sent twice by two deliverers, and
none lost between commit and send."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tallyhub.core.auth import Role
from tallyhub.core.db import Database
from tallyhub.core.simulation import running
from tallyhub.core.webhooks import (
    SCHEDULE,
    InvalidSignature,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
    deliver_due,
    enqueue,
    ensure_endpoint,
    new_secret,
    on_outcome,
    sign,
    verify,
)
from tallyhub.core.webhooks.delivery import LEASE, claim, schedule_offsets
from tallyhub.core.webhooks.outbox import OUTCOMES, Outcome
from tests.conftest import Harness
from tests.factories import add_user, bearer, user_token


@dataclass
class Receiver:
    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 204

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _ in self.received]


@contextmanager
def receiver() -> Iterator[Receiver]:
    app = FastAPI()
    state = Receiver("")

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        state.received.append((dict(request.headers), await request.body()))
        return Response(status_code=state.statuses.pop(0) if state.statuses else 204)

    with running(app) as base:
        state.url = f"{base}/hook"
        yield state


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def _message(h: Harness, url: str, payload: dict[str, Any], **kw: Any) -> str:
    async def put(session: AsyncSession) -> str:
        endpoint = await ensure_endpoint(session, h.runtime.secret_box(), url, None)
        message = await enqueue(
            session, endpoints=[endpoint], event_type="test.event", payload=payload, **kw
        )
        return message.id

    return await h.runtime.db.run(put)


async def _endpoint_secret(h: Harness) -> str:
    async def read(session: AsyncSession) -> str:
        endpoint = await session.scalar(select(WebhookEndpoint))
        assert endpoint is not None
        return h.runtime.secret_box().decrypt(endpoint.secret)

    return await h.runtime.db.run(read, readonly=True)


async def _delivery(h: Harness, message_id: str) -> WebhookDelivery:
    async def read(session: AsyncSession) -> WebhookDelivery:
        row = await session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.message_id == message_id)
        )
        assert row is not None
        return row

    return await h.runtime.db.run(read, readonly=True)


# ---------------------------------------------------------------- signatures


def test_signatures_are_what_the_reference_library_accepts() -> None:
    secret = new_secret()
    body = b'{"event":"task.daily_stats","stats":[{"task_id":42}]}'
    headers = sign(secret, "msg_1", body)
    assert Webhook(secret).verify(body, headers) == {
        "event": "task.daily_stats",
        "stats": [{"task_id": 42}],
    }
    verify(secret, headers, body)  # ours agrees

    changed_body = body.replace(b"42", b"43")
    old = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 600)}
    for wrong_headers, wrong_body in ((headers, changed_body), (old, body)):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(wrong_body, wrong_headers)
        with pytest.raises(InvalidSignature):
            verify(secret, wrong_headers, wrong_body)
    with pytest.raises(InvalidSignature):
        verify(new_secret(), headers, body)  # another endpoint's secret


# ---------------------------------------------------------------- the outbox


async def test_a_message_exists_only_if_its_transaction_commits(harness: Harness) -> None:
    class Refused(Exception):
        pass

    async def rolled_back(session: AsyncSession) -> None:
        endpoint = await ensure_endpoint(session, harness.runtime.secret_box(), "http://x/", None)
        await enqueue(session, endpoints=[endpoint], event_type="e", payload={})
        raise Refused

    with pytest.raises(Refused):
        await harness.runtime.db.run(rolled_back)

    async def count(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(WebhookMessage)) or 0)

    assert await harness.runtime.db.run(count, readonly=True) == 0


async def test_a_committed_message_is_delivered_signed(harness: Harness) -> None:
    with receiver() as hook:
        payload = {"site_name": "站点", "event": "test", "n": 1}
        message_id = await _message(harness, hook.url, payload)
        counts = await deliver_due(harness.runtime.db, harness.runtime.secret_box())
        assert counts["succeeded"] == 1
        ((headers, body),) = hook.received
        assert Webhook(await _endpoint_secret(harness)).verify(body, headers) == payload
        assert headers["webhook-id"] == message_id
        assert headers["content-type"] == "application/json"
        delivery = await _delivery(harness, message_id)
        assert (delivery.status, delivery.attempt_count, delivery.last_status_code) == (
            "succeeded",
            1,
            204,
        )
        # Nothing is due any more: a second run sends nothing.
        assert (await deliver_due(harness.runtime.db, harness.runtime.secret_box()))[
            "succeeded"
        ] == 0
        assert len(hook.received) == 1


async def test_a_receiver_that_is_down_is_tried_on_the_schedule_then_given_up(
    harness: Harness,
) -> None:
    clock = Clock()
    start = clock.now
    with receiver() as hook:
        hook.statuses = [500, 502, 503, 301, 500, 500, 500, 500]
        message_id = await _message(harness, hook.url, {"n": 1})
        # The message was made at the real time; the clock runs ahead of it.
        attempts: list[float] = []
        for _ in range(60):
            counts = await deliver_due(
                harness.runtime.db, harness.runtime.secret_box(), clock=clock
            )
            if sum(counts.values()):
                attempts.append((clock.now - start).total_seconds())
            delivery = await _delivery(harness, message_id)
            if delivery.status != "pending":
                break
            assert delivery.next_attempt_at is not None
            # One second before it is due nothing is sent; then exactly when due.
            clock.now = delivery.next_attempt_at - timedelta(seconds=1)
            early = await deliver_due(harness.runtime.db, harness.runtime.secret_box(), clock=clock)
            assert sum(early.values()) == 0
            clock.now = delivery.next_attempt_at
    assert attempts == list(schedule_offsets())
    assert len(SCHEDULE) == 8 and len(hook.received) == 8
    assert delivery.status == "failed" and delivery.attempt_count == 8

    async def answered(session: AsyncSession) -> list[int | None]:
        rows = await session.scalars(select(WebhookAttempt.status_code).order_by(WebhookAttempt.id))
        return list(rows)

    assert await harness.runtime.db.run(answered, readonly=True) == [
        500,
        502,
        503,
        301,
        500,
        500,
        500,
        500,
    ]


async def test_410_disables_the_endpoint(harness: Harness) -> None:
    with receiver() as hook:
        hook.statuses = [410]
        first = await _message(harness, hook.url, {"n": 1})
        counts = await deliver_due(harness.runtime.db, harness.runtime.secret_box())
        assert counts["gone"] == 1
        later = await _message(harness, hook.url, {"n": 2})
        await deliver_due(harness.runtime.db, harness.runtime.secret_box())
        assert len(hook.received) == 1, "nothing more is sent to a gone endpoint"

    async def endpoint(session: AsyncSession) -> WebhookEndpoint:
        row = await session.scalar(select(WebhookEndpoint))
        assert row is not None
        return row

    gone = await harness.runtime.db.run(endpoint, readonly=True)
    assert not gone.enabled and gone.disabled_reason and "410" in gone.disabled_reason
    assert (await _delivery(harness, first)).status == "failed"
    assert (await _delivery(harness, later)).status == "failed"


async def test_the_sender_hears_each_outcome_in_the_attempts_transaction(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[tuple[str, str, int | None]] = []

    async def handler(session: AsyncSession, outcome: Outcome) -> None:
        heard.append((outcome.message.source_key, outcome.status, outcome.status_code))

    monkeypatch.setitem(OUTCOMES, "test.source", handler)
    with receiver() as hook:
        hook.statuses = [500]
        clock = Clock()
        await _message(harness, hook.url, {"n": 1}, source="test.source", source_key="k1")
        await deliver_due(harness.runtime.db, harness.runtime.secret_box(), clock=clock)
        clock.now += timedelta(seconds=5)
        await deliver_due(harness.runtime.db, harness.runtime.secret_box(), clock=clock)
    assert heard == [("k1", "pending", 500), ("k1", "succeeded", 204)]
    with pytest.raises(ValueError):
        on_outcome("test.source", lambda session, outcome: handler(session, outcome))


async def test_a_crash_after_commit_or_mid_send_loses_no_message(harness: Harness) -> None:
    with receiver() as hook:
        # Committed, and the process died before sending: the outbox still holds it.
        message_id = await _message(harness, hook.url, {"n": 1})
        # Taken by a deliverer that died before it recorded anything.
        clock = Clock()
        clock.now = datetime.now(UTC)
        taken = await claim(harness.runtime.db, clock(), 10)
        assert [d.message_id for d in taken] == [message_id]
        assert await claim(harness.runtime.db, clock(), 10) == [], "its lease holds it"
        clock.now += LEASE
        counts = await deliver_due(harness.runtime.db, harness.runtime.secret_box(), clock=clock)
    assert counts["succeeded"] == 1 and hook.ids() == [message_id]


async def test_two_deliverers_never_send_one_message_twice(
    server_harness: Harness,
) -> None:
    h = server_harness
    with receiver() as hook:
        ids = [await _message(h, hook.url, {"n": n}) for n in range(120)]
        dbs = [Database(h.db.url) for _ in range(2)]
        try:
            results = await asyncio.gather(
                *(deliver_due(db, h.runtime.secret_box(), batch=7, concurrency=4) for db in dbs)
            )
        finally:
            for db in dbs:
                await db.dispose()
    assert sorted(hook.ids()) == sorted(ids), "every message once, none twice"
    assert sum(r["succeeded"] for r in results) == 120
    assert all(r["succeeded"] > 0 for r in results), "both deliverers took a share"


# ---------------------------------------------------------------- the API


async def test_endpoints_show_their_secret_once_and_messages_can_be_resent(
    harness: Harness,
) -> None:
    h = harness
    alice = bearer(await user_token(h.runtime, "alice", Role.operator))
    bob = bearer(await user_token(h.runtime, "bob", Role.operator))
    with receiver() as hook:
        hook.statuses = [500] * 8
        made = await h.client.post(
            "/api/webhooks/endpoints", json={"url": hook.url, "description": "X2C"}, headers=alice
        )
        assert made.status_code == 201
        endpoint = made.json()
        assert endpoint["secret"].startswith("whsec_")
        listed = await h.client.get("/api/webhooks/endpoints", headers=alice)
        assert "whsec_" not in listed.text and listed.json()["total"] == 1
        assert (await h.client.get("/api/webhooks/endpoints", headers=bob)).json()["total"] == 0

        owner = (await add_user(h.runtime, "carol", Role.operator)).id

        async def put(session: AsyncSession) -> str:
            row = await session.get(WebhookEndpoint, endpoint["id"])
            assert row is not None
            message = await enqueue(
                session, endpoints=[row], event_type="test.event", payload={"n": 1}, owner_id=owner
            )
            return message.id

        message_id = await h.runtime.db.run(put)
        await deliver_due(h.runtime.db, h.runtime.secret_box())
        carol = bearer(await user_token(h.runtime, "carol2", Role.admin))
        shown = (await h.client.get(f"/api/webhooks/messages/{message_id}", headers=carol)).json()
        (delivery,) = shown["deliveries"]
        assert delivery["status"] == "pending" and delivery["attempts"][0]["status_code"] == 500
        assert (
            await h.client.get(f"/api/webhooks/messages/{message_id}", headers=alice)
        ).status_code == 404

        hook.statuses = []
        rotated = await h.client.post(
            f"/api/webhooks/endpoints/{endpoint['id']}/secret", headers=alice
        )
        assert rotated.json()["secret"] != endpoint["secret"]
        resent = await h.client.post(f"/api/webhooks/messages/{message_id}/resend", headers=carol)
        assert resent.status_code == 200 and resent.json()["deliveries"][0]["attempt_count"] == 0
        await deliver_due(h.runtime.db, h.runtime.secret_box())
        headers, body = hook.received[-1]
        Webhook(rotated.json()["secret"]).verify(body, headers)
        done = (await h.client.get("/api/webhooks/messages?status=succeeded", headers=carol)).json()
        assert [m["id"] for m in done["items"]] == [message_id]

        gone = await h.client.delete(f"/api/webhooks/endpoints/{endpoint['id']}", headers=alice)
        assert gone.status_code == 204
        refused = await h.client.post(f"/api/webhooks/messages/{message_id}/resend", headers=carol)
        assert refused.status_code == 409
