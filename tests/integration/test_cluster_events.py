"""ClusterEvents (Socket.IO events between instances through Redis): publishing has its
own Redis client and never replaces the pubsub the listener subscribes with (replacing
it while its subscribe connected left that connection open for the garbage collector)."""

from __future__ import annotations

import redis.asyncio as aioredis

from mediad.sockets import ClusterEvents
from tests.support.harness import RedisServer
from tests.support.polling import eventually
from tests.support.ports import fixed_port

CHANNEL = "mediad-test-cluster-events"


async def test_publishing_leaves_the_listeners_pubsub_alone(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    subscriber = client.pubsub(ignore_subscribe_messages=True)
    await subscriber.subscribe(CHANNEL)
    up = ClusterEvents(redis_server.url, CHANNEL)
    down = ClusterEvents(f"redis://127.0.0.1:{fixed_port()}/0", CHANNEL)
    try:
        for events in (up, down):
            events.pubsub = client.pubsub()  # as the listener's would be
        listening = {id(events): events.pubsub for events in (up, down)}
        assert await down._publish({"event": "lost"}) is None  # dropped, no error
        assert await up._publish({"event": "sent"}) == 1  # the one subscriber got it

        async def received() -> bool:
            message = await subscriber.get_message(timeout=0.1)
            return message is not None and b"sent" in message["data"]

        await eventually(received, timeout_s=10, what="the published event")
        for events in (up, down):
            assert events.pubsub is listening[id(events)]
        assert down._publisher is None  # the failed client was let go
    finally:
        await up.close()
        await down.close()
        await subscriber.aclose()
        await client.aclose()
