"""structlog set-up: readable lines in development, JSON lines in production. Colours only
when the lines go to a terminal: a log file or a pipe gets plain text."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import structlog


def wants_colour(stream: TextIO) -> bool:
    """Colour codes for `stream`: on a terminal, unless NO_COLOR is set (no-color.org);
    FORCE_COLOR asks for them anywhere."""
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(*, json: bool, level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level)
    # APScheduler narrates every run at INFO; our own job.finished line says what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # One line per upstream request is the metrics' job; failures are logged by core.upstream.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # structlog's PrintLogger writes to sys.stdout: its lines are coloured if that is a tty.
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=wants_colour(sys.stdout))
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
