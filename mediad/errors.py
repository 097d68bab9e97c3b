"""mediad's exceptions: one root, translated at each boundary.

    MediadError
    ├── ConfigError             a bad configuration value (names the key)
    ├── ServiceError            a managed server (PostgreSQL, Redis, aria2) did not start
    ├── StoreUnavailable        PostgreSQL cannot be reached (asyncpg errors end here)
    ├── QueueUnavailable        Redis cannot be reached (redis-py errors end here)
    ├── InvalidEvent            a worker or client event that fails validation
    └── ApiError                an answer for a REST client: status, code, message
        ├── BadRequest          400
        ├── Unauthorized        401
        ├── NotFound            404
        ├── Conflict            409
        ├── PayloadTooLarge     413
        ├── TooManyRequests     429 (with Retry-After)
        └── InsufficientStorage 507

A subclass's docstring is its default message.
"""

from __future__ import annotations


class MediadError(Exception):
    """mediad failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(MediadError):
    """The configuration is invalid."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config: {key}: {problem}")


class ServiceError(MediadError):
    """A managed service failed to start."""


class StoreUnavailable(MediadError):
    """PostgreSQL is unavailable."""


class QueueUnavailable(MediadError):
    """Redis is unavailable."""


class InvalidEvent(MediadError):
    """The event is invalid."""


class ApiError(MediadError):
    """The request failed."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(ApiError):
    """The request is invalid."""

    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    """A valid API token is required."""

    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    """Not found."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The job's status does not allow this."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    """The request body is too large."""

    status = 413
    code = "payload_too_large"


class TooManyRequests(ApiError):
    """Too many requests: slow down."""

    status = 429
    code = "rate_limited"


class InsufficientStorage(ApiError):
    """The disk is too full to accept new jobs."""

    status = 507
    code = "insufficient_storage"
