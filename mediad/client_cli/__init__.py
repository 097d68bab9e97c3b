"""The command line for people and scripts: ``mediad get | ls | show | cancel | pause |
resume | retry | stop | rm`` against a running mediad, and ``backup | restore`` of its
job store (mediad/backup.py).

Only the standard library (and mediad.config) is imported at module level, in every
module of this package: ``mediad serve`` builds its argument parser with these commands
in it and must not pay for aiohttp's client, python-socketio's client or rich (the
progress display) at start-up.

The package: ``commands`` (the arguments, and what each command does), ``rest`` (the REST
client; where the server and the token come from), ``following`` (one job followed over
Socket.IO), ``display`` (what ``get`` shows while it waits), ``formats`` (sizes, speeds,
the table of ``ls``, the details of ``show``) and ``exits`` (the codes below). The names
other code and the tests use are here.

Exit codes (README, "Command line"):

====  ==================================================================================
0     done: the job completed (``get``), the request was carried out
1     the job failed (its error code and message on stderr); backup/restore failed
2     bad arguments or configuration
3     the job was cancelled or deleted while ``get`` waited for it
4     refused: the server answered 4xx (its message on stderr, a 409 with the job's
      status), or ``restore`` into a store that is not empty
5     the server could not be reached, or answered 5xx or something that is not mediad
6     the job completed but its files could not be saved to ``--output``
130   interrupted (Ctrl-C): the job goes on in the service
====  ==================================================================================
"""

from __future__ import annotations

from mediad.client_cli.commands import ACTIONS, JOB_TYPES, PAGE_LIMIT, parse_option, register
from mediad.client_cli.display import TERMINAL, Display, PlainDisplay, RichDisplay, make_display
from mediad.client_cli.exits import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_FILES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ClientError,
)
from mediad.client_cli.following import follow
from mediad.client_cli.formats import (
    human_bytes,
    human_eta,
    human_speed,
    job_details,
    job_table,
    progress_line,
)
from mediad.client_cli.rest import Client, answer_error, api_token, server_url

__all__ = [
    "ACTIONS",
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_FILES",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "JOB_TYPES",
    "PAGE_LIMIT",
    "TERMINAL",
    "Client",
    "ClientError",
    "Display",
    "PlainDisplay",
    "RichDisplay",
    "answer_error",
    "api_token",
    "follow",
    "human_bytes",
    "human_eta",
    "human_speed",
    "job_details",
    "job_table",
    "make_display",
    "parse_option",
    "progress_line",
    "register",
    "server_url",
]
