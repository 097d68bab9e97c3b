"""GET /health: requests that come while the checks run share the next run, whose
checks all begin after they asked (coalesce.Shared)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import make_mocked_request

from mediad import web as webapp
from tests.support.fakes import Rig, make_config
from tests.support.polling import eventually


async def test_requests_during_a_run_share_the_next_and_see_what_changed(
    tmp_path: Path,
) -> None:
    rig = Rig(make_config(tmp_path))
    gate = asyncio.Event()
    runs: list[int] = []

    async def slow_part() -> dict[str, Any]:  # an optional part that takes its time
        runs.append(1)
        await gate.wait()
        return {"status": "ok"}

    parts = webapp.Parts(
        rig.store,  # type: ignore[arg-type]  # the fakes have the methods /health calls
        rig.queue,  # type: ignore[arg-type]
        rig.dispatcher,
        rig.controller,
        {"slow": slow_part},
    )
    app = webapp.create_app(rig.config, parts)

    def ask() -> asyncio.Future[Any]:
        return asyncio.ensure_future(webapp.health(make_mocked_request("GET", "/health", app=app)))

    first = ask()
    await eventually(lambda: runs == [1], timeout_s=2, interval_s=0.001, what="the first run")
    during = [ask() for _ in range(5)]
    await asyncio.sleep(0.02)
    assert runs == [1]  # one run at a time: the five wait for the next
    rig.connect("s1")  # meanwhile a worker comes
    gate.set()
    answer = await first
    assert answer.status == 503  # no worker when its checks ran
    answers = await asyncio.gather(*during)
    assert runs == [1, 1]  # one run for the five, begun after they asked
    for later in answers:
        body = orjson.loads(later.body)
        assert later.status == 200 and body["checks"]["workers"]["connected"] == 1, body
        assert set(body["checks"]) == {"postgres", "redis", "slow", "workers"}
    assert rig.store.calls["ping"] == 2 and rig.queue.calls["ping"] == 2
