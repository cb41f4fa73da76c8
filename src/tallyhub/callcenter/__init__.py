"""Outbound call-center statistics: the vendor's task and call-record dimensions synced
into per-day caches on a tiered schedule, served from the caches (seed 003)."""

from tallyhub.callcenter import api, config, jobs, models, simulator, wiring
from tallyhub.core.domain import Domain

DOMAIN = Domain(
    name=config.NAME,
    settings_model=config.CallcenterSettings,
    models=models,
    routers=api.routers,
    error_answers=api.error_answers,
    lifespan=wiring.lifespan,
    jobs=jobs.JOBS,
    simulator=lambda seed, **options: simulator.create_app(seed=seed, **options),
)
