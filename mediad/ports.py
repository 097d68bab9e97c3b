"""What the dispatcher needs of the socket layer, as two narrow ports.

``hub.py`` implements both over Socket.IO (namespaces and room names live there); the
unit tests implement them in memory (``tests/support/fakes.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

from mediad import wire
from mediad.models import Job


class WorkerChannel(Protocol):
    """Messages to one connected worker."""

    async def start(self, sid: str, message: wire.JobStart) -> None: ...

    async def control(self, sid: str, message: wire.JobControl) -> None: ...

    async def listing(self, sid: str, message: wire.ListingStart) -> None: ...


class Publisher(Protocol):
    """What the clients following jobs are told."""

    async def job_update(self, job: Job) -> None: ...

    async def progress(self, job_id: str, live: wire.Live) -> None: ...

    async def completed(self, job: Job) -> None: ...

    async def failed(self, job_id: str, error_code: str, message: str) -> None: ...

    async def subscription_update(self, subscription: dict[str, Any]) -> None: ...

    async def subscription_deleted(self, subscription_id: str) -> None: ...

    async def cookies_update(self, listing: dict[str, Any]) -> None: ...

    async def notification_update(self, delivery: dict[str, Any]) -> None: ...
