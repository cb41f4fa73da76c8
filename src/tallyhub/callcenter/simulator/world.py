"""The simulated call center: tasks and agents drawn once from the seed, and each date's
calls drawn from (seed, date) the first time the date is asked for, then cached.

A date's calls are kept in columns (arrays, ~20 bytes a call) in the vendor's listing
order, which is the order calls become visible: a drawn call at its call time, a call added
through `add_arrivals` at the clock's now. "Visible" is therefore always a prefix of the
list, so a page walk of today sees new calls only at its end, as the clock advances.
Past dates are complete, today holds the calls up to the clock's now, future dates nothing.
Thread-safe: tests change the world from their own thread while the server reads it.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tallyhub.callcenter.contract import (
    CONNECTED,
    GRADE_1,
    GRADE_9,
    GRADE_NONE,
    GRADES,
    INTENTION_GRADES,
    STATUSES,
    SUCCESS_GRADES,
    china_date,
    day_start,
)
from tallyhub.core.simulation import SimClock

_HOUR = 3600
_DAY = 86400
FIRST_HOUR = 8  # calls are made from 08:00 to 23:59:59 China time
# Relative call volume of each hour from 08:00 to 23:00 (busy late morning and evening).
_HOUR_WEIGHTS = (3, 6, 9, 9, 6, 4, 6, 8, 8, 7, 5, 4, 6, 6, 4, 2)
_STATUS_WEIGHTS = (45, 35, 12, 8)  # connected, no_answer, busy, failed (as STATUSES)
# Of connected calls: "9" 3 % and "1" 1 % (times the agent's skill), then A, B, C; rest "0".
_GRADE_SHARES = ((GRADE_9, 0.03), (GRADE_1, 0.01), ("A", 0.06), ("B", 0.15), ("C", 0.25))
_ACTIVE_SHARE = 0.85  # the share of tasks that call on a given date
_CACHED_DAYS = 64  # dates kept drawn at once (a date with added calls is always kept)

_STATUS_INDEX = {status: i for i, status in enumerate(STATUSES)}
_GRADE_INDEX = {grade: i for i, grade in enumerate(GRADES)}
_CONNECTED = _STATUS_INDEX[CONNECTED]
_NONE = _GRADE_INDEX[GRADE_NONE]
_SUCCESS = frozenset(_GRADE_INDEX[g] for g in SUCCESS_GRADES)
_INTENTION = frozenset(_GRADE_INDEX[g] for g in INTENTION_GRADES)
_G9, _G1 = _GRADE_INDEX[GRADE_9], _GRADE_INDEX[GRADE_1]

_PRODUCTS = ("信用卡分期", "宽带续约", "保险回访", "课程体验", "会员续费", "家装咨询", "话费套餐")
_PURPOSES = ("回访", "促活", "召回", "邀约", "调研")


@dataclass(frozen=True)
class Task:
    task_id: str
    task_name: str


@dataclass(frozen=True)
class Agent:
    agent_id: str
    skill: float  # multiplies the agent's share of "9" and "1" grades


@dataclass
class Figures:
    """What a date's visible calls add up to, by task, agent, hour and grade (indices)."""

    by_task: dict[int, list[int]]  # task -> calls, connected, success, interested, g9, g1
    by_agent: dict[int, list[int]]  # agent -> calls, connected, g9, g1
    by_hour: list[list[int]]  # hour 0..23 -> calls, connected, g9, g1
    by_grade: list[int]  # grade index -> calls


@dataclass
class Day:
    """One date's calls in listing order, as columns; `arrived` is sorted."""

    day: date
    start: int  # the date's first second, epoch
    active: list[int]  # tasks that call on this date, in listing order
    arrived: array[int] = field(default_factory=lambda: array("q"))
    call_time: array[int] = field(default_factory=lambda: array("q"))
    seq: array[int] = field(default_factory=lambda: array("q"))
    task: array[int] = field(default_factory=lambda: array("H"))
    agent: array[int] = field(default_factory=lambda: array("H"))
    status: array[int] = field(default_factory=lambda: array("B"))
    grade: array[int] = field(default_factory=lambda: array("B"))
    duration: array[int] = field(default_factory=lambda: array("l"))
    added: int = 0  # calls added through add_arrivals
    figures: OrderedDict[int, Figures] = field(default_factory=OrderedDict)

    def visible(self, now: float) -> int:
        """How many calls exist at `now` (they are the first ones of the list)."""
        return bisect.bisect_right(self.arrived, now)


class CallCenterWorld:
    """Tasks, agents and the calls of every date, drawn from the seed; see the module."""

    def __init__(
        self, *, seed: int, records_per_day: int, clock: SimClock, tasks: int, agents: int
    ) -> None:
        if records_per_day < 0 or tasks < 1 or agents < 1:
            raise ValueError("records_per_day ≥ 0, and at least one task and one agent")
        self.seed, self.clock, self.records_per_day = seed, clock, records_per_day
        self._lock = threading.RLock()
        self._days: OrderedDict[date, Day] = OrderedDict()
        rng = random.Random(f"callcenter:{seed}:world")
        self.tasks = _draw_tasks(rng, tasks)
        self.agents = [
            Agent(agent_id=f"{1001 + i}", skill=rng.uniform(0.4, 1.6)) for i in range(agents)
        ]
        self.task_ids = [task.task_id for task in self.tasks]
        self.agent_ids = [agent.agent_id for agent in self.agents]
        self.page_delay_ms = 0  # every API page waits this long first (POST /__sim/pages/slow)

    # ---- time

    def now(self) -> float:
        return self.clock.now().timestamp()

    def today(self) -> date:
        return china_date(self.clock.now())

    # ---- dates

    def day(self, day: date) -> Day:
        """The date's calls, drawn on first use."""
        with self._lock:
            found = self._days.get(day)
            if found is not None:
                self._days.move_to_end(day)
                return found
            drawn = _draw_day(self, day)
            self._days[day] = drawn
            self._evict()
            return drawn

    def _evict(self) -> None:
        spare = [d for d, drawn in self._days.items() if not drawn.added]
        for old in spare[: max(0, len(self._days) - _CACHED_DAYS)]:
            del self._days[old]

    def add_arrivals(self, day: date, count: int) -> list[str]:
        """`count` calls of `day` that reach the vendor now (call times earlier on that
        date, up to now); their record ids. They list after every call visible now."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            if day > self.today():
                raise ValueError(f"{day} has not started yet (today is {self.today()})")
            target = self.day(day)
            now = math.floor(self.now())
            rng = random.Random(f"callcenter:{self.seed}:{day}:arrivals:{target.added}")
            low = target.start + FIRST_HOUR * _HOUR
            high = min(target.start + _DAY - 1, now)
            if high < low:  # today, before the first calls of the morning
                low = target.start
            times = sorted(rng.randint(low, high) for _ in range(count))
            seqs = range(len(target.seq) + 1, len(target.seq) + count + 1)
            _insert(self, target, rng, times, seqs, now)
            target.figures.clear()
            return [f"{day:%Y%m%d}{s:07d}" for s in seqs]

    # ---- what the API and the truth read

    def visible(self, day: date) -> tuple[Day | None, int]:
        """The date and how many of its calls exist now; (None, 0) for a future date."""
        if day > self.today():
            return None, 0
        drawn = self.day(day)
        return drawn, drawn.visible(self.now())

    def records(self, day: date, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The vendor's rows of one page of the date's calls, and how many exist now."""
        with self._lock:
            drawn, total = self.visible(day)
            if drawn is None:
                return [], 0
            return _record_rows(self, drawn, offset, min(offset + limit, total)), total

    def task_rows(self, day: date) -> list[dict[str, Any]]:
        """The task dimension of the date: every task calling that day, with its figures."""
        with self._lock:
            drawn, total = self.visible(day)
            if drawn is None:
                return []
            figures = self.figures(drawn, total)
            return [_task_row(self.tasks[t], figures.by_task.get(t)) for t in drawn.active]

    def figures(self, drawn: Day, total: int) -> Figures:
        with self._lock:
            found = drawn.figures.get(total)
            if found is None:
                found = drawn.figures[total] = _add_up(drawn, total)
                while len(drawn.figures) > 4:
                    drawn.figures.popitem(last=False)
            return found

    def truth(self, day: date) -> dict[str, Any]:
        """The true totals of the date's calls existing now (GET /__sim/truth)."""
        with self._lock:
            drawn, total = self.visible(day)
            active = [] if drawn is None else drawn.active
            figures = _add_up(Day(day, 0, []), 0) if drawn is None else self.figures(drawn, total)
            by_task = {
                self.tasks[t].task_id: _task_row(self.tasks[t], figures.by_task.get(t))
                for t in active
            }
            return {
                "date": day.isoformat(),
                "total_records": total,
                "grades": {g: figures.by_grade[i] for i, g in enumerate(GRADES)},
                "by_task": _with_grades(by_task, figures, active),
                "by_agent": {
                    self.agents[a].agent_id: _calls(row[0], row[1], row[2], row[3])
                    for a, row in sorted(figures.by_agent.items())
                },
                "by_hour": {str(h): _calls(*row) for h, row in enumerate(figures.by_hour)},
                "tasks": _task_totals(list(by_task.values())),
            }


# ---- drawing


def _draw_tasks(rng: random.Random, count: int) -> list[Task]:
    ids = rng.sample(range(100_000, 1_000_000), count)
    return [
        Task(
            task_id=str(task_id),
            task_name=f"{rng.choice(_PRODUCTS)}{rng.choice(_PURPOSES)}-{i + 1:02d}",
        )
        for i, task_id in enumerate(ids)
    ]


def _draw_day(world: CallCenterWorld, day: date) -> Day:
    rng = random.Random(f"callcenter:{world.seed}:{day}")
    tasks = range(len(world.tasks))
    active = [t for t in tasks if rng.random() < _ACTIVE_SHARE] or [rng.randrange(len(tasks))]
    drawn = Day(day=day, start=int(day_start(day).timestamp()), active=active)
    n = world.records_per_day
    hours = rng.choices(range(FIRST_HOUR, 24), weights=_HOUR_WEIGHTS, k=n)
    start = drawn.start
    times = sorted([start + h * _HOUR + int(rng.random() * _HOUR) for h in hours])
    _append(world, drawn, rng, times, range(1, n + 1), arrived=times)
    return drawn


def _append(
    world: CallCenterWorld,
    drawn: Day,
    rng: random.Random,
    times: list[int],
    seqs: Iterable[int],
    *,
    arrived: list[int],
) -> None:
    """Draw who made the calls at `times` and how they went, at the end of the columns."""
    n = len(times)
    agents = rng.choices(range(len(world.agents)), k=n)
    statuses = rng.choices(range(len(STATUSES)), weights=_STATUS_WEIGHTS, k=n)
    skills = [world.agents[a].skill for a in agents]
    grades = [
        _grade(rng, skill) if s == _CONNECTED else _NONE
        for s, skill in zip(statuses, skills, strict=True)
    ]
    durations = [
        min(1800, 8 + int(rng.expovariate(1 / 110))) if s == _CONNECTED else 0 for s in statuses
    ]
    drawn.arrived.extend(arrived)
    drawn.call_time.extend(times)
    drawn.seq.extend(seqs)
    drawn.task.extend(rng.choices(drawn.active, k=n))
    drawn.agent.extend(agents)
    drawn.status.extend(statuses)
    drawn.grade.extend(grades)
    drawn.duration.extend(durations)


def _insert(
    world: CallCenterWorld,
    drawn: Day,
    rng: random.Random,
    times: list[int],
    seqs: Iterable[int],
    now: int,
) -> None:
    """Calls that arrive at `now`: drawn apart, then spliced in after every call visible."""
    extra = Day(day=drawn.day, start=drawn.start, active=drawn.active)
    _append(world, extra, rng, times, seqs, arrived=[now] * len(times))
    at = drawn.visible(now)
    for column in ("arrived", "call_time", "seq", "task", "agent", "status", "grade", "duration"):
        getattr(drawn, column)[at:at] = getattr(extra, column)
    drawn.added += len(times)


def _grade(rng: random.Random, skill: float) -> int:
    roll = rng.random()
    for grade, share in _GRADE_SHARES:
        scaled = share * skill if grade in SUCCESS_GRADES else share
        if roll < scaled:
            return _GRADE_INDEX[grade]
        roll -= scaled
    return _NONE


# ---- adding up


def _add_up(drawn: Day, total: int) -> Figures:
    by_task: dict[int, list[int]] = {}
    by_agent: dict[int, list[int]] = {}
    by_hour = [[0, 0, 0, 0] for _ in range(24)]
    by_grade = [0] * len(GRADES)
    for i in range(total):
        connected = drawn.status[i] == _CONNECTED
        grade = drawn.grade[i]
        g9, g1 = grade == _G9, grade == _G1
        by_grade[grade] += 1
        task = by_task.setdefault(drawn.task[i], [0, 0, 0, 0, 0, 0])
        task[0] += 1
        task[1] += connected
        task[2] += grade in _SUCCESS
        task[3] += connected and grade in _INTENTION
        task[4] += g9
        task[5] += g1
        agent = by_agent.setdefault(drawn.agent[i], [0, 0, 0, 0])
        hour = by_hour[(drawn.call_time[i] - drawn.start) // _HOUR]
        for row in (agent, hour):
            row[0] += 1
            row[1] += connected
            row[2] += g9
            row[3] += g1
    return Figures(by_task, by_agent, by_hour, by_grade)


# ---- the vendor's rows


def _record_rows(world: CallCenterWorld, drawn: Day, first: int, end: int) -> list[dict[str, Any]]:
    """Rows `first` to `end` (excluded) as the vendor writes them; a page of 1000 in ~2 ms."""
    task_ids, agent_ids = world.task_ids, world.agent_ids
    prefix, day_text, start = f"{drawn.day:%Y%m%d}", drawn.day.isoformat(), drawn.start
    rows = []
    for i in range(first, end):
        seconds = drawn.call_time[i] - start
        hour, rest = divmod(seconds, _HOUR)
        rows.append(
            {
                "record_id": f"{prefix}{drawn.seq[i]:07d}",
                "task_id": task_ids[drawn.task[i]],
                "agent_id": agent_ids[drawn.agent[i]],
                "call_time": f"{day_text} {hour:02d}:{rest // 60:02d}:{rest % 60:02d}",
                "duration": drawn.duration[i],
                "status": STATUSES[drawn.status[i]],
                "grade": GRADES[drawn.grade[i]],
            }
        )
    return rows


def _task_row(task: Task, figures: list[int] | None) -> dict[str, Any]:
    calls, connected, success, interested, _, _ = figures or [0] * 6
    return {
        "task_id": task.task_id,
        "task_name": task.task_name,
        "callout_number": calls,
        "called_number": connected,
        "success_number": success,
        "intention_number": connected,  # as the seed found: a copy of called_number
        "intention_number2": interested,
    }


def _with_grades(
    by_task: dict[str, dict[str, Any]], figures: Figures, active: list[int]
) -> dict[str, dict[str, Any]]:
    for (task_id, row), t in zip(by_task.items(), active, strict=True):
        counts = figures.by_task.get(t) or [0] * 6
        by_task[task_id] = {**row, "grade_9": counts[4], "grade_1": counts[5]}
    return by_task


def _calls(calls: int, connected: int, grade_9: int, grade_1: int) -> dict[str, int]:
    return {"calls": calls, "connected": connected, "grade_9": grade_9, "grade_1": grade_1}


def _task_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    keys = (
        "callout_number",
        "called_number",
        "success_number",
        "intention_number",
        "intention_number2",
    )
    return {"total_tasks": len(rows), **{key: sum(row[key] for row in rows) for key in keys}}
