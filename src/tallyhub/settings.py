"""The whole configuration: core's settings (core/config.py) with each domain's section
nested under its name (`TALLYHUB_CLICKS__DEDUP_WINDOW_MS`), assembled from the domains."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import Field, create_model

from tallyhub.core.config import CoreSettings
from tallyhub.domains import DOMAINS


def _assemble() -> type[CoreSettings]:
    sections: dict[str, Any] = {
        domain.name: (domain.settings_model, Field(default_factory=domain.settings_model))
        for domain in DOMAINS
    }
    return create_model("Settings", __base__=CoreSettings, __module__=__name__, **sections)


Settings = _assemble()


@lru_cache
def get_settings() -> CoreSettings:
    return Settings()


def serving_defaults(settings: CoreSettings, workers: int) -> dict[str, str]:
    """Settings whose best default depends on how many processes `serve` runs, for its
    processes' environment, where the operator left them unset (each domain says which)."""
    defaults: dict[str, str] = {}
    for domain in DOMAINS:
        defaults.update(domain.serving_defaults(settings, workers))
    return defaults
