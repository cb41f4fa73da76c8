"""What the call-center tests share: the vendor simulator over real HTTP and the settings
that point at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from tallyhub.callcenter import simulator
from tallyhub.core.simulation import SimClock, running

KEY = "test-callcenter-key"
FAST = {
    "backoff_initial_seconds": 0.005,
    "backoff_max_seconds": 0.02,
    "rate_per_second": 10_000,
    "rate_burst": 10_000,
}


@dataclass
class Vendor:
    url: str
    app: Any
    clock: SimClock

    def truth(self, day: date) -> dict[str, Any]:
        import httpx

        answer: dict[str, Any] = httpx.get(
            f"{self.url}/__sim/truth", params={"date": str(day)}
        ).json()
        return answer

    def requests(self) -> int:
        total: int = self.app.state.requests.snapshot()["total"]
        return total

    def overrides(self, **upstream: Any) -> dict[str, Any]:
        return {
            "callcenter": {
                "base_url": self.url,
                "api_key": KEY,
                "record_page_size": upstream.pop("record_page_size", 1000),
                "upstream": {**FAST, **upstream},
            }
        }


@contextmanager
def vendor(records_per_day: int = 3000, seed: int = 5) -> Iterator[Vendor]:
    clock = SimClock()
    app = simulator.create_app(seed=seed, records_per_day=records_per_day, clock=clock, api_key=KEY)
    with running(app) as url:
        yield Vendor(url, app, clock)


def yesterday(v: Vendor) -> date:
    from zoneinfo import ZoneInfo

    return v.clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)
