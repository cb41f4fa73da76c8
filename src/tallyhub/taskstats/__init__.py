"""Promotion tasks completed on YouTube, TikTok and Douyin: completions in, a nightly
rollup per task and day, and signed callbacks to the partner (seed 002)."""

from tallyhub.core.domain import Domain
from tallyhub.taskstats import api, config, jobs, models, service, simulator, wiring

DOMAIN = Domain(
    name=config.NAME,
    settings_model=config.TaskstatsSettings,
    models=models,
    routers=api.routers,
    error_answers=api.error_answers,
    lifespan=wiring.lifespan,
    jobs=jobs.JOBS,
    webhook_outcomes={service.SOURCE: service.follow_delivery},
    commands=jobs.commands,
    simulator=lambda seed: simulator.create_app(seed=seed),
    simulator_name="videos",
)
