"""Colour codes only on a terminal: logs and `tallyhub` output piped to a file or read
by another program are plain text."""

from __future__ import annotations

import errno
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.core.test_serve_start import TALLYHUB, serve_env

ESCAPE = "\x1b["
LOG_A_LINE = (
    "import structlog; from tallyhub.core.logging import configure_logging;"
    " configure_logging(json=False); structlog.get_logger('t').warning('seen', n=1)"
)


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}


def test_log_lines_to_a_pipe_have_no_colour_codes() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOG_A_LINE], env=_plain_env(), capture_output=True, text=True
    )
    assert "seen" in done.stdout and "n=1" in done.stdout
    assert ESCAPE not in done.stdout + done.stderr


def _read_all(fd: int) -> bytes:
    """What a terminal's other end was sent, until it closed (EIO on Linux)."""
    written = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            return written
        if not chunk:
            return written
        written += chunk


def test_log_lines_to_a_terminal_are_coloured() -> None:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", LOG_A_LINE], env=_plain_env(), stdout=follower
        )
        os.close(follower)
        written = _read_all(leader)
        assert process.wait(60) == 0
    finally:
        os.close(leader)
    assert b"seen" in written
    assert ESCAPE.encode() in written


def test_cli_output_to_a_file_has_no_colour_codes(tmp_path: Path) -> None:
    env = serve_env(tmp_path)
    out = tmp_path / "out.txt"
    with out.open("w") as file:
        for command in (["db", "upgrade"], ["jobs", "list"], ["demo", "seed"]):
            subprocess.run([TALLYHUB, *command], env=env, stdout=file, stderr=file, check=True)
    text = out.read_text()
    assert "database at head" in text and "demo data ready" in text
    assert ESCAPE not in text
