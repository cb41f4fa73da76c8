"""The call-center domain's logic: syncing a day from the vendor into the caches, and the
read side. Services flush and never commit."""

from tallyhub.callcenter.service.queries import (
    AGENT_SORTS,
    EXPORT_COLUMNS,
    agents,
    daily,
    grade_cache,
    hours,
    task_cache,
)
from tallyhub.callcenter.service.sync import (
    FewerRecords,
    SyncContext,
    record_figures,
    sync_records,
    sync_tasks,
    task_row,
)

__all__ = [
    "AGENT_SORTS",
    "EXPORT_COLUMNS",
    "FewerRecords",
    "SyncContext",
    "agents",
    "daily",
    "grade_cache",
    "hours",
    "record_figures",
    "sync_records",
    "sync_tasks",
    "task_cache",
    "task_row",
]
