"""The task-rollup domain's logic, by topic: what the bot sends (inputs), the daily scan,
the partner callbacks, and the read side. Services flush and never commit."""

from tallyhub.taskstats.service.callbacks import SOURCE, follow_delivery, payload, stat_item
from tallyhub.taskstats.service.inputs import (
    create_task,
    get_task,
    record_completions,
    save_promoter,
    update_task,
)
from tallyhub.taskstats.service.queries import agents, daily, summary, task_days
from tallyhub.taskstats.service.scan import ScanContext, ScanOutcome, scan

__all__ = [
    "SOURCE",
    "ScanContext",
    "ScanOutcome",
    "agents",
    "create_task",
    "daily",
    "follow_delivery",
    "get_task",
    "payload",
    "record_completions",
    "save_promoter",
    "scan",
    "stat_item",
    "summary",
    "task_days",
    "update_task",
]
