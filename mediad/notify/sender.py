"""The sender: a task of ``mediad serve`` that delivers the outbox's due rows.

Each round claims what is due (``Outbox.claim``: ``FOR UPDATE SKIP LOCKED``, a lease of
``timeout_s * 2 + 10`` s), sends each row once and marks it delivered, due again after a
backoff (``retry_backoff_s`` doubling up to ``retry_max_s``), or ``failed`` — at once for
a permanent error (an address the network policy refuses, a target no longer
configured), else once ``give_up_after_s`` has passed since it was recorded. It wakes when
this instance records a row and polls every ``poll_s`` for rows of other instances.

Egress: a webhook's URL is checked like a job's (``NetPolicy.check_url``: scheme,
literal addresses, localhost) and its host name resolved once by the egress guard's
resolver, every address checked, and aiohttp connects only to the checked addresses (a
resolver of ours in its connector; no DNS cache, no redirects, no proxy from the
environment). Apprise makes its own connections: its URL's host is checked the same way
before it is called, in a thread with a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult

from mediad.config import Config
from mediad.egress.proxy import system_resolver
from mediad.errors import StoreUnavailable
from mediad.netpolicy import NetPolicy, parse_host_literal
from mediad.notify import targets as t
from mediad.notify.outbox import Outbox, delivery_api, webhook_body
from mediad.notify.targets import NotifyTarget

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 8


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Refused(OSError):
    """An address the network policy refuses (raised by the resolver)."""


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver for webhooks: the egress guard's lookup, every address checked;
    aiohttp connects to what this returns, so to checked addresses only."""

    def __init__(self, policy: NetPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await system_resolver(host, port)
        if not found:
            raise OSError(f"cannot resolve {host} (no address)")
        results: list[ResolveResult] = []
        for raw in found:
            address = parse_host_literal(raw)
            if address is None:
                raise OSError(f"the resolver gave a non-address for {host}")
            reason = self.policy.check_address(address, host)
            if reason is not None:
                raise Refused(f"{host} resolves to a refused address: {reason}")
            results.append(
                ResolveResult(
                    hostname=host,
                    host=str(address),
                    port=port,
                    family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        return results

    async def close(self) -> None:
        return None


class Sender:
    def __init__(self, config: Config, outbox: Outbox) -> None:
        self.config = config
        self.settings = config.notifications
        self.outbox = outbox
        self.policy = NetPolicy(config.network.allow_private, config.network.allow_hosts)
        self.lease_s = self.settings.timeout_s * 2 + 10
        self._inflight: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Until cancelled; an unreachable PostgreSQL only delays the next round."""
        connector = aiohttp.TCPConnector(resolver=PolicyResolver(self.policy), use_dns_cache=False)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        try:
            await self._release_own()
            while True:
                self.outbox.wake.clear()
                free = MAX_IN_FLIGHT - len(self._inflight)
                rows = await self._claim(free) if free > 0 else []
                for row in rows:
                    task = asyncio.create_task(self.deliver(row), name=f"notify-{row['id']}")
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                if not rows or len(rows) < free:
                    await self._wait()
        finally:
            for task in self._inflight:
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await self._session.close()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.outbox.wake.set()  # a slot is free

    async def _release_own(self) -> None:
        try:
            released = await self.outbox.release_own_claims()
        except StoreUnavailable:
            return  # the lease runs out instead
        if released:
            log.info("%d notifications this instance was sending are due again", released)

    async def _claim(self, free: int) -> list[Any]:
        try:
            return await self.outbox.claim(free, self.lease_s)
        except StoreUnavailable as exc:
            log.warning("cannot claim notifications: %s", exc)
            return []

    async def _wait(self) -> None:
        try:
            due = await self.outbox.next_due_s()
        except StoreUnavailable:
            due = None
        timeout = self.settings.poll_s if due is None else min(self.settings.poll_s, due)
        try:
            await asyncio.wait_for(self.outbox.wake.wait(), max(timeout, 0.02))
        except TimeoutError:
            pass

    async def deliver(self, row: Any) -> None:
        """One attempt of one row, then its mark and announcement."""
        target = self.outbox.targets.get(row["target"])
        try:
            if target is None:
                raise DeliveryError("the target is no longer configured", permanent=True)
            if target.url is not None:
                await self._webhook(target, target.url, row)
            else:
                await self._apprise(target, row)
        except DeliveryError as exc:
            await self._failed(row, str(exc), permanent=exc.permanent)
            return
        except Exception as exc:  # a bug of ours must not stop the sender
            log.exception("notification %s: unexpected error", row["id"])
            await self._failed(row, f"internal error: {type(exc).__name__}", permanent=False)
            return
        marked = await self._mark(lambda: self.outbox.delivered(row))
        if marked is not None:
            log.info("notification %s delivered to %s", row["id"], row["target"])
            await self.outbox.announce(delivery_api(marked))

    async def _failed(self, row: Any, error: str, *, permanent: bool) -> None:
        s = self.settings
        delay = t.retry_delay_s(row["attempts"], s.retry_backoff_s, s.retry_max_s)
        marked = await self._mark(
            lambda: self.outbox.failed_attempt(row, error, delay, permanent=permanent)
        )
        if marked is None:
            return
        if marked["status"] == "failed":
            log.warning(
                "notification %s to %s given up after %d attempt(s): %s",
                row["id"], row["target"], marked["attempts"], error,
            )  # fmt: skip
        else:
            log.info("notification %s to %s failed (%s); retrying", row["id"], row["target"], error)
        await self.outbox.announce(delivery_api(marked))

    async def _mark(self, write: Callable[[], Awaitable[Any]]) -> Any:
        """Marks are retried briefly; if PostgreSQL stays away the lease runs out and the
        row is sent again (at least once, with the same delivery id)."""
        for delay in (0.2, 1.0, 3.0, None):
            try:
                return await write()
            except StoreUnavailable as exc:
                if delay is None:
                    log.warning("could not mark a notification: %s", exc)
                    return None
                await asyncio.sleep(delay)
        return None

    async def _webhook(self, target: NotifyTarget, url: str, row: Any) -> None:
        reason = self.policy.check_url(url)
        if reason is not None:
            raise DeliveryError(f"refused by the network policy: {reason}", permanent=True)
        body = orjson.dumps(webhook_body(row))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "mediad",
            t.EVENT_HEADER: row["event"],
            t.DELIVERY_HEADER: str(row["id"]),
        }
        if target.secret:
            headers[t.SIGNATURE_HEADER] = t.sign(target.secret, body)
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return
                raise DeliveryError(f"the webhook answered {resp.status}")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, Refused):
                raise DeliveryError(
                    f"refused by the network policy: {exc.os_error}", permanent=True
                ) from None
            raise DeliveryError(f"cannot connect: {exc.os_error}") from None
        except TimeoutError:
            raise DeliveryError(f"no answer within {self.settings.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None

    async def _apprise(self, target: NotifyTarget, row: Any) -> None:
        assert target.apprise is not None
        await self._check_apprise_host(target.apprise)
        payload = row["payload"]
        title, body = t.apprise_message(
            row["event"], payload.get("job"), payload.get("subscription")
        )
        try:
            sent = await asyncio.wait_for(
                asyncio.to_thread(_apprise_notify, target.apprise, title, body),
                self.settings.timeout_s,
            )
        except TimeoutError:
            raise DeliveryError(
                f"Apprise did not finish within {self.settings.timeout_s:g} s"
            ) from None
        if sent is None:
            raise DeliveryError("Apprise does not understand this URL", permanent=True)
        if not sent:
            raise DeliveryError("Apprise could not deliver it (its log says why)")

    async def _check_apprise_host(self, url: str) -> None:
        """The URL's host, if it is an address or resolves to one, must be allowed."""
        try:
            host = urlsplit(url).hostname
        except ValueError as exc:
            raise DeliveryError(f"not a valid URL ({exc})", permanent=True) from None
        if not host:
            return
        reason = self.policy.check_url(f"http://{host}/")
        if reason is None and parse_host_literal(host) is None:
            try:
                await PolicyResolver(self.policy).resolve(host)
            except Refused as exc:
                reason = str(exc)
            except (OSError, UnicodeError):
                pass  # no host to check (tgram://TOKEN/…): Apprise's own servers
        if reason is not None:
            raise DeliveryError(f"refused by the network policy: {reason}", permanent=True)


def _apprise_notify(url: str, title: str, body: str) -> bool | None:
    """Blocking: send through Apprise; None when it does not take the URL."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        return None
    return bool(sender.notify(title=title, body=body))
