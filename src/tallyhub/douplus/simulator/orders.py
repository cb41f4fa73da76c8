"""A simulated DOU+ order and its curve: cumulative figures and status as closed-form
functions of the seconds since its creation, so any instant is answered without replaying
history. Figures only grow, cost never passes the budget, and an order that spends its
whole budget is DELIVERIED."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple


class Figures(NamedTuple):
    """An order's cumulative figures at one instant; `cost` in fen."""

    cost: int
    total_play: int
    show_cnt: int
    custom_like: int
    dy_share: int
    dy_comment: int
    dy_follow: int
    dy_home_visited: int
    dp_target_convert_cnt: int

    def minus(self, earlier: Figures) -> Figures:
        return Figures(*(a - b for a, b in zip(self, earlier, strict=True)))


ZERO = Figures(0, 0, 0, 0, 0, 0, 0, 0, 0)


def summed(figures: Iterable[Figures]) -> Figures:
    return Figures(*(sum(column) for column in zip(ZERO, *figures, strict=True)))


@dataclass(slots=True)
class Order:
    """One DOU+ order and the parameters of its curve (seconds from its creation)."""

    order_id: str
    number: int  # int(order_id), the ORDER_ID sort key
    task_id: str
    ad_id: str
    item_id: str
    title: str
    created: float  # epoch seconds, whole
    budget: int  # fen
    fate: str  # normal | wait | no_reach | pause | undelivered | offline
    unpaid: float
    audit: float
    wait: float
    duration: float  # active seconds that spend the whole budget
    pause_at: float  # active seconds before an AUDIT_PAUSE
    pause_len: float
    stop: float  # fraction of `duration` after which delivery ends (UNDELIVERIED when < 1)
    play_per_fen: float
    show_ratio: float
    rates: tuple[float, float, float, float, float, float]  # like share comment follow home conv
    rank: float  # play_duration_5s_rank once it has plays

    @property
    def start(self) -> float:
        return self.unpaid + self.audit + self.wait

    def active_seconds(self, elapsed: float) -> float:
        """Seconds of delivery within `elapsed` seconds of the order's life."""
        active = elapsed - self.start
        if self.fate == "offline" or active <= 0:
            return 0.0
        if self.pause_len and active > self.pause_at:
            active = max(self.pause_at, active - self.pause_len)
        return min(active, self.duration * self.stop)

    def cost(self, active: float) -> int:
        if active >= self.duration:
            return self.budget
        share = active / self.duration
        return min(self.budget, int(self.budget * share * (2 - share)))  # fast start, then slower

    def figures(self, at: float) -> Figures:
        if at <= self.created:
            return ZERO
        cost = self.cost(self.active_seconds(at - self.created))
        play = int(cost * self.play_per_fen)
        like, share, comment, follow, home, convert = (int(play * r) for r in self.rates)
        show = int(play * self.show_ratio)
        return Figures(cost, play, show, like, share, comment, follow, home, convert)

    def status(self, at: float) -> str:
        elapsed = at - self.created
        if elapsed < self.unpaid:
            return "UNPAID"
        if elapsed < self.unpaid + self.audit:
            return "AUDITING"
        if self.fate == "offline":
            return "OFFLINE_AUDIT"
        if elapsed < self.start:
            return "TIME_NO_REACH" if self.fate == "no_reach" else "WAIT_TO_START"
        return self._delivery_status(elapsed)

    def _delivery_status(self, elapsed: float) -> str:
        active = self.active_seconds(elapsed)
        if self.cost(active) >= self.budget:
            return "DELIVERIED"
        if active >= self.duration * self.stop:
            return "UNDELIVERIED"
        raw = elapsed - self.start
        if self.pause_len and self.pause_at < raw <= self.pause_at + self.pause_len:
            return "AUDIT_PAUSE"
        return "DELIVERING"
