"""The access log: one info line per request (method, path, status, duration in ms),
never the query string; the hot paths only when TALLYHUB_HTTP__ACCESS_LOG_HOT_PATHS asks;
none at all with TALLYHUB_HTTP__ACCESS_LOG=false."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.core.test_serve_start import serve_env, served

LINE = re.compile(r"http\.request\s+duration_ms=([\d.]+) method=(\S+) path=(\S+) status=(\d+)")


def _requests(url: str) -> None:
    """A page of the API with a token in its query, a refused click, the health check."""
    assert httpx.get(f"{url}/api/leads/groups?token=secret-token-42").status_code == 401
    assert httpx.get(f"{url}/__track?cid=1&to=https%3A%2F%2Fexample.com%2F").status_code == 404
    assert httpx.post(f"{url}/api/client/incoming", json={}).status_code == 401
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_each_request_is_one_line_without_its_query(tmp_path: Path) -> None:
    with served(serve_env(tmp_path)) as server:
        _requests(server.url)
        output = server.stop()
    logged = [(m[2], m[3], m[4]) for m in LINE.finditer(output)]
    assert ("GET", "/healthz", "200") in logged
    assert ("GET", "/api/leads/groups", "401") in logged
    assert all(float(m[1]) >= 0 for m in LINE.finditer(output))
    assert "secret-token-42" not in output
    # The hot paths are not logged by default: the click, the desktop client's lead.
    assert not [entry for entry in logged if entry[1] in ("/__track", "/api/client/incoming")]


def test_hot_paths_are_logged_when_asked_as_json(tmp_path: Path) -> None:
    env = serve_env(tmp_path, TALLYHUB_HTTP__ACCESS_LOG_HOT_PATHS="true", TALLYHUB_LOG_JSON="true")
    with served(env) as server:
        _requests(server.url)
        output = server.stop()
    entries = [json.loads(line) for line in output.splitlines() if '"http.request"' in line]
    logged = {(e["method"], e["path"], e["status"]) for e in entries}
    assert {
        ("GET", "/__track", 404),
        ("POST", "/api/client/incoming", 401),
        ("GET", "/healthz", 200),
        ("GET", "/api/leads/groups", 401),
    } <= logged
    for entry in entries:
        assert entry["level"] == "info"
        assert isinstance(entry["duration_ms"], float | int) and entry["duration_ms"] >= 0
    assert "secret-token-42" not in output


def test_the_access_log_can_be_turned_off(tmp_path: Path) -> None:
    env = serve_env(
        tmp_path, TALLYHUB_HTTP__ACCESS_LOG="false", TALLYHUB_HTTP__ACCESS_LOG_HOT_PATHS="true"
    )
    with served(env) as server:
        _requests(server.url)
        output = server.stop()
    assert "http.request" not in output
