"""What the store makes of driver errors: PostgreSQL's death is unavailability (503 and
retried writes), never an unhandled error (500, or a job failed with internal_error)."""

from __future__ import annotations

import asyncpg
import pytest

from mediad import store
from mediad.errors import StoreUnavailable


@pytest.mark.parametrize(
    "exc",
    [
        # Found by the chaos test: a pooled connection the SIGKILLed postmaster left
        # mid-operation, handed to the next request.
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_postgres_gone_is_unavailability(exc: Exception) -> None:
    with pytest.raises(StoreUnavailable), store._translated():
        raise exc
