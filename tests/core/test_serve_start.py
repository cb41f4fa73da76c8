"""`tallyhub serve` at start: it takes its port before anything else and, when the port is
in use, says so in one line and exits 1; it prints its address once it answers requests,
and the demo login only when there is a demo user to sign in with."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

TALLYHUB = str(Path(sys.executable).parent / "tallyhub")
ADDRESS = re.compile(r"^TallyHub on http://127\.0\.0\.1:(\d+)/ ")


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A development `serve` on its own SQLite file, without the scheduler's jobs."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TALLYHUB_") and key not in ("FORCE_COLOR", "NO_COLOR")
    }
    env.update(
        TALLYHUB_ENV="development",
        TALLYHUB_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tallyhub.db'}",
        TALLYHUB_VAR_DIR=str(tmp_path / "var"),
        TALLYHUB_SCHEDULER="off",
        **extra,
    )
    return env


class Served:
    """A `tallyhub serve` process; its output (stdout and stderr) read line by line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")  # the process ended

    def wait_for(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """The first line from now on that matches (a bound of 60 s, not a measure)."""
        while line := self.lines.get(timeout=60):
            self.seen.append(line)
            if found := pattern.search(line):
                return found
        raise AssertionError(f"serve ended without {pattern.pattern!r}: {''.join(self.seen)}")

    def stop(self) -> str:
        """Stop it (as Ctrl-C does) and return everything it printed."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        while line := self.lines.get(timeout=30):
            self.seen.append(line)
        return "".join(self.seen)


@contextmanager
def served(env: dict[str, str], *args: str) -> Iterator[Served]:
    """`tallyhub serve --port 0 ARGS` up and answering: its URL is in `.url`."""
    process = subprocess.Popen(
        [TALLYHUB, "serve", "--host", "127.0.0.1", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Served(process)
    try:
        server.url = f"http://127.0.0.1:{server.wait_for(ADDRESS).group(1)}"
        yield server
    finally:
        if process.poll() is None:
            server.stop()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_and_exit_status_1(
    tmp_path: Path, taken_port: int, workers: str
) -> None:
    address = ["--host", "127.0.0.1", "--port", str(taken_port)]
    done = subprocess.run(
        [TALLYHUB, "serve", *address, "--workers", workers],
        env=serve_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""  # no address printed, for a server that never served
    assert done.stderr.splitlines() == [
        f"port {taken_port} on 127.0.0.1 is in use; set TALLYHUB_PORT or pass --port"
    ]
    assert "Traceback" not in done.stderr
    # Refused before anything else started: not even the migration ran.
    assert not (tmp_path / "tallyhub.db").exists()


def test_the_port_named_by_tallyhub_port_is_the_one_reported(
    tmp_path: Path, taken_port: int
) -> None:
    done = subprocess.run(
        [TALLYHUB, "serve", "--no-migrate"],
        env=serve_env(tmp_path, TALLYHUB_HOST="127.0.0.1", TALLYHUB_PORT=str(taken_port)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"port {taken_port} on 127.0.0.1 is in use; set TALLYHUB_PORT or pass --port\n"
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_address_is_printed_once_requests_are_answered(tmp_path: Path, workers: str) -> None:
    with served(serve_env(tmp_path), "--workers", workers) as server:
        # No retry: the address is printed only once a request gets its answer.
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        output = server.stop()
    assert output.count("TallyHub on http://127.0.0.1:") == 1
    assert "scheduler off: jobs run only by hand" in output


def test_the_demo_login_is_printed_when_the_demo_user_exists(tmp_path: Path) -> None:
    env = serve_env(tmp_path)
    with served(env) as server:
        first = server.stop()
    assert "demo login" not in first  # a new database: no one to sign in as

    create = [TALLYHUB, "users", "create", "--username", "demo", "--password", "demo"]
    subprocess.run([*create, "--role", "admin"], env=env, check=True, timeout=120)
    with served(env) as server:
        second = server.stop()
    assert "demo login: demo / demo" in second


def test_no_demo_login_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    # Not migrated: no users table to look in. It serves all the same.
    with served(serve_env(tmp_path), "--no-migrate") as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        output = server.stop()
    assert "demo login" not in output
    assert "Traceback" not in output
