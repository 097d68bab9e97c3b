"""Notifications end to end: a real service, a local webhook receiver (and Apprise's
``json://`` scheme pointed at it), deliveries recorded with the jobs' terminal writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from mediad.notify.targets import verify
from mediad.service import Service
from tests.support.harness import Api, running_service
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually
from tests.support.receiver import Receiver

SECRET = "webhook-secret-for-tests"


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
async def service(new_module_config: Any, receiver: Receiver) -> AsyncIterator[Service]:
    config = await new_module_config(
        notify=[
            {"name": "hook", "url": receiver.url("hook"), "secret": SECRET},
            {"name": "flaky", "url": receiver.url("flaky"), "default": False},
            {"name": "failures", "url": receiver.url("failures"), "events": ["failed"]},
            {
                "name": "subs",
                "url": receiver.url("subs"),
                "events": ["subscription.new", "subscription.failed"],
                "default": False,
            },
            {
                "name": "app",
                "apprise": f"json://127.0.0.1:{receiver.port}/apprise",
                "default": False,
            },
        ],
        notifications={"retry_backoff_s": 0.05, "retry_max_s": 0.2, "poll_s": 0.5},
        workers={"processes": 1},
    )
    async with running_service(config) as s:
        yield s


async def deliveries(api: Api, job_id: str | None = None, **query: str) -> list[dict[str, Any]]:
    status, body = await api.request("GET", "/notifications", params={"limit": "200", **query})
    assert status == 200, body
    return [d for d in body["items"] if job_id is None or d["jobId"] == job_id]


async def settled(api: Api, job_id: str, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        found = await deliveries(api, job_id)
        done = len(found) == count and all(d["status"] != "pending" for d in found)
        return found if done else None

    return await eventually(check, timeout_s=30, what=f"{count} deliveries of {job_id} settled")


async def test_completed_job_is_delivered_signed_with_the_job_as_get_shows_it(
    api: Api, receiver: Receiver, media_server: MediaServer
) -> None:
    job = await api.submit(media_server.url("blob.bin"))
    done = await api.wait_status(job["jobId"], "completed")
    (delivery,) = await settled(api, job["jobId"], 1)
    assert delivery["target"] == "hook" and delivery["event"] == "completed"
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    (request,) = [r for r in receiver.at("hook") if r.delivery_id == delivery["deliveryId"]]
    assert request.headers["X-Mediad-Event"] == "completed"
    assert request.headers["Content-Type"] == "application/json"
    assert verify(SECRET, request.body, request.headers["X-Mediad-Signature"])
    assert not verify("another secret", request.body, request.headers["X-Mediad-Signature"])
    body = request.json()
    assert body["deliveryId"] == delivery["deliveryId"] and body["event"] == "completed"
    assert body["job"] == await api.job(job["jobId"]) == done
    assert body["subscription"] is None and body["jobIds"] == []
    # "failures" listens to failed only; "flaky" and "app" are not defaults.
    assert not [r for r in receiver.requests if r.path != "/hook" and _job(r) == job["jobId"]]


async def test_failed_job_goes_to_the_targets_listening_to_failed(
    api: Api, receiver: Receiver, media_server: MediaServer
) -> None:
    job = await api.submit(media_server.url("no-such-file.bin"))
    await api.wait_status(job["jobId"], "failed")
    found = await settled(api, job["jobId"], 2)
    assert {d["target"] for d in found} == {"hook", "failures"}
    assert {d["event"] for d in found} == {"failed"}
    (request,) = [r for r in receiver.at("failures") if _job(r) == job["jobId"]]
    assert "X-Mediad-Signature" not in request.headers  # no secret
    assert request.json()["job"]["status"] == "failed"


async def test_500_twice_then_200_is_delivered_once_after_three_attempts(
    api: Api, receiver: Receiver, media_server: MediaServer
) -> None:
    receiver.script("flaky", 500, 500, 200)
    job = await api.submit(media_server.url("blob.bin"), options={"notify": ["flaky"]})
    await api.wait_status(job["jobId"], "completed")
    (delivery,) = await settled(api, job["jobId"], 1)
    assert delivery["target"] == "flaky" and delivery["status"] == "delivered"
    assert delivery["attempts"] == 3 and delivery["deliveredAt"] is not None
    requests = [r for r in receiver.at("flaky") if _job(r) == job["jobId"]]
    assert [r.status for r in requests] == [500, 500, 200]
    assert {r.delivery_id for r in requests} == {delivery["deliveryId"]}
    assert len({r.body for r in requests}) == 1  # the same body on every attempt


async def test_an_empty_notify_list_tells_no_one(api: Api, media_server: MediaServer) -> None:
    job = await api.submit(media_server.url("blob.bin"), options={"notify": []})
    await api.wait_status(job["jobId"], "completed")
    assert await deliveries(api, job["jobId"]) == []


async def test_an_unknown_target_is_refused(api: Api, media_server: MediaServer) -> None:
    url = media_server.url("blob.bin")
    status, body = await api.request(
        "POST", "/downloads", json={"url": url, "options": {"notify": ["hook", "x"]}}
    )
    assert status == 400 and body["error"]["code"] == "unknown_target", body
    assert "'x'" in body["error"]["message"]
    status, body = await api.request(
        "POST", "/downloads", json={"url": url, "options": {"notify": "http://evil/"}}
    )
    assert status == 400 and body["error"]["code"] == "invalid_options", body


async def test_targets_are_listed_without_urls_or_secrets(api: Api) -> None:
    status, body = await api.request("GET", "/notifications/targets")
    assert status == 200
    assert body["items"][0] == {
        "name": "hook", "kind": "webhook", "events": ["completed", "failed"], "default": True
    }  # fmt: skip
    assert [t["kind"] for t in body["items"]] == ["webhook"] * 4 + ["apprise"]
    assert SECRET not in str(body) and "127.0.0.1" not in str(body)


async def test_a_test_notification_and_its_socket_io_updates(
    api: Api, service: Service, receiver: Receiver
) -> None:
    updates: list[dict[str, Any]] = []
    sio = socketio.AsyncClient()
    sio.on("notification-update", updates.append, namespace="/jobs")
    await sio.connect(service.base_url, namespaces=["/jobs"])
    try:
        assert (await sio.call("subscribe", {"all": True}, namespace="/jobs"))["ok"]
        status, delivery = await api.request("POST", "/notifications/targets/hook/test")
        assert status == 202 and delivery["event"] == "test", delivery
        assert delivery["status"] == "pending" and delivery["jobId"] is None
        mine = lambda: [u for u in updates if u["deliveryId"] == delivery["deliveryId"]]  # noqa: E731
        await eventually(lambda: [u for u in mine() if u["status"] == "delivered"], what="update")
        assert mine()[0]["status"] == "pending"
    finally:
        await sio.disconnect()
    (request,) = [r for r in receiver.at("hook") if r.delivery_id == delivery["deliveryId"]]
    assert request.json()["event"] == "test" and request.json()["job"] is None
    status, body = await api.request("POST", "/notifications/targets/nobody/test")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_apprise_json_target_reaches_the_receiver(api: Api, receiver: Receiver) -> None:
    status, delivery = await api.request("POST", "/notifications/targets/app/test")
    assert status == 202, delivery

    async def done() -> list[dict[str, Any]]:
        return [
            d for d in await deliveries(api)
            if d["deliveryId"] == delivery["deliveryId"] and d["status"] != "pending"
        ]  # fmt: skip

    (final,) = await eventually(done, timeout_s=30, what="the Apprise delivery")
    assert final["status"] == "delivered", final
    (request,) = receiver.at("apprise")
    sent = request.json()  # Apprise's JSON: {version, title, message, type, …}
    assert sent["title"] == "mediad: test" and "test notification" in sent["message"]


async def test_deliveries_page_by_cursor_and_filter_by_status(api: Api) -> None:
    for _ in range(3):
        status, _body = await api.request("POST", "/notifications/targets/failures/test")
        assert status == 202
    status, first = await api.request("GET", "/notifications", params={"limit": "2"})
    assert status == 200 and len(first["items"]) == 2 and first["nextCursor"]
    status, second = await api.request(
        "GET", "/notifications", params={"limit": "2", "cursor": first["nextCursor"]}
    )
    assert status == 200
    seen = [d["deliveryId"] for d in first["items"] + second["items"]]
    assert len(set(seen)) == len(seen)
    for bad in ({"status": "lost"}, {"limit": "0"}, {"cursor": "nope"}, {"other": "1"}):
        status, body = await api.request("GET", "/notifications", params=bad)
        assert status == 400 and body["error"]["code"] in ("bad_query", "bad_cursor"), bad
    status, body = await api.request("GET", "/notifications", params={"status": "failed"})
    assert status == 200 and all(d["status"] == "failed" for d in body["items"])


# -- the network policy and giving up: a service whose policy allows 127.0.0.2 only


@pytest.fixture(scope="module")
async def strict_receiver() -> AsyncIterator[Receiver]:
    async with Receiver(host="127.0.0.2") as r:
        yield r


@pytest.fixture(scope="module")
async def strict(
    new_module_config: Any, receiver: Receiver, strict_receiver: Receiver
) -> AsyncIterator[Api]:
    config = await new_module_config(
        notify=[
            {"name": "loop", "url": receiver.url("loop")},  # 127.0.0.1: refused
            {"name": "named", "url": f"http://localhost:{receiver.port}/named"},
            {"name": "down", "url": strict_receiver.url("down")},  # allowed, always 500
            {"name": "app", "apprise": f"json://127.0.0.1:{receiver.port}/strict-apprise"},
        ],
        network={"allow_hosts": ["127.0.0.2"]},
        notifications={"give_up_after_s": 1, "retry_backoff_s": 0.1, "poll_s": 0.5},
        workers={"processes": 1},
    )
    async with running_service(config) as s:
        client = Api(s.base_url)
        yield client
        await client.close()


async def _tested(api: Api, name: str) -> dict[str, Any]:
    status, delivery = await api.request("POST", f"/notifications/targets/{name}/test")
    assert status == 202, delivery

    async def final() -> dict[str, Any] | None:
        for d in await deliveries(api):
            if d["deliveryId"] == delivery["deliveryId"] and d["status"] != "pending":
                return d
        return None

    return await eventually(final, timeout_s=30, what=f"the delivery to {name} to settle")


@pytest.mark.parametrize("name", ["loop", "named", "app"])
async def test_a_loopback_target_is_refused_at_once(
    strict: Api, receiver: Receiver, name: str
) -> None:
    before = len(receiver.requests)
    delivery = await _tested(strict, name)
    assert delivery["status"] == "failed" and delivery["attempts"] == 1, delivery
    assert "refused by the network policy" in delivery["lastError"]
    assert "loopback" in delivery["lastError"]
    assert len(receiver.requests) == before  # nothing reached it


async def test_a_target_that_keeps_failing_is_given_up(
    strict: Api, strict_receiver: Receiver
) -> None:
    strict_receiver.script("down", *[500] * 1000)
    delivery = await _tested(strict, "down")
    assert delivery["status"] == "failed" and delivery["lastError"] == "the webhook answered 500"
    requests = [r for r in strict_receiver.at("down") if r.delivery_id == delivery["deliveryId"]]
    assert delivery["attempts"] == len(requests) >= 2
    assert delivery["nextAttemptAt"] is None and delivery["deliveredAt"] is None


def _job(request: Any) -> str | None:
    try:
        job = request.json().get("job")
    except ValueError:
        return None
    return job.get("jobId") if isinstance(job, dict) else None


async def test_a_subscription_check_notifies_of_new_entries_and_of_its_failure(
    api: Api, receiver: Receiver, media_server: MediaServer
) -> None:
    """``subscription.new`` names the jobs a check created; ``subscription.failed`` comes
    from a check that failed; both recorded with the check's end, to the subscription's
    ``options.notify`` (its jobs' ``completed`` go nowhere: "subs" does not listen to it)."""
    from tests.integration.test_subscriptions import check, new_feed

    name, url = new_feed(media_server, 2)
    body = {"url": url, "intervalS": 3600, "enabled": False, "options": {"notify": ["subs"]}}
    status, sub = await api.request("POST", "/subscriptions", json=body)
    assert status == 201, sub
    sub_id = sub["subscriptionId"]
    assert (await check(api, sub_id))["created"] == 2

    async def of_sub(count: int) -> list[dict[str, Any]] | None:
        found = [d for d in await deliveries(api) if d["subscriptionId"] == sub_id]
        done = len(found) == count and all(d["status"] == "delivered" for d in found)
        return sorted(found, key=lambda d: d["createdAt"]) if done else None

    (new,) = await eventually(lambda: of_sub(1), timeout_s=30, what="subscription.new")
    assert new["target"] == "subs" and new["event"] == "subscription.new"
    (request,) = [r for r in receiver.at("subs") if r.delivery_id == new["deliveryId"]]
    sent = request.json()
    jobs = [j for j in (await api.request("GET", "/downloads"))[1]["items"]
            if j["subscriptionId"] == sub_id]  # fmt: skip
    assert sorted(sent["jobIds"]) == sorted(j["jobId"] for j in jobs) and len(jobs) == 2
    assert sent["subscription"]["subscriptionId"] == sub_id and sent["job"] is None
    assert sent["subscription"]["lastCheck"]["created"] == 2

    media_server.remove(name)
    assert (await check(api, sub_id))["status"] == "failed"
    _, failed = await eventually(lambda: of_sub(2), timeout_s=30, what="subscription.failed")
    assert failed["event"] == "subscription.failed" and failed["target"] == "subs"
    body_failed = [r for r in receiver.at("subs") if r.delivery_id == failed["deliveryId"]]
    assert body_failed[0].json()["subscription"]["lastCheck"]["status"] == "failed"
