"""What the egress guard records about a failed connection, and its verdict on a job
(mediad/egress/causes.py, pure)."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from mediad.egress import Blocked, UpstreamFailure, Verdict, causes
from mediad.states import JOB_TRANSIENT_ERRORS, TRANSIENT_ERRORS

REFUSED = causes.not_connected("127.0.0.1", 9, "127.0.0.1", ConnectionRefusedError(), 15)
UNRESOLVED = causes.unresolved(
    "www.example.invalid", 443, socket.gaierror(socket.EAI_NONAME, "Name or service not known"), 15
)
BLOCKED = Blocked("10.0.0.5", 80, "10.0.0.5", "private address 10.0.0.5")


def test_unresolved_names_the_host_and_the_resolvers_words() -> None:
    assert UNRESOLVED == UpstreamFailure(
        "www.example.invalid",
        443,
        None,
        "unresolved",
        "could not resolve www.example.invalid (Name or service not known)",
    )
    assert UNRESOLVED.error_code == "network"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (None, "could not resolve a.test (no address)"),
        (TimeoutError(), "could not resolve a.test (no answer within 2.5 s)"),
        (UnicodeError("label empty"), "could not resolve a.test (not a valid host name)"),
        (OSError("odd"), "could not resolve a.test (odd)"),
    ],
)
def test_unresolved_reasons(exc: BaseException | None, reason: str) -> None:
    assert causes.unresolved("a.test", 80, exc, 2.5).reason == reason


@pytest.mark.parametrize(
    ("host", "address", "exc", "cause", "reason"),
    [
        ("127.0.0.1", "127.0.0.1", ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused", "connection to 127.0.0.1:9 refused"),
        ("www.example.com", "203.0.113.5", ConnectionRefusedError(), "refused", "connection to www.example.com:9 (203.0.113.5) refused"),
        ("::1", "::1", ConnectionRefusedError(), "refused", "connection to [::1]:9 refused"),
        ("h.test", "203.0.113.5", TimeoutError(), "timeout", "connection to h.test:9 (203.0.113.5) timed out (no answer within 15 s)"),
        ("h.test", "203.0.113.5", OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable", "no route to h.test:9 (203.0.113.5) (Network is unreachable)"),
        ("h.test", "203.0.113.5", OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable", "no route to h.test:9 (203.0.113.5) (No route to host)"),
        ("h.test", "203.0.113.5", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "failed", "connection to h.test:9 (203.0.113.5) failed (Connection reset by peer)"),
        ("h.test", None, None, "failed", "connection to h.test:9 failed"),
    ],
)  # fmt: skip
def test_not_connected_reasons(
    host: str, address: str | None, exc: BaseException | None, cause: str, reason: str
) -> None:
    failure = causes.not_connected(host, 9, address, exc, 15)
    assert (failure.cause, failure.reason, failure.address) == (cause, reason, address)
    assert failure.error_code == "network"


def test_tls_failure_says_what_the_handshake_said() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.reason = "CERTIFICATE_VERIFY_FAILED"
    exc.verify_message = "self-signed certificate"
    failure = causes.not_connected("h.test", 443, "127.0.0.1", exc, 15)
    assert failure.cause == "tls"
    assert failure.reason == (
        "TLS with h.test:443 (127.0.0.1) failed: CERTIFICATE_VERIFY_FAILED"
        " (self-signed certificate)"
    )


def test_a_bad_response_is_the_sites_doing() -> None:
    failure = causes.bad_response("h.test", 8080)
    assert failure.reason == "h.test:8080 did not answer with HTTP"
    assert failure.error_code == "http_error"


def test_the_codes_keep_their_retry_semantics() -> None:
    # The guard's causes reuse the codes tools give the same failures: a connection that
    # could not be made is worth another attempt, a refusal and a non-HTTP origin are not.
    assert "network" in JOB_TRANSIENT_ERRORS
    assert "blocked_address" not in TRANSIENT_ERRORS
    assert "http_error" not in TRANSIENT_ERRORS


# -- the verdict ---------------------------------------------------------------------------


def test_nothing_recorded_leaves_the_tool_alone() -> None:
    assert causes.verdict([], [], None) is None
    assert causes.verdict([], [], "network", "Unable to download webpage") is None


def test_a_refusal_wins_even_over_success() -> None:
    expected = Verdict(
        "blocked_address",
        "refused a connection to 10.0.0.5:80: private address 10.0.0.5"
        " (network.allow_private / network.allow_hosts)",
    )
    assert causes.verdict([BLOCKED], [], None) == expected
    assert causes.verdict([BLOCKED], [REFUSED], "http_error", "HTTP Error 403") == expected
    assert causes.verdict([BLOCKED], [], "not_found", "HTTP Error 404") == expected


def test_an_upstream_failure_never_fails_a_successful_job() -> None:
    assert causes.verdict([], [REFUSED, UNRESOLVED], None) is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("http_error", "Unable to download webpage: HTTP Error 502: Bad Gateway"),  # yt-dlp, http
        ("network", "Unable to download webpage: ('Unable to connect to proxy', OSError('Tunnel connection failed: 502 Bad Gateway'))"),  # yt-dlp, https
        ("http_error", "Server overloaded or in maintenance: The response status is not successful. status=502"),  # aria2, http
        ("tool_failed", "Proxy connection failed."),  # aria2, https
        ("http_error", "HTTP error 502 Bad Gateway (http://a.test/x.mp4: Server returned 5XX Server Error reply)"),  # ffmpeg
        ("http_error", "http://a.test/x.mp4: Server returned 5XX Server Error reply"),  # ffmpeg
        ("http_error", "none of the media could be downloaded: 1 request(s) failed"),  # twmd
    ],
)  # fmt: skip
def test_the_guards_cause_replaces_the_tools_words(code: str, message: str) -> None:
    assert causes.verdict([], [UNRESOLVED, REFUSED], code, message) == Verdict(
        "network", "connection to 127.0.0.1:9 refused"
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("not_found", "Unable to download webpage: HTTP Error 404: Not Found"),
        ("http_error", "Unable to download webpage: HTTP Error 403: Forbidden"),
        ("http_error", "Server returned 403 Forbidden (access denied)"),
        ("http_error", "HTTP error 500 Internal Server Error"),
        ("http_error", "Bad or unexpected HTTP response: status=503"),
        ("unsupported_url", "Unsupported URL: http://a.test/"),
        ("disk_full", "No space left on device"),
        ("too_large", "over storage.max_job_bytes"),
        ("rate_limited", "HTTP 429"),
        ("interrupted", "yt-dlp was stopped by signal 9"),
        ("timeout", "twmd printed nothing for 300 s"),
    ],
)
def test_the_sites_own_verdict_stands(code: str, message: str) -> None:
    assert causes.verdict([], [REFUSED], code, message) is None


def test_the_last_failure_is_named() -> None:
    assert causes.verdict([], [REFUSED, UNRESOLVED], "tool_failed", "x") == Verdict(
        "network", UNRESOLVED.reason
    )
    bad = causes.bad_response("h.test", 80)
    assert causes.verdict([], [REFUSED, bad], "tool_failed", "x") == Verdict(
        "http_error", "h.test:80 did not answer with HTTP"
    )


def test_endpoint_forms() -> None:
    assert causes.endpoint("a.test", 80) == "a.test:80"
    assert causes.endpoint("a.test", 80, "a.test") == "a.test:80"
    assert causes.endpoint("a.test", 80, "2001:db8::1") == "a.test:80 (2001:db8::1)"
    assert causes.endpoint("2001:db8::1", 443, "2001:db8::1") == "[2001:db8::1]:443"
