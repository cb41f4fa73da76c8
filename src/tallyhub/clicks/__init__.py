"""Click tracking: `/__track` with exact counters and tag sets under load (seed 004)."""

from tallyhub.clicks import api, config, demo, jobs, models, wiring
from tallyhub.core.domain import Domain

DOMAIN = Domain(
    name=config.NAME,
    settings_model=config.ClicksSettings,
    models=models,
    routers=api.routers,
    hot_paths=api.hot_paths,
    error_answers=api.error_answers,
    first_routes=api.first_routes,
    lifespan=wiring.lifespan,
    jobs=jobs.JOBS,
    seed_demo=demo.seed,
    serving_defaults=config.serving_defaults,
)
