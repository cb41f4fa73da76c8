"""Fuzzing: schemathesis over /openapi.json, as an admin, an operator and a desktop client
(its activation code), on SQLite and PostgreSQL. Fails on any 5xx and on any answer that
breaks the document (a status it does not list, another content type, a body that does
not match its schema).

The app is served for real (uvicorn on a loopback port, in a thread of its own) over a
database seeded with a little of everything, so that small ids in paths find rows; each
run fuzzes one operation per test, so a failure names its endpoint, role and database,
with a curl line that reproduces it. Runs are bounded (MAX_EXAMPLES requests per operation,
~2 minutes in all) and reproducible (derandomized: the same requests every time). For a
deeper run: TALLYHUB_FUZZ_EXAMPLES=500 pytest tests/fuzz.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import APIOperation, BaseSchema

from tallyhub.app import create_app
from tallyhub.callcenter import simulator as callcenter_simulator
from tallyhub.core.auth import Role
from tallyhub.core.crypto import generate_key
from tallyhub.core.simulation import running
from tallyhub.douplus import simulator
from tests.clicks.helpers import click
from tests.conftest import _harness, _prepare, _Servers, make_settings
from tests.factories import bearer, make_campaign, make_group, user_token
from tests.leads.helpers import incoming

pytestmark = pytest.mark.fuzz

# Requests per operation and run: what keeps all six runs within a few minutes.
MAX_EXAMPLES = int(os.environ.get("TALLYHUB_FUZZ_EXAMPLES", "25"))
ROLES = ("admin", "operator", "client")
DATABASES = ("sqlite", "postgresql")
FUZZ_KEY = generate_key()


def _document_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the document (it needs no database), the
    deletes last: the other operations of a run find the seeded rows still there."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(make_settings("sqlite+aiosqlite://", Path(tmp)), scheduler=False)
        paths = app.openapi()["paths"]
    operations = [(method.upper(), path) for path, item in paths.items() for method in item]
    return sorted(operations, key=lambda operation: operation[0] == "DELETE")


def _fuzzed_by(role: str, path: str) -> bool:
    """The desktop client has its own endpoints, and only those; the admin run sends them
    made-up codes too (401, then 429)."""
    client_path = path.startswith("/api/client/")
    return client_path if role == "client" else role == "admin" or not client_path


OPERATIONS = _document_operations()
CASES = [
    pytest.param((db, role), method, path, id=f"{db}-{role}-{method} {path}")
    for db in DATABASES
    for role in ROLES
    for method, path in OPERATIONS
    if _fuzzed_by(role, path)
]


@dataclass
class Target:
    """An app served over a seeded database, its document, and the role's headers."""

    schema: BaseSchema
    headers: dict[str, str]


async def _seed(h: Any, sim_url: str) -> dict[str, dict[str, str]]:
    """Users, groups with accounts and a lead, campaigns with a click, a synced DOU+
    account each; each role's headers."""
    admin = bearer(await user_token(h.runtime, "admin", Role.admin))
    operator = bearer(await user_token(h.runtime, "operator", Role.operator))
    await user_token(h.runtime, "viewer", Role.viewer)
    groups = []
    async with httpx.AsyncClient(base_url=sim_url) as upstream:
        douplus = (await upstream.get("/__sim/accounts")).json()
    for owner, account in zip((admin, operator), douplus, strict=True):
        group = await make_group(h, owner, accounts=["acc-1", "acc-2"], remark="fuzz")
        assert (await incoming(h, group, "acc-1", "U-lead")).status_code == 200
        campaign = await make_campaign(h, owner)
        assert (await click(h, cid=campaign["id"], uid="U-click")).status_code == 302
        groups.append(group)
        tokens = {k: account[k] for k in ("aweme_sec_uid", "access_token", "refresh_token")}
        connected = await h.client.post(
            "/api/douplus/accounts", json={**tokens, "expires_in": 86400}, headers=owner
        )
        assert connected.status_code == 201, connected.text
    await _douplus_synced(h, admin)
    return {
        "admin": admin,
        "operator": operator,
        "client": {"X-Activation-Code": groups[1]["activation_code"]},
    }


async def _douplus_synced(h: Any, headers: dict[str, str]) -> None:
    """The syncs the connections started have ended (before the seeding app stops)."""
    for _ in range(600):
        accounts = (await h.client.get("/api/douplus/accounts", headers=headers)).json()
        if all(a["sync_requested"] is None for a in accounts["items"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the DOU+ accounts did not sync")


@contextmanager
def served(app: Any) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread (schemathesis calls
    synchronously); its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


class Runs:
    """One run (database, role) at a time: seeded and served when its first test asks for
    it, stopped when a test of the next run does (CASES go run by run)."""

    def __init__(self, servers: _Servers, tmp: pytest.TempPathFactory) -> None:
        self.servers = servers
        self.tmp = tmp
        self.key: tuple[str, str] | None = None
        self.current: Target | None = None
        self.stack = ExitStack()

    async def target(self, key: tuple[str, str]) -> Target:
        if self.key != key or self.current is None:
            self.close()
            self.current = await self._start(*key)
            self.key = key
        return self.current

    async def _start(self, db_name: str, role: str) -> Target:
        db = await _prepare(self.servers, db_name)
        # Each upstream is its simulator; seeding and serving share one encryption key.
        sim = simulator.create_app(
            seed=5, accounts=2, orders_per_account=20, app_id="fuzz", app_secret="fuzz"
        )
        sim_url = self.stack.enter_context(running(sim))
        vendor = callcenter_simulator.create_app(records_per_day=300, api_key="fuzz")
        vendor_url = self.stack.enter_context(running(vendor))
        upstream = {"rate_per_second": 1000, "rate_burst": 1000, "backoff_max_seconds": 0.05}
        overrides = {
            "encryption_keys": FUZZ_KEY,
            "douplus": {
                "base_url": sim_url,
                "app_id": "fuzz",
                "app_secret": "fuzz",
                "upstream": upstream,
            },
            "callcenter": {"base_url": vendor_url, "api_key": "fuzz", "upstream": upstream},
        }
        async with _harness(db, self.tmp.mktemp("seed"), **overrides) as h:
            headers = (await _seed(h, sim_url))[role]
        settings = make_settings(db.url, self.tmp.mktemp("fuzz"), **overrides)
        app = create_app(settings, scheduler=False)
        base_url = self.stack.enter_context(served(app))
        config = SchemathesisConfig.from_dict({"request-timeout": 30, **CHECKS})
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
        return Target(schema, headers)

    def close(self) -> None:
        self.stack.close()
        self.key = self.current = None


@pytest.fixture(scope="module")
def runs(servers: _Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    pool = Runs(servers, tmp_path_factory)
    yield pool
    pool.close()


@pytest.fixture
async def target(request: pytest.FixtureRequest, runs: Runs) -> Target:
    """The run's served app (`request.param`: database, role)."""
    return await runs.target(request.param)


CHECKS = {
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
    }
}


def _cases(operation: APIOperation) -> st.SearchStrategy[Any]:
    """Valid input, and (where there is input to get wrong) invalid input."""
    valid = operation.as_strategy(GenerationMode.POSITIVE)
    definition = operation.definition.raw
    if not definition.get("parameters") and "requestBody" not in definition:
        return valid
    return st.one_of(valid, operation.as_strategy(GenerationMode.NEGATIVE))


@pytest.mark.parametrize(("target", "method", "path"), CASES, indirect=["target"])
def test_operation(target: Target, method: str, path: str) -> None:
    """Every answer is no 5xx, and is what the document says (status, type, schema)."""

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same requests on every run
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=_cases(target.schema[path][method]))
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=target.headers)

    fuzz()
