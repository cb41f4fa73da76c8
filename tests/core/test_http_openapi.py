"""The OpenAPI document lists the error answers each operation gives, derived from its
route (auth dependency, path parameters, parameters and body, rate limits, conflicts),
each with the error envelope the edge really answers as its schema."""

from __future__ import annotations

from typing import Any

import pytest

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import HOST, bearer, make_campaign, user_token

ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

EXPECTED = [
    # public, with nothing to go wrong but the database
    ("get", "/healthz", set()),
    ("get", "/readyz", {"503"}),
    ("get", "/metrics", {"401"}),
    # signed in: 401; a path parameter: 404; parameters: 422; the database: 503
    ("get", "/api/auth/me", {"401", "503"}),
    ("get", "/api/leads/groups", {"401", "422", "503"}),
    ("get", "/api/leads/groups/{group_id}", {"401", "404", "422", "503"}),
    # writers only: 403; a body: 413
    ("post", "/api/leads/groups", {"401", "403", "413", "422", "503"}),
    ("delete", "/api/leads/groups/{group_id}", {"401", "403", "404", "422", "503"}),
    ("post", "/api/clicks/links", {"400", "401", "403", "404", "413", "422", "503"}),
    ("get", "/api/clicks/campaigns/{campaign_id}/daily", {"401", "404", "422", "503"}),
    # admin only, and a run that may find its slot taken: 409
    ("post", "/api/jobs/{name}/run", {"401", "403", "404", "409", "422", "503"}),
    # sign-in and the desktop client's activation code are rate-limited: 429
    ("post", "/api/auth/token", {"401", "413", "422", "429", "503"}),
    ("post", "/api/client/login", {"401", "403", "422", "429", "503"}),
    ("put", "/api/client/accounts", {"400", "401", "403", "409", "413", "422", "429", "503"}),
    ("post", "/api/client/incoming", {"401", "403", "404", "413", "422", "429"}),
    ("post", "/api/client/incoming/batch", {"401", "403", "413", "422", "429", "503"}),
    # the click: refused (400), no such campaign (404), campaigns not readable now (503)
    ("get", "/__track", {"400", "404", "503"}),
]


EXACT = {"/healthz", "/readyz", "/metrics", "/api/auth/me"}


@pytest.fixture
async def document(harness: Harness) -> dict[str, Any]:
    response = await harness.client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "path", "errors"), EXPECTED)
async def test_each_operation_documents_its_error_answers(
    document: dict[str, Any], method: str, path: str, errors: set[str]
) -> None:
    responses = document["paths"][path][method]["responses"]
    documented = {status for status in responses if int(status) >= 400}
    assert documented >= errors
    if path in EXACT:  # and nothing more: core's own routes, whose answers this knows
        assert documented == errors
    for status in errors:
        assert responses[status]["content"] == ENVELOPE, (path, status)
        assert responses[status]["description"]


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
async def test_every_error_answer_has_the_envelope_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 shape, which we never answer
    assert schemas["Error"]["required"] == ["error"]
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message"]
    errors = [
        (path, method, status, response)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]
    assert len(errors) > 100
    # The call-center API keeps the seed's `{"success": false, "error": "…"}` for the
    # answers it makes itself (not synced, vendor failed, fewer records); every other
    # error, its 401/403/422 included, has the envelope.
    seeds = {"application/json": {"schema": {"$ref": "#/components/schemas/Failure"}}}
    for path, method, status, response in errors:
        own = path.startswith("/api/stats/") and status in ("404", "409", "502")
        assert response["content"] == (seeds if own else ENVELOPE), (method, path, status)


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
async def test_the_answers_are_what_the_document_says(harness: Harness) -> None:
    """What the edge answers for the documented statuses has the documented shape."""
    viewer = bearer(await user_token(harness.runtime, "viewer", Role.viewer))
    answers = {
        401: await harness.client.get("/api/leads/groups"),
        403: await harness.client.post("/api/leads/groups", json={}, headers=viewer),
        404: await harness.client.get("/api/leads/groups/12345", headers=viewer),
        422: await harness.client.get("/api/leads/groups/x", headers=viewer),
    }
    for status, response in answers.items():
        assert response.status_code == status
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
        assert set(response.json()) == {"error"}


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
async def test_metrics_are_documented_as_the_text_they_are(document: dict[str, Any]) -> None:
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
async def test_the_click_redirect_is_described(document: dict[str, Any]) -> None:
    """/__track is answered ahead of FastAPI, and described all the same."""
    operation = document["paths"]["/__track"]["get"]
    assert operation["summary"] == "Record a click on a tracked link and redirect to its target"
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"cid", "to", "uid", "type", "src", "tag", "sig"}
    assert {name for name, p in parameters.items() if p["required"]} == {"cid", "to"}
    assert all(p["in"] == "query" and p["description"] for p in parameters.values())
    assert "image_click" in parameters["type"]["schema"]["enum"]
    redirect = operation["responses"]["302"]
    assert "Location" in redirect["headers"] and "content" not in redirect
    assert "200" not in operation["responses"]


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
async def test_the_click_answers_are_what_the_document_says(harness: Harness) -> None:
    admin = bearer(await user_token(harness.runtime, "admin", Role.admin))
    campaign = await make_campaign(harness, admin)
    target = f"https://{HOST}/spring"
    redirect = await harness.client.get("/__track", params={"cid": campaign["id"], "to": target})
    assert (redirect.status_code, redirect.headers["location"]) == (302, target)
    answers = {
        ("bad_parameter", 400): {"cid": "x", "to": target},
        ("host_not_allowed", 400): {"cid": campaign["id"], "to": "https://elsewhere.example/"},
        ("invalid_target", 400): {"cid": campaign["id"], "to": "javascript:alert(1)"},
        ("unknown_campaign", 404): {"cid": 2_000_000_000, "to": target},
    }
    for (code, status), params in answers.items():
        response = await harness.client.get("/__track", params=params)
        assert response.status_code == status, params
        assert response.json()["error"]["code"] == code
    other_method = await harness.client.post("/__track", params={"cid": 1, "to": target})
    assert other_method.status_code == 405
    assert other_method.json()["error"]["code"] == "method_not_allowed"
