"""The server-rendered dashboard: one page that signs in, lists lead groups with their
figures (updated live over the WebSocket), click campaigns (polled every 5 s) and the jobs
with their last run (polled every 30 s)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

_TEMPLATES = Path(__file__).parent / "templates"

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    return HTMLResponse((_TEMPLATES / "dashboard.html").read_text(encoding="utf-8"))
