"""A local fake of the call-center vendor ("Guanke"): the task dimension and the call
records of any date, in the vendor's envelope and paging, behind its API key, on a world
drawn from the seed (see `world`), with the kit's faults (5xx bursts, rate limits, slow
requests) and its own controls under `/__sim/`.

Where the contract leaves a choice, the simulator takes this one: a bad parameter is HTTP
400 with code 40001 and a message naming the parameter; a missing or wrong key is HTTP 401
with code 40101; an absent `page` is 1 and an absent `page_size` 20; a page past the end is
empty with the true `total`. A date lists every task that calls that day (today's with the
figures so far); a future date lists nothing. Calls list in the order they reach the vendor,
so new ones always come last. `POST /__sim/pages/slow {"ms": 50}` slows every page (the
seed's 17–30 s live computation); `POST /__sim/arrivals {"date", "count"}` adds calls now.

The package, by topic: `world` (tasks, agents, each date's calls, the truth) and `app`
(parameters, routes and `create_app`).
"""

from __future__ import annotations

from tallyhub.callcenter.simulator.app import (
    ApiError,
    Arrivals,
    Paging,
    SlowPages,
    create_app,
)
from tallyhub.callcenter.simulator.world import FIRST_HOUR, Agent, CallCenterWorld, Day, Task

__all__ = [
    "FIRST_HOUR",
    "Agent",
    "ApiError",
    "Arrivals",
    "CallCenterWorld",
    "Day",
    "Paging",
    "SlowPages",
    "Task",
    "create_app",
]
