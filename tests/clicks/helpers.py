"""Shared steps of the clicks tests, spoken through the HTTP API, and a TCP proxy that
stands between the app and its database server (stopped: the database is down)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from tallyhub.core.jobs.runner import JobRun, JobRunner
from tests.conftest import Harness, TestDatabase
from tests.factories import HOST

TARGET = f"https://{HOST}/sale"  # a link target every campaign made by make_campaign allows
# A person: LINE's in-app browser on an iPhone (httpx's own User-Agent is an HTTP tool's,
# a bot's, whose clicks a campaign keeps out of its counts).
PERSON = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 Safari Line/14.9.0"
)
LINE_PREVIEW = "facebookexternalhit/1.1;line-poker/1.0"  # LINE fetching a link's preview


async def click(
    h: Harness | httpx.AsyncClient,
    *,
    user_agent: str = PERSON,
    referer: str | None = None,
    **params: Any,
) -> httpx.Response:
    """GET /__track with the given parameters (`to` defaults to an allowed target), as a
    person's browser unless `user_agent` says otherwise."""
    params.setdefault("to", TARGET)
    client = h.client if isinstance(h, Harness) else h
    headers = {"User-Agent": user_agent, **({"Referer": referer} if referer else {})}
    return await client.get(
        "/__track", params={k: v for k, v in params.items() if v is not None}, headers=headers
    )


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


DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


async def proxied(db: TestDatabase, port: int = 0) -> tuple[TcpProxy, TestDatabase]:
    """A running proxy to the database server (on `port`, or a free one), and the test
    database reached through it."""
    url = make_url(db.url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or DEFAULT_PORTS[db.name])
    proxy.port = port
    await proxy.start()
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    return proxy, TestDatabase(db.name, through)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the database server until stopped."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass  # the other side went away: the proxy's job is only to stop forwarding
        finally:
            sink.transport.abort()
            self._writers.discard(sink)


async def replay_spool(h: Harness) -> dict[str, int]:
    """Run `clicks.replay_spool` now, as `tallyhub jobs run` does; its counts."""
    run_id = await JobRunner(h.runtime).run("clicks.replay_spool")
    async with h.runtime.db.transaction(readonly=True) as session:
        run = await session.get(JobRun, run_id)
    assert run is not None and run.status == "succeeded", run and run.error
    assert run.counts is not None
    return run.counts
