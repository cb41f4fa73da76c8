"""`make` on a fresh machine: a python that is too old, or has no venv module (Debian's
python3-venv not installed), stops with a message saying what to install; a .venv left
half made by such a failure is made again, not used. Run on a copy of the Makefile with a
stand-in `PY`, so that nothing is installed for real."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A stand-in for python3: `-c` (the Makefile's version question) answers VERSION; `-m venv
# DIR` does what VENV says: "fails" as Debian's python3 without python3-venv does (a bin/
# with a python but no pip left behind), or "works", making a bin/pip and a bin/pytest that
# write down how they were called.
FAKE_PY = """#!/bin/sh
if [ "$1" = -c ]; then echo {version}; exit 0; fi
if [ "$1" = -m ] && [ "$2" = venv ]; then
  mkdir -p "$3/bin" && ln -s /bin/true "$3/bin/python"
  if [ {venv} = fails ]; then
    echo "The virtual environment was not created successfully because ensurepip is not" \\
      "available." >&2
    exit 1
  fi
  for tool in pip pytest; do
    printf '#!/bin/sh\\necho "%s $*" >> {calls}\\n' "$tool" > "$3/bin/$tool"
    chmod +x "$3/bin/$tool"
  done
  exit 0
fi
exit 2
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Makefile and a pyproject.toml, in a folder of their own."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(ROOT / "Makefile", folder / "Makefile")
    (folder / "pyproject.toml").write_text('[project]\nname = "x"\n')
    return folder


def _python(folder: Path, version: str, venv: str) -> Path:
    path = folder.parent / f"python-{version}-{venv}"
    calls = folder.parent / "calls.log"
    path.write_text(FAKE_PY.format(version=version, venv=venv, calls=calls))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _make(folder: Path, target: str, python: Path | str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(folder), target, f"PY={python}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _calls(folder: Path) -> list[str]:
    log = folder.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_python_without_venv_says_what_to_install(project: Path) -> None:
    done = _make(project, "test", _python(project, "3.11", "fails"))
    assert done.returncode != 0
    assert "apt-get install python3-venv (or python3.11-venv)" in done.stderr
    assert "then run make again" in done.stderr
    assert not (project / ".venv").exists()  # nothing half made is left to trip on
    assert _calls(project) == []  # stopped before pip or pytest


def test_a_python_older_than_3_11_is_refused_with_a_message(project: Path) -> None:
    done = _make(project, "run", _python(project, "3.9", "works"))
    assert done.returncode != 0
    assert "TallyHub needs Python 3.11 or newer, and" in done.stderr
    assert "is 3.9" in done.stderr
    assert not (project / ".venv").exists()


def test_a_missing_python_is_named(project: Path) -> None:
    done = _make(project, "venv", project / "no-such-python3")
    assert done.returncode != 0
    assert "no-such-python3 not found" in done.stderr
    assert "apt-get install python3 python3-venv" in done.stderr


def test_a_half_made_venv_is_made_again(project: Path) -> None:
    # What a first `make test` left when python3-venv was missing: a python, no pip.
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to("/bin/true")
    (project / ".venv" / "left-over").write_text("from the failed attempt")
    python = _python(project, "3.12", "works")

    done = _make(project, "test", python)
    assert done.returncode == 0, done.stderr
    assert ".venv has no bin/pip (left by a failed attempt): making it again" in done.stdout
    assert "No such file or directory" not in done.stderr
    assert not (project / ".venv" / "left-over").exists()
    assert _calls(project) == [
        "pip install -q --upgrade pip",
        "pip install -q -e .[dev]",
        "pytest -q -n 2 --dist loadgroup",
    ]

    # Made once: the next run goes straight to the tests.
    again = _make(project, "test", python)
    assert again.returncode == 0, again.stderr
    assert "making it again" not in again.stdout
    assert _calls(project)[3:] == ["pytest -q -n 2 --dist loadgroup"]
