"""DOU+ ad orders on Douyin: accounts, order and figures sync from the Ocean Engine open
API, 5-minute windows, the per-video rollup and a fast query API (seed 001)."""

from tallyhub.core.crypto import EncryptedColumns
from tallyhub.core.domain import Domain
from tallyhub.douplus import api, config, jobs, models, simulator, wiring

DOMAIN = Domain(
    name=config.NAME,
    settings_model=config.DouplusSettings,
    models=models,
    routers=api.routers,
    error_answers=api.error_answers,
    lifespan=wiring.lifespan,
    jobs=jobs.JOBS,
    encrypted_columns=(EncryptedColumns(models.DouyinAccount, ("access_token", "refresh_token")),),
    simulator=lambda seed: simulator.create_app(seed=seed),
    sync=jobs.sync_by_hand,
    sync_modes=jobs.SYNC_MODES,
)
