"""The seed's Locust scenario against `/__track` (not run in CI; locust is not a dependency).

    pip install locust
    TALLYHUB_BENCH_CIDS=1,2,3 locust -f bench/locustfile.py --host=http://127.0.0.1:8000 \\
        --users 100 --spawn-rate 10 --run-time 5m

The campaigns (`TALLYHUB_BENCH_CIDS`, default 1,2,3) must exist and allow the target host
(example.com), e.g. created with `POST /api/clicks/campaigns`. Redirects are not followed:
the 302 is the answer being measured. The seed's expectations: 100 users, p95 < 100 ms,
errors < 0.1 %.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, task

CAMPAIGNS = [int(c) for c in os.environ.get("TALLYHUB_BENCH_CIDS", "1,2,3").split(",")]


class TrackingUser(HttpUser):
    wait_time = between(0.1, 0.5)

    @task
    def track_click(self) -> None:
        params = {
            "uid": f"U{random.randint(1, 1000)}",
            "cid": random.choice(CAMPAIGNS),
            "src": random.choice([0, 100, 200, 300]),
            "type": "image_click",
            "to": "https://example.com",
            "tag": random.choice(["A", "B", "C", "A,B", "B,C", ""]),
        }
        with self.client.get(
            "/__track", params=params, name="/__track", allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code == 302:
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
