"""Settings of the clicks domain: `TALLYHUB_CLICKS__…`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from tallyhub.core.config import BatchSettings, CoreSettings, section

NAME = "clicks"


class ClickSpoolSettings(BaseModel):
    """The durable local spool for clicks the database cannot take right now."""

    flush_ms: float = 5.0  # appends are fsynced together at most this often
    rotate_seconds: float = 5.0  # a segment older than this is closed for replay
    breaker_seconds: float = 5.0  # after a database failure, spool directly this long
    replay_chunk: int = Field(500, ge=1, le=5000)
    # Each serving process replays its own spool this often (a loop of its own, whatever
    # the scheduler: the spool is in this host's var/, which no other process reads).
    replay_seconds: float = Field(10.0, gt=0)


class ClickBatchSettings(BatchSettings):
    # A click batch on PostgreSQL is one round trip (clicks/service/one_statement.py), so
    # gathering for 1 ms rather than 2 pays. Measured side by side (64 connections, 10 s
    # runs, 1 ms against 2 ms): 2 workers +3 to +17 % clicks/s in 4 pairs, 1 worker +5
    # and +32 % in 2 pairs.
    max_wait_ms: float = 1.0
    # Two batches in flight: while one commits, the process answers the other's clicks
    # and gathers the next, so its event loop no longer idles on each commit. Batches of
    # up to 32 keep the two alike in size. One process, 64 connections, measured side by
    # side: 7,947 clicks/s against 6,470 with one writer of 500 (+23 %, bench/RESULTS.md).
    # Several processes already overlap their commits: `serve --workers N` gives each one
    # writer (`serving_defaults`); two each measured −6 % with two processes.
    concurrency: int = 2

    @model_validator(mode="before")
    @classmethod
    def _batch_per_writer(cls, data: Any) -> Any:
        """Unless set, a batch holds up to 32 clicks with several writers, 500 with one."""
        if isinstance(data, dict) and data.get("max_batch") is None:
            several = int(data.get("concurrency", cls.model_fields["concurrency"].default)) > 1
            data = {**data, "max_batch": 32 if several else 500}
        return data


class ClicksSettings(BaseModel):
    dedup_window_ms: int = 1000
    batching: ClickBatchSettings = Field(default_factory=ClickBatchSettings)
    commit_timeout_ms: float = 2000.0  # longer than this, the click is spooled instead
    campaign_cache_seconds: float = 10.0
    # A click of a campaign this process has not loaded yet waits at most this long for
    # it (bounded further by the commit timeout); then the snapshot's settings, or a 503.
    campaign_load_timeout_ms: float = Field(1000.0, gt=0)
    spool: ClickSpoolSettings = Field(default_factory=ClickSpoolSettings)
    public_base_url: str | None = None  # base of signed links; default: the request's
    bare_route: bool = False  # mount /__bare302 (records nothing), for the benchmark
    recalibration_chunk: int = 20  # campaigns per recalibration transaction
    # Tell bots from people and break clicks down by device, OS, browser and referrer
    # (service/agents.py). Off: every click counts, as a person's, and moves no breakdown.
    classify_agents: bool = True
    # Each serving process folds the batches' breakdown deltas into the breakdown rows
    # this often (a loop of its own, whatever the scheduler; clicks.fold_breakdowns too).
    breakdown_fold_seconds: float = Field(5.0, gt=0)


def clicks_settings(settings: CoreSettings) -> ClicksSettings:
    return section(settings, NAME, ClicksSettings)


def serving_defaults(settings: CoreSettings, workers: int) -> dict[str, str]:
    """With several `serve` processes, each keeps one click batch in flight unless the
    operator set the concurrency (see ClickBatchSettings)."""
    batching = clicks_settings(settings).batching
    if workers > 1 and "concurrency" not in batching.model_fields_set:
        return {"TALLYHUB_CLICKS__BATCHING__CONCURRENCY": "1"}
    return {}
