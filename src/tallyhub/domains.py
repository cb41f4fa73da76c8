"""The one list of domains that the app, the CLI, the settings, the migrations and the job
registry loop over. Adding a domain is its package plus one line here."""

from __future__ import annotations

from tallyhub import callcenter, clicks, douplus, leads, taskstats
from tallyhub.core.domain import Domain
from tallyhub.core.jobs.housekeeping import CORE_JOBS
from tallyhub.core.jobs.registry import REGISTRY
from tallyhub.core.webhooks import on_outcome

DOMAINS: tuple[Domain, ...] = (
    leads.DOMAIN,
    clicks.DOMAIN,
    douplus.DOMAIN,
    taskstats.DOMAIN,
    callcenter.DOMAIN,
)


def register_jobs() -> None:
    """Put core's and every domain's jobs in this process's registry, and their webhook
    outcome handlers in the outbox's (idempotent)."""
    REGISTRY.add(*CORE_JOBS)
    for domain in DOMAINS:
        REGISTRY.add(*domain.jobs)
        for source, handler in domain.webhook_outcomes.items():
            on_outcome(source, handler)
