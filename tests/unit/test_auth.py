"""mediad.auth: per-worker tokens, the shared worker token, and API token matching."""

from __future__ import annotations

from typing import Any

import pytest

from mediad.auth import WorkerTokens, matches_any, new_token

SHARED = "s" * 32


def test_new_tokens_are_long_and_distinct() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) >= 32 for t in tokens)


def test_issued_token_works_for_its_worker() -> None:
    tokens = WorkerTokens()
    token = tokens.issue("w1")
    assert tokens.check("w1", token)


def test_issued_tokens_differ_per_worker() -> None:
    tokens = WorkerTokens()
    assert tokens.issue("w1") != tokens.issue("w2")


def test_another_workers_token_fails() -> None:
    tokens = WorkerTokens()
    t1 = tokens.issue("w1")
    t2 = tokens.issue("w2")
    assert not tokens.check("w1", t2)
    assert not tokens.check("w2", t1)
    assert not tokens.check("w3", t1)


def test_reissue_replaces_the_old_token() -> None:
    tokens = WorkerTokens()
    old = tokens.issue("w1")
    new = tokens.issue("w1")
    assert tokens.check("w1", new)
    assert not tokens.check("w1", old)


def test_revoked_token_fails() -> None:
    tokens = WorkerTokens()
    token = tokens.issue("w1")
    tokens.revoke("w1")
    assert not tokens.check("w1", token)


def test_revoke_unknown_worker_is_harmless() -> None:
    tokens = WorkerTokens(SHARED)
    tokens.revoke("nobody")
    assert tokens.check("nobody", SHARED)


def test_without_shared_token_unknown_workers_fail() -> None:
    tokens = WorkerTokens()
    assert not tokens.check("remote", "")
    assert not tokens.check("remote", SHARED)
    assert not tokens.check("remote", "None")


def test_shared_token_works_for_unknown_worker_ids() -> None:
    tokens = WorkerTokens(SHARED)
    assert tokens.check("remote-1", SHARED)
    assert tokens.check("remote-2", SHARED)
    assert not tokens.check("remote-1", SHARED + "x")
    assert not tokens.check("remote-1", SHARED[:-1])
    assert not tokens.check("remote-1", "")


def test_shared_token_cannot_borrow_an_issued_id() -> None:
    tokens = WorkerTokens(SHARED)
    own = tokens.issue("local-1")
    assert not tokens.check("local-1", SHARED)
    assert tokens.check("local-1", own)


def test_issued_token_is_not_a_shared_token() -> None:
    tokens = WorkerTokens(SHARED)
    own = tokens.issue("local-1")
    assert not tokens.check("remote-1", own)


@pytest.mark.parametrize(
    ("worker_id", "token"),
    [(None, SHARED), (1, SHARED), (b"w1", SHARED), ("w1", None), ("w1", 1), ("w1", b"x"),
     ("w1", [SHARED]), (None, None)],
)  # fmt: skip
def test_non_string_inputs_fail(worker_id: Any, token: Any) -> None:
    tokens = WorkerTokens(SHARED)
    tokens.issue("w1")
    assert tokens.check(worker_id, token) is False


def test_non_ascii_token_does_not_raise() -> None:
    tokens = WorkerTokens(SHARED)
    assert tokens.check("w1", "tökén") is False


@pytest.mark.parametrize(
    ("candidate", "tokens", "expected"),
    [
        ("a" * 16, ["a" * 16], True),
        ("b" * 16, ["a" * 16, "b" * 16, "c" * 16], True),
        ("c" * 16, ["a" * 16, "b" * 16, "c" * 16], True),
        ("d" * 16, ["a" * 16, "b" * 16], False),
        ("a" * 15, ["a" * 16], False),
        ("a" * 17, ["a" * 16], False),
        ("A" * 16, ["a" * 16], False),
        ("a" * 16, [], False),
        ("", [""], False),
        ("", ["a" * 16], False),
        (None, ["a" * 16], False),
        (b"a" * 16, ["a" * 16], False),
        (16, ["a" * 16], False),
        ("tökén", ["tökén"], True),
    ],
)
def test_matches_any(candidate: Any, tokens: list[str], expected: bool) -> None:
    assert matches_any(candidate, tokens) is expected


def test_matches_any_accepts_any_iterable() -> None:
    assert matches_any("b" * 16, ("a" * 16, "b" * 16))
    assert matches_any("b" * 16, (t for t in ["b" * 16]))


def test_bearer_token_scheme_is_case_insensitive() -> None:
    from mediad.auth import bearer_token

    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("BEARER   abc  ") == "abc"
    assert bearer_token("Bearer\tabc") == "abc"
    for other in ("Basic abc", "Bearer", "Bearer ", "Bearerabc", "", None):
        assert bearer_token(other) is None
