"""Subscriptions' checks: queued like jobs, run like jobs, ended in one transaction.

A check is a row in ``subscription_checks`` and an entry ``check:{checkId}`` in the same
Redis list as the jobs. The dispatcher takes it like a job — one of the
``queue.concurrency`` slots and an idle worker — and sends ``listing:start``; the worker
lists the entries (yt-dlp's flat playlist) and sends them back in ``listed`` messages,
collected here (bounded by the subscription's ``maxItems``). Its end (``finish``) is one
transaction that remembers the entries, creates a job for each one not seen before and
clears the subscription's claim; then the jobs are pushed (the reconciler pushes any a
crash kept from the list). A check lost to mediad's own fault (its worker, its instance)
is queued again; the tool's verdict fails it, and the next scheduled one tries again.

The scheduler (:meth:`Checks.run`) claims due subscriptions in small batches; each next
check is due one interval later, give or take ``subscriptions.jitter``, and at start-up
the overdue ones are spread over ``subscriptions.startup_spread_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mediad import inputs, states, wire
from mediad.attempts import Attempt
from mediad.config import Config
from mediad.errors import BadRequest, Conflict, NotFound, QueueUnavailable, StoreUnavailable
from mediad.metrics import Metrics
from mediad.netpolicy import NetPolicy
from mediad.notify.outbox import Outbox
from mediad.ports import Publisher
from mediad.queue import Queue
from mediad.store import Store
from mediad.subs_store import CheckRecord, Finished, Subscription, SubsStore

if TYPE_CHECKING:
    from mediad.dispatcher import Dispatcher

log = logging.getLogger(__name__)


def entry_of(check_id: UUID | str) -> str:
    return f"{wire.CHECK_PREFIX}{check_id}"


class Checks:
    def __init__(
        self,
        config: Config,
        store: Store,
        queue: Queue,
        publisher: Publisher,
        dispatcher: Dispatcher,
        metrics: Metrics | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.subs = SubsStore(store, self._notes if outbox is not None else None)
        self.queue = queue
        self.publisher = publisher
        self.dispatcher = dispatcher
        self.outcomes = dispatcher.outcomes
        self.metrics = metrics or Metrics()
        self.policy = NetPolicy(config.network.allow_private, config.network.allow_hosts)
        # What each running check's listing sent so far: (maxItems, title, entries).
        self._listed: dict[str, tuple[int, str | None, list[wire.ListedEntry]]] = {}
        self.runs = 0  # checks that ended here (ok or failed)
        dispatcher.checks = self
        dispatcher.outcomes.checks = self

    # -- what clients ask (subs_web.py) ------------------------------------------------

    async def create(self, fields: dict[str, Any]) -> Subscription:
        sub = await self.subs.create(**fields)
        log.info("subscription created: %s", sub.url, extra={"subscriptionId": str(sub.id)})
        await self.publisher.subscription_update(sub.to_api())
        return sub

    async def get(self, sub_id: UUID) -> Subscription:
        sub = await self.subs.get(sub_id)
        if sub is None:
            raise NotFound(f"no subscription {sub_id}")
        return sub

    async def update(self, sub_id: UUID, changes: dict[str, Any]) -> Subscription:
        sub = await self.subs.update(sub_id, changes)
        if sub is None:
            raise NotFound(f"no subscription {sub_id}")
        await self.publisher.subscription_update(sub.to_api())
        return sub

    async def delete(self, sub_id: UUID) -> None:
        """Gone with its checks and what it saw; a running check's end finds no row and
        creates nothing (the slot is freed when its listing ends)."""
        if not await self.subs.delete(sub_id):
            raise NotFound(f"no subscription {sub_id}")
        await self.publisher.subscription_deleted(str(sub_id))

    async def check_now(self, sub_id: UUID) -> Subscription:
        check_id = await self.subs.claim(sub_id)
        if check_id is None:
            await self.get(sub_id)  # 404 when there is none
            raise Conflict(
                "a check of this subscription is queued or running", code="check_running"
            )
        await self._push(check_id)
        sub = await self.get(sub_id)
        await self.publisher.subscription_update(sub.to_api())
        return sub

    async def history(self, sub_id: UUID) -> list[CheckRecord]:
        await self.get(sub_id)
        return await self.subs.checks(sub_id)

    async def _push(self, check_id: UUID) -> None:
        try:
            await self.queue.push(entry_of(check_id))
        except QueueUnavailable:
            pass  # queued in PostgreSQL: the reconciler pushes it when Redis is back

    # -- the dispatcher's ---------------------------------------------------------------

    async def mark_running(self, entry: str, worker_id: str) -> wire.ListingStart | None:
        try:
            check_id = UUID(entry[len(wire.CHECK_PREFIX) :])
        except ValueError:
            log.warning("dropping a malformed check from the queue: %r", entry[:80])
            return None
        claimed = await self.subs.mark_running(check_id, worker_id, self.config.instance_id)
        if claimed is None:
            return None
        key = str(claimed.check_id)
        self._listed[key] = (claimed.max_items, None, [])
        return wire.ListingStart(
            key, claimed.attempt, claimed.url, claimed.type, claimed.max_items, claimed.cookies
        )

    def collect(self, a: Attempt, ev: wire.ListedEvent) -> bool:
        """Keep a ``listed`` message's entries (up to ``maxItems``); True on the last."""
        max_items, title, entries = self._listed.get(a.job_id, (0, None, []))
        entries.extend(ev.entries[: max(0, max_items - len(entries))])
        self._listed[a.job_id] = (max_items, ev.title or title, entries)
        return ev.final

    def _usable(self, entries: list[wire.ListedEntry], check_id: str) -> list[wire.ListedEntry]:
        """The entries a job may be made of: a URL ``POST /downloads`` would take."""
        usable, keys = [], set()
        for e in entries:
            try:
                url = inputs.parse_url(e.url)
            except BadRequest:
                continue
            e = e if url == e.url else dataclasses.replace(e, url=url)  # as POST /downloads
            if self.policy.check_url(e.url) is None and (e.extractor, e.entry_id) not in keys:
                keys.add((e.extractor, e.entry_id))
                usable.append(e)
        if len(usable) < len(entries):
            log.info("%d entries left out", len(entries) - len(usable), extra={"jobId": check_id})
        return usable

    async def finish(self, a: Attempt) -> None:
        """The listing is complete: record it and create the jobs, then push them."""
        _, title, entries = self._listed.pop(a.job_id, (0, None, []))
        jitter = self.config.subscriptions.jitter
        entries = self._usable(entries, a.job_id)
        done = await self.outcomes.write_terminal(
            lambda: self.subs.finish_ok(UUID(a.job_id), a.attempt, title, entries, jitter)
        )
        await self.outcomes.release(a)
        if done is None:
            return
        for job in done.jobs:
            with contextlib.suppress(QueueUnavailable):  # the reconciler pushes it
                await self.queue.push(str(job.id))
            self.metrics.job_submitted(job)
            await self.publisher.job_update(job)
        log.info(
            "check found %d entries, created %d jobs", len(entries), len(done.jobs),
            extra={"jobId": a.job_id, "subscriptionId": str(done.subscription.id)},
        )  # fmt: skip
        await self._ended(done)

    async def failed(self, a: Attempt, code: str, message: str) -> None:
        """A check that failed: queued again when mediad lost it, else recorded."""
        self._listed.pop(a.job_id, None)
        check_id = UUID(a.job_id)
        if states.is_infrastructure(code) and a.attempt < self.config.queue.max_interruptions:
            again = await self.outcomes.write_terminal(
                lambda: self.subs.requeue(check_id, a.attempt, code, message)
            )
            await self.outcomes.release(a)
            if again:
                delay = states.retry_delay_s(a.attempt, self.config.queue.retry_backoff_s, 30.0)
                self.dispatcher.spawn(self._push_later(check_id, delay), f"recheck-{check_id}")
            return
        jitter = self.config.subscriptions.jitter
        done = await self.outcomes.write_terminal(
            lambda: self.subs.finish_failed(check_id, a.attempt, code, message, jitter)
        )
        await self.outcomes.release(a)
        if done is not None:
            log.info("check failed: %s: %s", code, message, extra={"jobId": a.job_id})
            await self._ended(done)

    async def _push_later(self, check_id: UUID, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self._push(check_id)

    async def _ended(self, done: Finished) -> None:
        self.runs += 1
        await self.publisher.subscription_update(done.subscription.to_api())
        if self.outbox is not None:
            await self.outbox.recorded(done.deliveries)

    async def _notes(self, conn: Any, done: Finished) -> list[dict[str, Any]]:
        """In the transaction that ends a check: ``subscription.new`` when it created
        jobs, ``subscription.failed`` when it failed, for the subscription's
        ``options.notify`` or else the default targets."""
        assert self.outbox is not None
        if done.check.status == "failed":
            event = "subscription.failed"
        elif done.jobs:
            event = "subscription.new"
        else:
            return []
        named = done.subscription.options.get("notify")
        targets = self.outbox.chosen(named if isinstance(named, list) else None, event)
        return await self.outbox.record(
            conn, targets, event,
            subscription=done.subscription.to_api(), job_ids=[str(j.id) for j in done.jobs],
        )  # fmt: skip

    # -- upkeep's (recovery) ------------------------------------------------------------

    async def queued_entries(self) -> list[str]:
        return [entry_of(i) for i in await self.subs.queued_ids()]

    async def requeue_orphans(self, instance_id: str | None) -> list[str]:
        return [entry_of(i) for i in await self.subs.requeue_orphans(instance_id)]

    async def running_owners(self) -> dict[str, int]:
        return await self.subs.running_owners()

    # -- the scheduler ------------------------------------------------------------------

    async def run(self) -> None:
        """Queue the due subscriptions' checks every ``subscriptions.poll_s``."""
        c = self.config.subscriptions
        with contextlib.suppress(StoreUnavailable):
            spread = await self.subs.spread_overdue(c.startup_spread_s)
            if spread:
                log.info("spread %d overdue checks over %gs", spread, c.startup_spread_s)
        failing = False
        while True:
            await asyncio.sleep(c.poll_s)
            try:
                await self.schedule_due()
                failing = False
            except (StoreUnavailable, QueueUnavailable) as exc:
                if not failing:
                    log.warning("could not schedule checks: %s", exc)
                failing = True

    async def schedule_due(self) -> int:
        """Claim the due subscriptions, a batch at a time, and queue their checks."""
        batch, queued = self.config.subscriptions.batch, 0
        while True:
            ids = await self.subs.claim_due(batch)
            for check_id in ids:
                await self._push(check_id)
            queued += len(ids)
            if len(ids) < batch:
                return queued
