"""Browser tests of the dashboard: a real `tallyhub serve` on SQLite with `make run`'s demo
data, driven by Playwright in Debian's Chromium (browser downloads are not available here;
`.ci/run` installs the `chromium` package). Screenshots go to var/screenshots/ for a person
to look at; they are not committed.

Users: `demo` (admin, from the demo data), and `viewer` / `operator` made with the CLI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

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
    }
    tallyhub = str(Path(sys.executable).parent / "tallyhub")
    for step in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run([tallyhub, *step], env=env, check=True, capture_output=True)
    log = (folder / "serve.log").open("wb")
    process = subprocess.Popen([tallyhub, "serve"], env=env, stdout=log, stderr=log)
    server = LiveServer(f"http://127.0.0.1:{port}", env, process)
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


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    # English unless a test asks otherwise; the viewer's zone is fixed so times are stable.
    return {**browser_context_args, "locale": "en-US", "timezone_id": "Asia/Shanghai"}


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
