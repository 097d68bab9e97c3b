"""Following one job over Socket.IO (``/jobs``) until it ends, with REST to fall back on.

python-socketio's client is imported when a job is followed, not with this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from mediad.client_cli.display import TERMINAL, Display
from mediad.client_cli.exits import (
    EXIT_CANCELLED,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    ClientError,
    reason,
)
from mediad.client_cli.rest import CONNECT_TIMEOUT_S, Client

IDLE_CHECK_S = 30.0  # with no event for this long, `get` asks for the job over REST
EVENTS = ("progress", "completed", "failed", "job-update", "connect", "disconnect")


async def follow(client: Client, job_id: str, display: Display) -> dict[str, Any]:
    """Follow a job over Socket.IO until it ends; return it as GET /downloads/{id} has it.

    The subscription's ack carries the job as it is, so a job that ended before the
    subscription (or while the socket was reconnecting: every connect subscribes again)
    is seen ending; with no event for IDLE_CHECK_S the job is asked for over REST, which
    also notices a job deleted meanwhile.
    """
    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    sio = await _connect(client, job_id, inbox)
    try:
        while True:
            try:
                kind, data = await asyncio.wait_for(inbox.get(), IDLE_CHECK_S)
            except TimeoutError:
                kind, data = "idle", None
            status = await _handle(
                kind, data, sio=sio, client=client, job_id=job_id, display=display
            )
            if status in TERMINAL:
                final = await _fetch_job(client, job_id)
                display.job(final)
                return final
    finally:
        await sio.disconnect()


async def _connect(client: Client, job_id: str, inbox: asyncio.Queue[tuple[str, Any]]) -> Any:
    """A connected ``socketio.AsyncClient`` that puts every /jobs event into ``inbox``."""
    import socketio

    def recorder(name: str) -> Callable[..., None]:
        def record(data: Any = None) -> None:
            inbox.put_nowait((name, data))

        return record

    sio = socketio.AsyncClient(
        reconnection=True,
        reconnection_delay=0.5,
        reconnection_delay_max=5,
        logger=False,
        engineio_logger=False,
    )
    for name in EVENTS:
        sio.on(name, recorder(name), namespace="/jobs")
    parts = urlsplit(client.base_url)
    try:
        await sio.connect(
            f"{parts.scheme}://{parts.netloc}",
            namespaces=["/jobs"],
            socketio_path=parts.path.rstrip("/") + "/socket.io",
            transports=["websocket"],
            headers=client.headers,
            auth={"token": client.token} if client.token else None,
            wait_timeout=CONNECT_TIMEOUT_S,
        )
    except socketio.exceptions.ConnectionError as exc:
        refused = "token" in str(exc)
        raise ClientError(
            EXIT_REFUSED if refused else EXIT_UNREACHABLE,
            f"cannot follow job {job_id} over Socket.IO: {reason(exc)}",
        ) from None
    return sio


async def _handle(
    kind: str, data: Any, *, sio: Any, client: Client, job_id: str, display: Display
) -> str | None:
    """Show one event (or ``idle``: nothing came for IDLE_CHECK_S); the job's status when
    the event tells it."""
    if kind == "connect":
        return await _subscribe(sio, job_id, display)
    if kind == "idle":
        job = await _fetch_job(client, job_id)
        display.job(job)
        return _status(job)
    if kind == "disconnect":
        display.note("connection lost; reconnecting")
        return None
    if not isinstance(data, dict) or data.get("jobId") != job_id:
        return None
    if kind == "progress":
        display.progress(data)
        return None
    if kind == "job-update":
        display.job(data)
        return _status(data)
    return kind  # completed or failed


async def _subscribe(sio: Any, job_id: str, display: Display) -> str | None:
    try:
        ack = await sio.call("subscribe", {"jobId": job_id}, namespace="/jobs", timeout=10)
    except Exception:  # disconnected meanwhile or timed out: the next connect tries again
        return None
    if not isinstance(ack, dict) or not ack.get("ok"):
        error = (ack or {}).get("error") if isinstance(ack, dict) else None
        if isinstance(error, dict) and error.get("code") == "not_found":
            raise ClientError(EXIT_CANCELLED, f"job {job_id} was deleted")
        raise ClientError(EXIT_UNREACHABLE, f"cannot follow job {job_id}: {error or ack}")
    job = ack.get("job") or {}
    display.job(job)
    return _status(job)


def _status(job: Mapping[str, Any]) -> str | None:
    status = job.get("status")
    return status if isinstance(status, str) else None


async def _fetch_job(client: Client, job_id: str) -> dict[str, Any]:
    try:
        job: dict[str, Any] = await client.request("GET", f"/downloads/{job_id}")
    except ClientError as exc:
        if exc.http_status == 404:
            raise ClientError(EXIT_CANCELLED, f"job {job_id} was deleted") from None
        raise
    return job
