"""A scripted ``/worker`` client: a real Socket.IO client speaking the worker protocol,
driven by the test. It never fetches anything.

By default it only records what the server sends (``starts`` by job id, ``controls`` in
order); ``on_start`` scripts an answer to each ``job:start`` and ``confirm_stops`` answers
every ``job:control`` with ``stopped``. ``emit`` encodes with the
stdlib, as a worker process does, so NaN, huge integers and lone surrogates go through.
Given the service's ``storage`` (its config), it proves it shares the data and tmp
folders as a real worker does (mediad/probe.py); without, the server refuses it once its
token is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import socketio

from mediad import probe, results, wire
from mediad.config import Config

# `emit(event, NO_PAYLOAD)` sends the event with no argument at all; as ``auth``, it means
# "the token and worker id given".
NO_PAYLOAD: Any = object()

OnStart = Callable[["ScriptedWorker", dict[str, Any]], Awaitable[None]]


def _has_bytes(value: Any) -> bool:
    if isinstance(value, bytes):
        return True
    if isinstance(value, dict):
        return any(_has_bytes(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_bytes(v) for v in value)
    return False


class ScriptedWorker:
    def __init__(
        self,
        base_url: str,
        worker_id: str = "test-worker",
        *,
        token: str | None = None,
        auth: Any = NO_PAYLOAD,
        data_dir: Path | None = None,
        on_start: OnStart | None = None,
        confirm_stops: bool = False,
        storage: Config | None = None,
    ) -> None:
        self.base_url = base_url
        self.worker_id = worker_id
        if auth is NO_PAYLOAD:
            auth = {"token": token, "workerId": worker_id} if token is not None else None
        self.auth = auth
        self.data_dir = data_dir
        self.on_start = on_start
        self.confirm_stops = confirm_stops
        self.storage = storage
        self.sio = socketio.AsyncClient(reconnection=False)
        self.starts: dict[str, dict[str, Any]] = {}
        self.controls: list[dict[str, Any]] = []
        self.sio.on(wire.JOB_START, self._on_start, namespace="/worker")
        self.sio.on(wire.JOB_CONTROL, self._on_control, namespace="/worker")

    async def connect(self) -> ScriptedWorker:
        auth = self.auth
        if self.storage is not None and isinstance(auth, dict):
            c = self.storage
            auth = {**auth, "probe": probe.write(c.data_path, c.tmp_path, self.worker_id)}
        await self.sio.connect(
            self.base_url, namespaces=["/worker"], auth=auth, transports=["websocket"],
            wait_timeout=5,
        )  # fmt: skip
        return self

    async def close(self) -> None:
        await self.sio.disconnect()

    def start_of(self, index: int = 0) -> dict[str, Any]:
        """The ``index``-th job:start received."""
        return list(self.starts.values())[index]

    async def emit(self, event: str, data: Any) -> None:
        if _has_bytes(data):
            await self.sio.emit(event, data, namespace="/worker")
            return
        # In this process python-socketio would use the server's orjson, which refuses
        # what a misbehaving worker may send.
        args = [event] if data is NO_PAYLOAD else [event, data]
        await self.sio.eio.send("2/worker," + json.dumps(args))

    def stage(self, job_id: str, attempt: int, files: dict[str, bytes]) -> Path:
        """Put files where a worker stages an attempt's result."""
        assert self.data_dir is not None, "staging needs the service's data_dir"
        staging = results.staging_dir(self.data_dir, job_id, attempt)
        staging.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (staging / name).write_bytes(content)
        return staging

    async def complete(self, job_id: str, attempt: int, files: dict[str, bytes]) -> None:
        self.stage(job_id, attempt, files)
        entries = [{"name": n, "size": len(c)} for n, c in files.items()]
        await self.emit("completed", {"jobId": job_id, "attempt": attempt, "files": entries})

    async def _on_start(self, data: dict[str, Any]) -> None:
        self.starts[data["jobId"]] = data
        if self.on_start is not None:
            await self.on_start(self, data)

    async def _on_control(self, data: dict[str, Any]) -> None:
        self.controls.append(data)
        if self.confirm_stops:
            await self.emit("stopped", {"jobId": data["jobId"], "attempt": data["attempt"]})
