"""Browser tests of the dashboard: a real `tallyhub serve` on SQLite with `make run`'s demo
data (the DOU+ simulator inside serve too, its accounts connected and synced in the
background; the video simulator and a partner's receiver too, tasks seeded and their days
scanned before serve answers), driven by Playwright in Debian's Chromium (browser
downloads are not available here; `.ci/run` installs the `chromium` package). Screenshots
go to var/screenshots/ for a person to look at; they are not committed.

Users: `demo` (admin, from the demo data), and `viewer` / `operator` made with the CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    BrowserType,
    Page,
    Playwright,
    sync_playwright,
)

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
PASSWORD = "secret-pass"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def _chromium() -> str | None:
    configured = os.environ.get("TALLYHUB_TEST_CHROMIUM")
    if configured:
        return configured
    return next((path for path in CHROMIUM_CANDIDATES if Path(path).exists()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str) -> str:
        tallyhub = str(Path(sys.executable).parent / "tallyhub")
        done = subprocess.run(
            [tallyhub, *args], env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def client(self, username: str = "demo", password: str = "demo") -> httpx.Client:
        """An API client signed in with a bearer token, as a script would be."""
        token = httpx.post(
            f"{self.url}/api/auth/token", data={"username": username, "password": password}
        ).json()["access_token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"})

    def douplus_simulator(self) -> str:
        """The address of the DOU+ simulator serve started (its `/__sim/` controls)."""
        found = re.search(r"douplus\.simulator_started\s+url=(\S+)", self.log.read_text())
        assert found, f"no DOU+ simulator in the serve log: {self.log.read_text()[-2000:]}"
        return found.group(1)

    def douplus_synced(self) -> None:
        """Wait until no DOU+ sync runs and every account's figures have been synced once
        (serve starts a full sync of each simulated account in the background)."""
        deadline = time.monotonic() + 60
        with self.client() as api:
            while time.monotonic() < deadline:
                status = api.get("/api/douplus/sync/status").json()
                synced = all(
                    any(s["stream"] == "stats" and s["last_success_at"] for s in a["streams"])
                    for a in status["accounts"]
                )
                if status["accounts"] and synced and not status["running"]:
                    return
                time.sleep(0.2)
        raise AssertionError(f"DOU+ not synced after 60 s: {status}")

    def callcenter_synced(self) -> date:
        """Wait until serve's first call-center syncs (the last ten days and today, run
        through the jobs in the background, as `make run` does) have filled both caches of
        each of those days; the server's today."""
        deadline = time.monotonic() + 60
        with self.client() as api:
            server_zone = ZoneInfo(api.get("/api/jobs").json()["items"][0]["timezone"])
            days: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                today = datetime.now(server_zone).date()
                span = {"from": str(today - timedelta(days=10)), "to": str(today)}
                days = api.get("/api/stats/daily", params=span).json()["data"]
                if len(days) == 11 and all(
                    d["grade_9"] is not None and d["total_tasks"] is not None for d in days
                ):
                    return today
                time.sleep(0.2)
        raise AssertionError(f"call-center days not synced after 60 s: {days}")

    def deliver_webhooks(self) -> dict[str, Any]:
        """Send the webhook deliveries that are due, as the scheduler's `webhooks.deliver`
        would (it is off here): the job run by hand; what it did."""
        with self.client() as api:
            run = api.post("/api/jobs/webhooks.deliver/run").json()
        assert run["status"] == "succeeded", run
        return run["counts"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("live")
    port = _free_port()
    env = {
        **os.environ,
        "TALLYHUB_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/demo.db",
        "TALLYHUB_VAR_DIR": str(folder / "var"),
        "TALLYHUB_PORT": str(port),
        "TALLYHUB_HOST": "127.0.0.1",
        "TALLYHUB_SCHEDULER": "off",
        # As `make run`: the DOU+ simulator in serve, so the DOU+ pages fill by themselves.
        "TALLYHUB_DOUPLUS__SIMULATOR": "true",
        # As `make run`: the call-center simulator in serve, the last ten days and today
        # synced in the background through the jobs.
        "TALLYHUB_CALLCENTER__SIMULATOR": "true",
        # As `make run`: tasks, completions and scanned days with callbacks to a receiver.
        "TALLYHUB_TASKSTATS__SIMULATOR": "true",
    }
    tallyhub = str(Path(sys.executable).parent / "tallyhub")
    for step in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run([tallyhub, *step], env=env, check=True, capture_output=True)
    log = (folder / "serve.log").open("wb")
    process = subprocess.Popen([tallyhub, "serve"], env=env, stdout=log, stderr=log)
    server = LiveServer(f"http://127.0.0.1:{port}", env, process, folder / "serve.log")
    try:
        _wait_ready(server, folder / "serve.log")
        for role in ("viewer", "operator"):
            server.cli(
                "users", "create", "--username", role, "--role", role, "--password", PASSWORD
            )
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_ready(server: LiveServer, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.process.poll() is None, f"serve exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{server.url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"serve did not become ready: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    return live_server.url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    executable = _chromium()
    if executable is None:
        message = "no Chromium (apt-get install chromium, or set TALLYHUB_TEST_CHROMIUM)"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: a missing browser is a failure)", pytrace=False)
        pytest.skip(message)  # only outside CI: with CI=true the line above fails instead
    return {**browser_type_launch_args, "executable_path": executable}


# Playwright for this package only (pytest-playwright keeps it for the session): its sync
# API keeps an event loop running in the main thread until it stops, and the asyncio tests
# that run after the browser tests in the same xdist worker could not start theirs.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    chosen: BrowserType = getattr(playwright, browser_name)
    return chosen


@pytest.fixture(scope="package")
def browser(
    browser_type: BrowserType, browser_type_launch_args: dict[str, Any]
) -> Iterator[Browser]:
    launched = browser_type.launch(**browser_type_launch_args)
    yield launched
    launched.close()


@pytest.fixture(scope="package")
def browser_context_args(base_url: str) -> dict[str, Any]:
    # Package scope too, and no device or video options (pytest-playwright's own reads them
    # from its session-long Playwright). English unless a test asks otherwise; the viewer's
    # zone is fixed so times are stable.
    return {"base_url": base_url, "locale": "en-US", "timezone_id": "Asia/Shanghai"}


def percent(rate: float | Decimal | str) -> str:
    """A rate as the pages write it (Intl.NumberFormat, one decimal): the number's shortest
    decimal form rounded half away from zero, so 0.4425 reads 44.3% where Python's own
    formatting (half to even, or the binary value) gives 44.2%."""
    shortest = Decimal(repr(float(rate)))
    return f"{(shortest * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


def sign_in(page: Page, username: str = "demo", password: str = "demo", path: str = "/") -> None:
    page.goto(path)
    page.wait_for_url("**/login**")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#login button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)


def context_for(
    browser: Browser,
    base_url: str,
    username: str = "demo",
    password: str = "demo",
    *,
    language: str | None = None,
    **args: Any,
) -> BrowserContext:
    """A new signed-in browser context (its own cookies); with `language`, a browser of
    that locale whose switch chose it."""
    options = {"locale": language or "en-US", "timezone_id": "Asia/Shanghai", **args}
    context = browser.new_context(base_url=base_url, **options)
    if language:
        context.add_cookies([{"name": "tallyhub_lang", "value": language, "url": base_url}])
    sign_in(context.new_page(), username, password)
    return context


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="session", autouse=True)
def _fresh_screenshots() -> None:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
