"""mediad.checks' pure parts: which listed entries may become jobs (``_usable``) and how
a check's ``listed`` messages are collected up to its ``maxItems`` (``collect``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mediad import wire
from mediad.attempts import Attempt
from mediad.checks import Checks
from tests.support.fakes import Rig, make_config

CHECK = "6f1c2b8a-9d3e-4f5a-8b7c-1d2e3f4a5b6c"
MakeChecks = Callable[..., Awaitable[Checks]]


@pytest.fixture
async def make_checks(tmp_path: Path) -> AsyncIterator[MakeChecks]:
    rigs: list[Rig] = []

    async def make(**network: Any) -> Checks:
        rig = Rig(make_config(tmp_path / f"rig-{len(rigs)}", network=network))
        rigs.append(rig)
        return Checks(rig.config, rig.store, rig.queue, rig.publisher, rig.dispatcher)  # type: ignore[arg-type]

    yield make
    for rig in rigs:
        await rig.close()


def e(url: str, entry_id: str = "", extractor: str = "Generic") -> wire.ListedEntry:
    return wire.ListedEntry(extractor, entry_id or url, url)


async def test_public_http_entries_are_all_usable_in_order(make_checks: MakeChecks) -> None:
    checks = await make_checks()
    entries = [e("https://a.example/1"), e("http://b.example/2"), e("https://93.184.215.14/3")]
    assert checks._usable(entries, CHECK) == entries


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x", "http://10.1.2.3/x", "http://192.168.0.1/x", "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data", "http://localhost/x", "http://a.localhost/x",
        "http://0.0.0.0/x", "http://[fd00::1]/x",
    ],
)  # fmt: skip
async def test_blocked_addresses_are_left_out(
    make_checks: MakeChecks, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    checks = await make_checks()
    good = e("https://a.example/1")
    with caplog.at_level("INFO", logger="mediad.checks"):
        assert checks._usable([e(url), good], CHECK) == [good]
    assert "1 entries left out" in caplog.text


async def test_private_addresses_are_usable_where_they_are_allowed(make_checks: MakeChecks) -> None:
    checks = await make_checks(allow_private=True)
    entries = [e("http://127.0.0.1/x"), e("http://10.1.2.3/y")]
    assert checks._usable(entries, CHECK) == entries
    hosts = await make_checks(allow_hosts=["10.1.2.3"])
    assert hosts._usable(entries, CHECK) == entries[1:]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)", "ftp://a.example/x", "file:///etc/passwd", "data:text/html,x",
        "https://a.example/a b", "https://a.example/\x00", "https://", "https://a.example:99999/",
        "http://a.example/\u2028x", "", "   ",
    ],
)  # fmt: skip
async def test_entries_post_downloads_would_refuse_are_left_out(
    make_checks: MakeChecks, url: str
) -> None:
    checks = await make_checks()
    good = e("https://a.example/1")
    assert checks._usable([good, wire.ListedEntry("Generic", "x", url)], CHECK) == [good]


async def test_an_entry_is_taken_as_post_downloads_takes_its_url(
    make_checks: MakeChecks,
) -> None:
    """White space around a URL is taken off, as ``POST /downloads`` does: the job's URL
    is the bare one (a worker's listing is not trusted to have done it)."""
    checks = await make_checks()
    listed = [e("\n  https://a.example/1 \n", "1"), e("https://a.example/2\u2028", "2")]
    assert [u.url for u in checks._usable(listed, CHECK)] == [
        "https://a.example/1", "https://a.example/2",
    ]  # fmt: skip
    assert [u.entry_id for u in checks._usable(listed, CHECK)] == ["1", "2"]


async def test_a_key_seen_twice_in_one_listing_makes_one_job(make_checks: MakeChecks) -> None:
    checks = await make_checks()
    first = e("https://a.example/v?id=1", "1", "Youtube")
    again = e("https://a.example/v?id=1&t=5", "1", "Youtube")  # the same entry, another URL
    other_extractor = e("https://b.example/1", "1", "Vimeo")  # the same id elsewhere
    same_url_other_id = e("https://a.example/v?id=1", "2", "Youtube")
    listed = [first, again, other_extractor, same_url_other_id, first]
    assert checks._usable(listed, CHECK) == [first, other_extractor, same_url_other_id]


async def test_a_left_out_entry_does_not_take_the_key_of_a_usable_one(
    make_checks: MakeChecks,
) -> None:
    checks = await make_checks()
    blocked = e("http://127.0.0.1/1", "1", "Youtube")
    good = e("https://a.example/1", "1", "Youtube")
    assert checks._usable([blocked, good], CHECK) == [good]


async def test_nothing_listed_nothing_usable(make_checks: MakeChecks) -> None:
    checks = await make_checks()
    assert checks._usable([], CHECK) == []


# -- collect ---------------------------------------------------------------------------------


def attempt() -> Attempt:
    return Attempt(job_id=CHECK, attempt=1, sid="s1", worker_id="w1", check=True)


async def test_collect_keeps_every_message_s_entries_up_to_max_items(
    make_checks: MakeChecks,
) -> None:
    checks = await make_checks()
    checks._listed[CHECK] = (5, None, [])
    a = attempt()
    first = tuple(e(f"https://a.example/{i}") for i in range(3))
    second = tuple(e(f"https://a.example/{i}") for i in range(3, 9))
    assert checks.collect(a, wire.ListedEvent(CHECK, 1, first, "Feed", final=False)) is False
    assert checks.collect(a, wire.ListedEvent(CHECK, 1, second, None, final=True)) is True
    max_items, title, entries = checks._listed[CHECK]
    assert max_items == 5 and title == "Feed"  # a later message without a title keeps it
    assert entries == [*first, *second[:2]]


async def test_collect_for_a_check_it_does_not_know_keeps_nothing(
    make_checks: MakeChecks,
) -> None:
    checks = await make_checks()
    ev = wire.ListedEvent(CHECK, 1, (e("https://a.example/1"),), "T", final=True)
    assert checks.collect(attempt(), ev) is True
    assert checks._listed[CHECK][2] == []
