"""Tables of the call-center domain: the seed's two per-day caches (task dimension, call-
record dimension) and the per-day breakdowns by agent and by hour of day that the
analysis reads. A day's rows are replaced together, in one transaction."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, Float, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from tallyhub.core.columns import Base, UTCDateTime, utcnow

SYNC_TYPES = ("t10", "t3", "today", "refresh", "live")


class TaskStatsCache(Base):
    """The task dimension of a day (the vendor's base counts)."""

    __tablename__ = "task_stats_cache"

    id: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[date] = mapped_column(Date, unique=True)
    total_tasks: Mapped[int] = mapped_column(Integer, default=0)
    callout_number: Mapped[int] = mapped_column(Integer, default=0)
    called_number: Mapped[int] = mapped_column(Integer, default=0)
    success_number: Mapped[int] = mapped_column(Integer, default=0)
    connected_rate: Mapped[Decimal] = mapped_column(Numeric(7, 4), default=Decimal(0))
    calculated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    elapsed_time: Mapped[float] = mapped_column(Float, default=0.0)  # seconds
    sync_type: Mapped[str] = mapped_column(String(20))


class GradeStatsCache(Base):
    """The call-record dimension of a day: the intention grades (9-yuan, 1-yuan, every
    other grade) over every record read."""

    __tablename__ = "grade_stats_cache"

    id: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[date] = mapped_column(Date, unique=True)
    grade_9: Mapped[int] = mapped_column(Integer, default=0)
    grade_1: Mapped[int] = mapped_column(Integer, default=0)
    total_success: Mapped[int] = mapped_column(Integer, default=0)
    total_records: Mapped[int] = mapped_column(Integer, default=0)
    connected: Mapped[int] = mapped_column(Integer, default=0)
    grades: Mapped[dict[str, Any]] = mapped_column(JSON)  # grade → count
    # The largest `total` the vendor answered during the walk (more records may have
    # arrived after the walk's last page: then it exceeds total_records).
    upstream_total: Mapped[int] = mapped_column(Integer, default=0)
    calculated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    elapsed_time: Mapped[float] = mapped_column(Float, default=0.0)
    sync_type: Mapped[str] = mapped_column(String(20))


class AgentDay(Base):
    __tablename__ = "callcenter_agent_daily"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    connected: Mapped[int] = mapped_column(Integer, default=0)
    grade_9: Mapped[int] = mapped_column(Integer, default=0)
    grade_1: Mapped[int] = mapped_column(Integer, default=0)


class HourDay(Base):
    """Grades by hour of day (China time, the vendor's), for the hour-of-day chart."""

    __tablename__ = "callcenter_hour_daily"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    connected: Mapped[int] = mapped_column(Integer, default=0)
    grade_9: Mapped[int] = mapped_column(Integer, default=0)
    grade_1: Mapped[int] = mapped_column(Integer, default=0)
