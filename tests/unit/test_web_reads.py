"""The read routes' sharing: GET /downloads pages of one list asked together share one
read, equal ones one answer (with the running jobs' live progress), and GET /health
requests that come while the checks run share the next run, whose checks all begin after
they asked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import make_mocked_request

from mediad import inputs
from mediad import web as webapp
from mediad.models import Job
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
    await asyncio.sleep(0.02)  # a while with run 1 under way: nothing new (a negative check)
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


class PageStore:
    """``Store.list_jobs_api`` over the rig's jobs, newest first, counting its calls."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.calls = 0

    async def list_jobs_api(self, *, limit: int, **_: Any) -> list[dict[str, Any]]:
        self.calls += 1
        jobs: list[Job] = sorted(self.rig.store.jobs.values(), key=lambda j: j.created_at)
        return [j.to_api_orjson() for j in jobs[::-1][:limit]]


async def test_pages_of_one_list_asked_together_share_a_read_with_live_progress(
    tmp_path: Path,
) -> None:
    rig = Rig(make_config(tmp_path))
    try:
        rig.connect("s1")
        rig.start()
        queued = [await rig.submit() for _ in range(2)]  # the one slot's first takes it
        running, attempt = queued[0], (await rig.started(queued[0]))[1]
        await rig.progress("s1", running, attempt, stage="merging", progress=42.0, speed=7)
        assert rig.job(running).progress is None  # not flushed: the row is behind
        store = PageStore(rig)
        pages = webapp._pages(store, rig.dispatcher)  # type: ignore[arg-type]
        one = inputs.ListQuery(limit=1)
        other_list = inputs.ListQuery(limit=1, search="elsewhere")
        answers = await asyncio.gather(
            pages.get(one),
            pages.get(one),
            pages.get(inputs.ListQuery(limit=2)),
            pages.get(other_list),
        )
        # Equal queries get one answer; pages of the same list, of any size, one read
        # (the longest); another list its own read.
        assert store.calls == 2
        assert answers[0] is answers[1]
        first = orjson.loads(answers[0] or b"")
        newest = rig.job(queued[1])
        assert [j["jobId"] for j in first["items"]] == [queued[1]]
        assert first["nextCursor"] == inputs.encode_cursor(newest.created_at, newest.id)
        both = orjson.loads(answers[2] or b"")
        assert both["nextCursor"] is None
        live = both["items"][1]
        assert live["jobId"] == running and live["status"] == "running"
        assert (live["stage"], live["progress"], live["speed"]) == ("merging", 42.0, 7)
        assert both["items"][1] == orjson.loads(
            orjson.dumps(rig.dispatcher.snapshot(rig.job(running)).to_api())
        )
    finally:
        await rig.close()
