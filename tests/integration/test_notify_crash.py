"""The outbox survives a SIGKILL: jobs complete, their webhook deliveries are in flight
(the receiver holds them), the service is killed, started again on the same database,
and every delivery arrives exactly once answered 2xx, with the delivery id it had."""

from __future__ import annotations

import shutil
from collections import Counter
from typing import Any

from tests.support.cluster import Cluster
from tests.support.harness import Databases, RedisServer, shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually
from tests.support.receiver import Receiver

JOBS = 3


async def test_sigkill_between_the_terminal_write_and_the_delivery_loses_nothing(
    databases: Databases, redis_server: RedisServer, media_server: MediaServer
) -> None:
    root = shared_tmp("mediad-test-notify-crash-")
    async with Receiver() as receiver:
        held = receiver.hold_all("crash")
        cluster = Cluster(
            root, await databases.create(), redis_server.url,
            notify=[{"name": "hook", "url": receiver.url("crash"), "secret": "s3cret-s3cret"}],
            notifications={"timeout_s": 60, "poll_s": 0.5, "retry_backoff_s": 0.1},
            workers={"processes": 1},
        )  # fmt: skip
        instance = cluster.add("a")
        try:
            await cluster.start()
            figures = await _crash_and_restart(cluster, instance, receiver, held, media_server)
        finally:
            await cluster.close()
            print(cluster.logs())
            shutil.rmtree(root, ignore_errors=True)
    print(
        "notifications: {sent} sent (requests), {retried} retried, {delivered} delivered,"
        " {lost} lost, {duplicated} duplicated".format(**figures)
    )
    assert figures["lost"] == 0 and figures["duplicated"] == 0
    assert figures["delivered"] == JOBS and figures["retried"] == JOBS


async def _crash_and_restart(
    cluster: Cluster, instance: Any, receiver: Receiver, held: Any, media_server: MediaServer
) -> dict[str, int]:
    api = instance.api()
    try:
        jobs = [(await api.submit(media_server.url("blob.bin")))["jobId"] for _ in range(JOBS)]
        for job_id in jobs:
            await api.wait_status(job_id, "completed")
        # Every delivery reached the receiver, which does not answer: not yet delivered.
        await eventually(
            lambda: len({r.delivery_id for r in receiver.at("crash")}) == JOBS,
            timeout_s=30, what="every delivery to be in flight",
        )  # fmt: skip
        before = {r.delivery_id: r.json()["job"]["jobId"] for r in receiver.at("crash")}
    finally:
        await api.close()
    instance.kill()
    await instance.gone()
    held.set()  # the held requests end (503, to a client that is gone)
    await instance.start()
    api = instance.api()
    try:

        async def all_delivered() -> list[dict[str, Any]] | None:
            status, body = await api.request("GET", "/notifications")
            assert status == 200, body
            items = body["items"]
            return items if len(items) == JOBS and all(
                d["status"] == "delivered" for d in items
            ) else None  # fmt: skip

        final = await eventually(all_delivered, timeout_s=60, what="every delivery delivered")
        statuses = [(await api.job(j))["status"] for j in jobs]
    finally:
        await api.close()
    requests = receiver.at("crash")
    answered_ok = Counter(r.delivery_id for r in requests if r.status == 200)
    assert {d["deliveryId"] for d in final} == set(before) == set(answered_ok)
    assert sorted(before.values()) == sorted(jobs) and statuses == ["completed"] * JOBS
    assert all(d["attempts"] == 2 for d in final), final
    ids = {r.delivery_id for r in requests}
    return {
        "sent": len(requests),
        "retried": len(requests) - len(ids),
        "delivered": len(answered_ok),
        "lost": len(set(jobs) - set(before.values())) + len(set(before) - set(answered_ok)),
        "duplicated": sum(n - 1 for n in answered_ok.values()),
    }
