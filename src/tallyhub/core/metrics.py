"""Prometheus metrics shared by the kit; domains define their own next to their code."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "HTTP request duration", ["method", "route"]
)
DB_RETRIES = Counter("db_retries_total", "Transactions retried after a retryable error", ["kind"])
AFTER_COMMIT_ERRORS = Counter("after_commit_errors_total", "After-commit callbacks that failed")

BATCH_QUEUE_DEPTH = Gauge(
    "batch_queue_depth", "Events waiting in a group-commit writer", ["writer"]
)
BATCH_SIZE = Histogram(
    "batch_size",
    "Events per committed batch",
    ["writer"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
BATCH_COMMIT_SECONDS = Histogram(
    "batch_commit_seconds",
    "Time to apply and commit one batch",
    ["writer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_EVENT_ERRORS = Counter(
    "batch_event_errors_total", "Events a writer could not apply", ["writer", "error_type"]
)
BATCH_SPLITS = Counter("batch_splits_total", "Batches split to isolate a failing event", ["writer"])

DB_POOL = Gauge("db_pool_connections", "Database connection pool", ["state"])

JOB_RUNS = Counter("job_runs_total", "Job runs finished", ["job", "status"])
WS_CONNECTIONS = Gauge("ws_connections", "Open WebSocket connections")
AUTH_FAILURES = Counter("auth_failures_total", "Rejected credentials", ["kind"])
PASSWORD_CHECKS = Counter(
    "auth_password_checks_total", "Passwords checked against a hash (~0.1 s of CPU each)"
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


WS_DROPPED = Counter("ws_messages_dropped_total", "Realtime messages dropped for slow clients")
REALTIME_ERRORS = Counter("realtime_errors_total", "Realtime transport failures")
READY_FAILURES = Counter("readiness_failures_total", "Readiness checks that found the DB down")
POOL_TIMEOUTS = Counter("db_pool_timeouts_total", "Requests refused: no pooled connection in time")
