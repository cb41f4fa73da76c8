"""core/cache.py: the TTL cache and the first-claim window, with a hand-moved clock."""

from __future__ import annotations

import asyncio

import pytest

from tallyhub.core.cache import OnceWindow, TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_once_window_first_claim_wins_until_the_window_ends() -> None:
    clock = Clock()
    window = OnceWindow("test", 1000, clock=clock)
    assert await window.claim("k")
    clock.now += 0.1
    assert not await window.claim("k")
    assert await window.claim("other")
    clock.now += 1.5
    assert await window.claim("k")
    assert not await window.claim("k")


async def test_once_window_stays_bounded() -> None:
    clock = Clock()
    window = OnceWindow("test", 1000, clock=clock, max_entries=10)
    for n in range(100):
        assert await window.claim(str(n))
    assert len(window._expiry) <= 10
    assert len(window._order) <= 10


async def test_once_window_forgets_each_claim_when_its_window_ends() -> None:
    clock = Clock()
    window = OnceWindow("test", 1000, clock=clock)
    assert window.claim_local("k")
    clock.now += 1.0  # the window has ended: a new claim, with a window of its own
    assert window.claim_local("k")
    clock.now += 0.5
    assert window.claim_local("other")
    assert not window.claim_local("k")
    clock.now += 0.6
    assert window.claim_local("k")
    assert set(window._expiry) == {"k", "other"}
    assert len(window._order) == 2


async def test_ttl_cache_loads_once_for_concurrent_misses_and_expires() -> None:
    clock = Clock()
    cache: TTLCache[int, str | None] = TTLCache("test", 5, clock=clock)
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return f"v{loads}"

    values = await asyncio.gather(*(cache.get_or_load(1, load) for _ in range(10)))
    assert values == ["v1"] * 10 and loads == 1
    clock.now += 6
    assert await cache.get_or_load(1, load) == "v2"
    cache.invalidate(1)
    assert await cache.get_or_load(1, load) == "v3"


async def test_ttl_cache_serves_stale_only_while_the_loader_is_down() -> None:
    clock = Clock()
    cache: TTLCache[int, str] = TTLCache("test", 5, clock=clock)
    cache.put(1, "old")
    clock.now += 6

    async def down() -> str:
        raise ConnectionRefusedError("db down")

    assert await cache.get_or_load(1, down, stale_on=(OSError,)) == "old"
    with pytest.raises(ConnectionRefusedError):
        await cache.get_or_load(2, down, stale_on=(OSError,))
    cache.invalidate(1)  # a value known to be outdated is never served stale
    with pytest.raises(ConnectionRefusedError):
        await cache.get_or_load(1, down, stale_on=(OSError,))


def test_ttl_cache_drops_expired_then_oldest_entries_when_full() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache("test", 10, max_entries=3, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2, ttl_seconds=1)
    cache.put("c", 3)
    cache.put("a", 10)  # put again: now the newest
    clock.now += 2  # "b" has expired
    cache.put("d", 4)
    assert len(cache) == 3
    assert cache.get("b") is None
    cache.put("e", 5)  # full: the oldest ("c") goes, not the re-put "a"
    assert cache.get("c") is None
    assert [(k, e.value) for k in "ade" if (e := cache.get(k)) is not None] == [
        ("a", 10),
        ("d", 4),
        ("e", 5),
    ]
    for n in range(10_000):  # steady churn on a full cache stays bounded
        cache.put(f"k{n}", n)
    assert len(cache) == 3
    assert [cache.get(f"k{n}") is not None for n in (9_997, 9_998, 9_999)] == [True] * 3
