"""Lead intake: LINE account groups, incoming leads, dedup, daily counts (seed 000)."""

from tallyhub.core.domain import Domain
from tallyhub.leads import api, config, demo, jobs, models, wiring

DOMAIN = Domain(
    name=config.NAME,
    settings_model=config.LeadsSettings,
    models=models,
    routers=api.routers,
    hot_paths=api.hot_paths,
    error_answers=api.error_answers,
    lifespan=wiring.lifespan,
    jobs=jobs.JOBS,
    seed_demo=demo.seed,
)
