"""Subscriptions' scheduling in the real PostgreSQL: checks are spread out (at start-up
over ``subscriptions.startup_spread_s``, each next one over interval * (1 +- jitter)), and
one subscription is never claimed twice at once, however many instances ask."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from mediad.store import Store
from mediad.subs_store import SubsStore
from tests.support.harness import Databases, eventually, running_service

# Every bound on a random spread below is chosen so that a correct spread breaks it
# with a probability under this (per assertion).
FLAKE = 1e-9


@pytest.fixture
async def dsn(databases: Databases) -> AsyncIterator[str]:
    url = await databases.create()
    store = await Store.open(url)
    try:
        await store.migrate()
    finally:
        await store.close()
    yield url


@pytest.fixture
async def instances(dsn: str) -> AsyncIterator[tuple[SubsStore, SubsStore]]:
    """Two instances' stores: two pools on one database."""
    a, b = await Store.open(dsn), await Store.open(dsn)
    try:
        yield SubsStore(a), SubsStore(b)
    finally:
        await a.close()
        await b.close()


async def sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def clock(dsn: str) -> datetime:
    [row] = await sql(dsn, "SELECT clock_timestamp() AS t")
    return row["t"]  # type: ignore[no-any-return]


async def new_subs(subs: SubsStore, n: int, **fields: Any) -> list[UUID]:
    base = {"kind": "ytdlp", "options": {}, "interval_s": 3600, "max_items": 10,
            "backfill": True, "enabled": True}  # fmt: skip
    made = await asyncio.gather(
        *(
            subs.create(**{**base, "url": f"https://a.example/feed{i}.xml", **fields})
            for i in range(n)
        )
    )
    return [s.id for s in made]


def binomial_bound(n: int, p: float, chance: float) -> int:
    """The least k with P(X ≥ k) · (1/p) < chance for X ~ Binomial(n, p): no cell of
    width p gets k or more of n uniform values but by that chance."""
    cells = round(1 / p)

    def tail(k: int) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    return next(k for k in range(n + 1) if cells * tail(k) < chance)


def assert_uniform(fractions: list[float]) -> None:
    """``fractions`` (each in [0, 1]) look drawn uniformly: no tenth holds too many of
    them, and their empirical distribution is near the uniform one (the
    Dvoretzky-Kiefer-Wolfowitz bound: P(sup |F_n - F| > eps) <= 2 exp(-2 n eps^2))."""
    n = len(fractions)
    assert all(0 <= f <= 1 for f in fractions), sorted(fractions)[:3] + sorted(fractions)[-3:]
    assert len(set(fractions)) > n * 0.9, "not spread: many are due at the same moment"
    tenths = [0] * 10
    for f in fractions:
        tenths[min(int(f * 10), 9)] += 1
    assert max(tenths) < binomial_bound(n, 0.1, FLAKE), tenths
    eps = math.sqrt(math.log(2 / FLAKE) / (2 * n))
    gap = max(max((i + 1) / n - f, f - i / n) for i, f in enumerate(sorted(fractions)))
    assert gap <= eps, (gap, eps, tenths)


# -- spreading ------------------------------------------------------------------------------


async def test_start_up_spreads_the_overdue_checks_over_the_window(
    dsn: str, instances: tuple[SubsStore, SubsStore]
) -> None:
    subs, _ = instances
    window = 86_400.0  # large beside the statement's own time: positions are exact enough
    overdue = await new_subs(subs, 200)
    [disabled] = await new_subs(subs, 1, enabled=False)
    [claimed] = await new_subs(subs, 1)
    [later] = await new_subs(subs, 1)
    assert await subs.claim(claimed) is not None
    await sql(dsn, "UPDATE subscriptions SET next_check_at = now() - interval '1 hour'"
                   " WHERE enabled")  # fmt: skip
    await sql(dsn, "UPDATE subscriptions SET next_check_at = now() + interval '2 days'"
                   " WHERE id = $1", later)  # fmt: skip
    before = {r["id"]: r["next_check_at"] for r in await sql(dsn, "SELECT * FROM subscriptions")}

    t0 = await clock(dsn)
    assert await subs.spread_overdue(window) == len(overdue)
    t1 = await clock(dsn)

    due = {r["id"]: r["next_check_at"] for r in await sql(dsn, "SELECT * FROM subscriptions")}
    # Only the overdue ones that no check holds move; a claimed one is re-timed by its end.
    assert due[disabled] is None
    assert due[claimed] == before[claimed] and due[later] == before[later]
    end = t1 + timedelta(seconds=window)
    assert all(t0 <= due[i] <= end for i in overdue), (min(due[i] for i in overdue), t0)
    # (A value is late by the statement's start after t0 at most: a few ms in a day.)
    assert_uniform([min(1.0, (due[i] - t0).total_seconds() / window) for i in overdue])
    # Spread again at once: nothing is overdue any more.
    assert await subs.spread_overdue(window) == 0


async def test_without_a_window_the_overdue_are_due_now(
    dsn: str, instances: tuple[SubsStore, SubsStore]
) -> None:
    subs, _ = instances
    ids = await new_subs(subs, 5)
    await sql(dsn, "UPDATE subscriptions SET next_check_at = now() - interval '1 day'")
    t0 = await clock(dsn)
    assert await subs.spread_overdue(0) == 5
    t1 = await clock(dsn)
    rows = await sql(dsn, "SELECT next_check_at FROM subscriptions WHERE id = ANY($1)", ids)
    assert all(t0 <= r["next_check_at"] <= t1 for r in rows)


@pytest.mark.parametrize("jitter", [0.1, 0.5])
async def test_each_next_check_is_one_interval_give_or_take_the_jitter(
    dsn: str, instances: tuple[SubsStore, SubsStore], jitter: float
) -> None:
    """After a check's end, ok or failed, the next is due interval * (1 +- jitter) later,
    spread evenly over that range."""
    subs, _ = instances
    interval = 1_000_000  # large beside the statements' own time (see below)
    ids = await new_subs(subs, 200, interval_s=interval)
    running = []
    for sub_id in ids:
        check_id = await subs.claim(sub_id)
        assert check_id is not None
        started = await subs.mark_running(check_id, "w1", "i1")
        assert started is not None
        running.append((check_id, started.attempt))
    t0 = await clock(dsn)
    for n, (check_id, attempt) in enumerate(running):
        if n % 2:
            assert await subs.finish_ok(check_id, attempt, "T", [], jitter) is not None
        else:
            assert await subs.finish_failed(check_id, attempt, "network", "x", jitter)
    t1 = await clock(dsn)
    rows = await sql(dsn, "SELECT next_check_at, check_id FROM subscriptions")
    assert all(r["check_id"] is None for r in rows)
    low, high = interval * (1 - jitter), interval * (1 + jitter)
    lag = (t1 - t0).total_seconds()
    offsets = [(r["next_check_at"] - t0).total_seconds() for r in rows]
    assert all(low <= o <= high + lag for o in offsets), (min(offsets), max(offsets), lag)
    # A value's position in the range is off by the statements' time at most: ≤ 0.1%.
    assert lag < (high - low) / 1000
    assert_uniform([min(1.0, (o - low) / (high - low)) for o in offsets])


async def test_without_jitter_the_next_check_is_one_interval_later(
    dsn: str, instances: tuple[SubsStore, SubsStore]
) -> None:
    subs, _ = instances
    [sub_id] = await new_subs(subs, 1, interval_s=600)
    check_id = await subs.claim(sub_id)
    assert check_id is not None
    started = await subs.mark_running(check_id, "w1", "i1")
    assert started is not None
    t0 = await clock(dsn)
    done = await subs.finish_ok(check_id, started.attempt, None, [], 0.0)
    t1 = await clock(dsn)
    assert done is not None and done.subscription.next_check_at is not None
    assert t0 + timedelta(seconds=600) <= done.subscription.next_check_at
    assert done.subscription.next_check_at <= t1 + timedelta(seconds=600)


async def test_a_service_spreads_the_overdue_checks_when_it_starts(new_config: Any) -> None:
    """The start-up path itself: overdue subscriptions (as after a long stop) are due
    over ``subscriptions.startup_spread_s`` once the service is up, not all at once."""
    window = 86_400
    config = await new_config(
        subscriptions={"startup_spread_s": window, "poll_s": 3600}, workers={"processes": 1}
    )
    dsn = config.database.url
    store = await Store.open(dsn)
    try:
        await store.migrate()
        ids = await new_subs(SubsStore(store), 50)
    finally:
        await store.close()
    await sql(dsn, "UPDATE subscriptions SET next_check_at = now() - interval '3 hours'")
    t0 = await clock(dsn)

    async def spread() -> list[datetime] | None:
        rows = await sql(dsn, "SELECT next_check_at FROM subscriptions WHERE id = ANY($1)", ids)
        due = [r["next_check_at"] for r in rows]
        return due if all(d >= t0 for d in due) else None

    async with running_service(config):
        due = await eventually(spread, timeout_s=30, what="the overdue checks to be spread")
    t1 = await clock(dsn)
    assert all(d <= t1 + timedelta(seconds=window) for d in due)
    assert len(set(due)) > 45, "not spread: many are due at the same moment"
    tenths = [0] * 10
    for d in due:
        tenths[min(int((d - t0).total_seconds() / window * 10), 9)] += 1
    assert max(tenths) < binomial_bound(50, 0.1, FLAKE), tenths


# -- one claim at a time ---------------------------------------------------------------------


async def test_of_many_claims_of_one_subscription_from_two_instances_one_wins(
    dsn: str, instances: tuple[SubsStore, SubsStore]
) -> None:
    a, b = instances
    ids = await new_subs(a, 20)
    for sub_id in ids:
        tries = [s.claim(sub_id) for _ in range(15) for s in (a, b)]
        won = [c for c in await asyncio.gather(*tries) if c is not None]
        assert len(won) == 1, won
        rows = await sql(dsn, "SELECT id FROM subscription_checks WHERE subscription_id = $1",
                         sub_id)  # fmt: skip
        assert [r["id"] for r in rows] == won
        assert (await a.get(sub_id)).check_id == won[0]  # type: ignore[union-attr]
        # While it is queued (and then running), nobody else gets one.
        assert await b.claim(sub_id) is None
        assert await a.mark_running(won[0], "w1", "i1") is not None
        assert await asyncio.gather(a.claim(sub_id), b.claim(sub_id)) == [None, None]


async def test_a_claim_and_the_scheduler_s_batch_claim_never_both_win(
    dsn: str, instances: tuple[SubsStore, SubsStore]
) -> None:
    """ "Check now" on one instance while another's scheduler claims the due ones."""
    a, b = instances
    ids = await new_subs(a, 60)
    results = await asyncio.gather(
        *(a.claim(i) for i in ids), b.claim_due(20), b.claim_due(20), b.claim_due(20)
    )
    one_by_one = [c for c in results[: len(ids)] if c is not None]
    batched = [c for r in results[len(ids) :] for c in r]  # type: ignore[union-attr]
    assert len(one_by_one) + len(batched) == len(ids)
    rows = await sql(dsn, "SELECT subscription_id, count(*) AS n FROM subscription_checks"
                          " GROUP BY subscription_id")  # fmt: skip
    assert sorted(r["subscription_id"] for r in rows) == sorted(ids)
    assert all(r["n"] == 1 for r in rows)


async def test_two_instances_batch_claiming_claim_each_due_subscription_once(
    dsn: str, instances: tuple[SubsStore, SubsStore]
) -> None:
    """The scheduler's claim (``FOR UPDATE SKIP LOCKED``) from two instances at once, a
    few loops each (as ``Checks.schedule_due`` runs): every due subscription gets one
    check, none two, and those not due get none."""
    a, b = instances
    due = await new_subs(a, 150)
    later = await new_subs(a, 10)
    off = await new_subs(a, 5, enabled=False)
    await sql(dsn, "UPDATE subscriptions SET next_check_at = now() + interval '1 hour'"
                   " WHERE id = ANY($1)", later)  # fmt: skip
    batch = 7

    async def schedule(subs: SubsStore) -> list[UUID]:
        claimed: list[UUID] = []
        while True:
            ids = await subs.claim_due(batch)
            claimed += ids
            if len(ids) < batch:
                return claimed

    runs = await asyncio.gather(*(schedule(s) for s in (a, b, a, b, a, b)))
    claimed = [c for run in runs for c in run]
    assert len(claimed) == len(set(claimed)) == len(due)
    rows = await sql(dsn, "SELECT id, subscription_id FROM subscription_checks")
    assert sorted(r["id"] for r in rows) == sorted(claimed)
    assert sorted(r["subscription_id"] for r in rows) == sorted(due)
    held = {r["id"]: r["check_id"] for r in await sql(dsn, "SELECT * FROM subscriptions")}
    assert {held[r["subscription_id"]] for r in rows} == set(claimed)
    assert all(held[i] is None for i in later + off)
    assert await asyncio.gather(a.claim_due(batch), b.claim_due(batch)) == [[], []]
