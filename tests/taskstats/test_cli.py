"""The task-rollup command line as an operator runs it: `tallyhub simulate videos` serves
the video simulator, `tallyhub taskstats scan --date` rolls a day up with a progress bar,
fetching the figures the completions did not bring from it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TALLYHUB = str(Path(sys.executable).parent / "tallyhub")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def videos() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [TALLYHUB, "simulate", "videos", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the simulator stopped"
            try:
                httpx.get(f"{url}/__sim/clock", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_scan_a_day_from_the_command_line(videos: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TALLYHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "TALLYHUB_VAR_DIR": str(tmp_path),
        "TALLYHUB_TASKSTATS__YOUTUBE_BASE_URL": videos,
        "TALLYHUB_TASKSTATS__YOUTUBE_API_KEY": "sim-youtube-key",
        "TALLYHUB_TASKSTATS__TIKHUB_BASE_URL": videos,
        "TALLYHUB_TASKSTATS__TIKHUB_API_KEY": "sim-tikhub-key",
        "NO_COLOR": "1",
    }

    def tallyhub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TALLYHUB, *args], env=env, capture_output=True, text=True)

    assert tallyhub("db", "upgrade").returncode == 0
    assert (
        tallyhub(
            "users", "create", "--username", "ops", "--password", "pw-12345", "--role", "admin"
        ).returncode
        == 0
    )
    _inputs(env)
    done = tallyhub("taskstats", "scan", "--date", "2024-12-09")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2/2" in done.stdout, "the progress bar's count of tasks"
    assert "'fetched': 3" in done.stdout and "'failed': 0" in done.stdout
    again = tallyhub("taskstats", "scan", "--date", "2024-12-09")
    assert "'fetched': 0" in again.stdout and "'unchanged': 2" in again.stdout
    refused = tallyhub("taskstats", "scan", "--date", "9 Dec")
    assert refused.returncode != 0 and "YYYY-MM-DD" in refused.stdout + refused.stderr


def _inputs(env: dict[str, str]) -> None:
    """Two tasks with completions of 2024-12-09, posted through the API in-process."""
    import asyncio

    from tallyhub.app import create_app
    from tests.conftest import make_settings

    async def post() -> None:
        settings = make_settings(env["TALLYHUB_DATABASE_URL"], Path(env["TALLYHUB_VAR_DIR"]))
        app = create_app(settings, scheduler=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                token = await client.post(
                    "/api/auth/token", data={"username": "ops", "password": "pw-12345"}
                )
                auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
                user = await client.post(
                    "/api/taskstats/users", json={"external_id": "u1"}, headers=auth
                )
                items = []
                for n in range(2):
                    made = await client.post(
                        "/api/taskstats/tasks",
                        json={
                            "project_id": f"550e8400-e29b-41d4-a716-44665544000{n}",
                            "title": f"t{n}",
                            "duration": 3,
                        },
                        headers=auth,
                    )
                    items.append(
                        {
                            "external_id": f"c{n}",
                            "task_id": made.json()["id"],
                            "user_id": user.json()["id"],
                            "platform": "youtube" if n else "douyin",
                            "submission_link": "https://youtu.be/abcdefghijk"
                            if n
                            else "https://www.douyin.com/video/7400000000000000001",
                            "completed_at": "2024-12-09T10:00:00+08:00",
                        }
                    )
                items.append(
                    {
                        **items[0],
                        "external_id": "c2",
                        "platform": "tiktok",
                        "submission_link": "https://www.tiktok.com/@u/video/7300000000000000002",
                    }
                )
                done = await client.post(
                    "/api/taskstats/completions", json={"items": items}, headers=auth
                )
                assert done.json()["created"] == 3, done.text

    asyncio.run(post())
