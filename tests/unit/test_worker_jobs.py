"""mediad.worker.jobs: safe file names, publishing into data/{jobId}, coalesced progress."""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from mediad.worker.jobs import MAX_NAME_BYTES, ProgressEmitter, clean_name, publish
from mediad.worker.progress import Progress

# --- clean_name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("video.mp4", "video.mp4"),
        ("My Video (1080p).mp4", "My Video (1080p).mp4"),
        ("日本語のタイトル.mkv", "日本語のタイトル.mkv"),
        ("a/b.mp4", "a_b.mp4"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("a\\b.mp4", "a_b.mp4"),
        ("a\x00b.mp4", "a_b.mp4"),
        ("a\nb\tc\r.mp4", "a_b_c_.mp4"),
        ("a\x1b[31mred.mp4", "a_[31mred.mp4"),
        ("a\x7fb.mp4", "a_b.mp4"),
        ("a\u200bb.mp4", "a_b.mp4"),  # zero-width space (Cf)
        ("\u202etxt.exe", "_txt.exe"),  # right-to-left override
        ("-rf", "rf"),
        ("--help.mp4", "help.mp4"),
        (".hidden.mp4", "hidden.mp4"),
        ("..", "download"),
        (".", "download"),
        ("-.-.x.mp4", "x.mp4"),
        ("", "download"),
        ("   ", "download"),
        ("---", "download"),
        ("  spaced.mp4  ", "spaced.mp4"),
        ("no_extension", "no_extension"),
        ("e\u0301.mp4", "\u00e9.mp4"),  # NFC
    ],
)
def test_clean_name(name: str, expected: str) -> None:
    assert clean_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "a/b", "\\", "\x00", "-x", ".x", "x" * 1000, "/" * 300, "é" * 300 + ".mp4",
        "- -rf.mp4", ". .mp4", "-\t-x",
    ],
)  # fmt: skip
def test_clean_name_is_one_safe_component(name: str) -> None:
    out = clean_name(name)
    assert out
    assert out not in (".", "..")
    assert "/" not in out and "\\" not in out
    assert not any(unicodedata.category(ch)[0] == "C" for ch in out)
    assert not out.startswith(("-", ".")), out
    assert out == out.strip(), out
    assert len(out.encode()) <= MAX_NAME_BYTES


@pytest.mark.parametrize(
    ("char", "ext"),
    [("a", ".mp4"), ("é", ".mp4"), ("日", ".mkv"), ("🎬", ".webm"), ("a", ""), ("日", "")],
)
def test_long_names_are_cut_keeping_the_extension(char: str, ext: str) -> None:
    out = clean_name(char * 500 + ext)
    size = len(out.encode())
    assert size <= MAX_NAME_BYTES
    assert size > MAX_NAME_BYTES - len(char.encode())  # cut no more than needed
    assert out.endswith(ext)
    assert set(out.removesuffix(ext)) == {char}  # whole characters only
    out.encode().decode()  # valid UTF-8


def test_long_mixed_name_is_not_split_inside_a_character() -> None:
    name = "ab日本🎬é" * 60 + ".mp4"
    out = clean_name(name)
    assert len(out.encode()) <= MAX_NAME_BYTES
    assert out.endswith(".mp4")
    assert name.startswith(out.removesuffix(".mp4"))


def test_name_at_the_limit_is_kept() -> None:
    name = "a" * (MAX_NAME_BYTES - 4) + ".mp4"
    assert clean_name(name) == name


def test_long_extension_is_not_treated_as_one() -> None:
    out = clean_name("a" * 300 + "." + "b" * 20)
    assert len(out.encode()) <= MAX_NAME_BYTES
    assert out.startswith("a")


def test_clean_name_is_idempotent() -> None:
    for name in ["a/b.mp4", "-x", "é" * 300 + ".mp4", "", "a\x00"]:
        once = clean_name(name)
        assert clean_name(once) == once


# --- publish --------------------------------------------------------------------------------


def make(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_publish_moves_files(tmp_path: Path) -> None:
    work = tmp_path / "tmp" / "job"
    target = tmp_path / "data" / "job"
    sources = [make(work / "video.mp4", 1000), make(work / "video.en.vtt", 10)]
    published = publish(sources, target)
    assert published == [{"name": "video.mp4", "size": 1000}, {"name": "video.en.vtt", "size": 10}]
    assert (target / "video.mp4").read_bytes() == b"x" * 1000
    assert (target / "video.en.vtt").stat().st_size == 10
    assert not any(s.exists() for s in sources)
    assert sorted(p.name for p in target.iterdir()) == ["video.en.vtt", "video.mp4"]


def test_publish_creates_the_target_dir(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    publish([make(tmp_path / "f.bin", 3)], target)
    assert (target / "f.bin").exists()


def test_publish_nothing(tmp_path: Path) -> None:
    assert publish([], tmp_path / "out") == []
    assert (tmp_path / "out").is_dir()


def test_publish_empty_file(tmp_path: Path) -> None:
    assert publish([make(tmp_path / "w" / "empty.txt", 0)], tmp_path / "d") == [
        {"name": "empty.txt", "size": 0}
    ]


def test_publish_unique_names_on_collision(tmp_path: Path) -> None:
    sources = [
        make(tmp_path / "w" / "1" / "a.mp4", 1),
        make(tmp_path / "w" / "2" / "a.mp4", 2),
        make(tmp_path / "w" / "3" / "a.mp4", 3),
        make(tmp_path / "w" / "1" / "notes", 4),
        make(tmp_path / "w" / "2" / "notes", 5),
    ]
    target = tmp_path / "d"
    published = publish(sources, target)
    assert published == [
        {"name": "a.mp4", "size": 1},
        {"name": "a (2).mp4", "size": 2},
        {"name": "a (3).mp4", "size": 3},
        {"name": "notes", "size": 4},
        {"name": "notes (2)", "size": 5},
    ]
    for entry in published:
        assert (target / entry["name"]).stat().st_size == entry["size"]


def test_publish_collision_after_cleaning(tmp_path: Path) -> None:
    sources = [make(tmp_path / "w" / "-a.mp4", 1), make(tmp_path / "w" / ".a.mp4", 2)]
    published = publish(sources, tmp_path / "d")
    assert [p["name"] for p in published] == ["a.mp4", "a (2).mp4"]


def test_publish_cleans_names(tmp_path: Path) -> None:
    published = publish([make(tmp_path / "w" / "-bad\x01name.mp4", 1)], tmp_path / "d")
    assert published == [{"name": "bad_name.mp4", "size": 1}]
    assert (tmp_path / "d" / "bad_name.mp4").exists()


# --- ProgressEmitter ------------------------------------------------------------------------


class Sink:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.items: list[Progress] = []
        self.delay_s = delay_s

    async def __call__(self, progress: Progress) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.items.append(progress)


async def wait_for(condition: Callable[[], bool], timeout_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def p(value: float) -> Progress:
    return Progress(stage="downloading", progress=value)


async def test_first_report_goes_out_at_once() -> None:
    sink = Sink()
    emitter = ProgressEmitter(sink, hz=10)
    emitter.report(p(1))
    await wait_for(lambda: len(sink.items) == 1)
    assert sink.items == [p(1)]
    await emitter.close()
    assert sink.items == [p(1)]
    assert emitter.sent == 1


async def test_tight_loop_is_coalesced_and_last_value_sent_on_close() -> None:
    sink = Sink()
    emitter = ProgressEmitter(sink, hz=10)
    for i in range(100):
        emitter.report(p(i * 0.99))
    await emitter.close()
    assert 1 <= len(sink.items) <= 3
    assert emitter.sent == len(sink.items)
    assert sink.items[0] == p(0)
    assert sink.items[-1] == p(99 * 0.99)


async def test_pending_value_goes_out_after_the_interval_without_close() -> None:
    sink = Sink()
    emitter = ProgressEmitter(sink, hz=50)  # every 20 ms
    emitter.report(p(1))
    emitter.report(p(2))
    emitter.report(p(3))
    await wait_for(lambda: len(sink.items) == 2, timeout_s=0.5)
    assert sink.items == [p(1), p(3)]
    await emitter.close()
    assert sink.items == [p(1), p(3)]


async def test_rate_stays_under_hz() -> None:
    sink = Sink()
    emitter = ProgressEmitter(sink, hz=50)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 0.15:
        emitter.report(p(i % 100))
        i += 1
        await asyncio.sleep(0)
    await emitter.close()
    elapsed = time.monotonic() - start
    # At most one per 20 ms, plus the first one and the one close() sends.
    assert len(sink.items) <= elapsed * 50 + 3
    assert len(sink.items) >= 3
    assert i > len(sink.items)


async def test_no_two_sends_within_one_interval() -> None:
    sink = Sink()
    emitter = ProgressEmitter(sink, hz=20)  # every 50 ms
    emitter.report(p(1))  # sent at once
    emitter.report(p(2))  # pending: a timer is set for the end of the interval
    start = time.monotonic()
    while time.monotonic() - start < 0.06:
        pass  # the interval is over, but the loop has not run the timer yet
    emitter.report(p(3))  # due: sent at once, and the pending timer has nothing left
    emitter.report(p(4))  # must wait for the next interval
    for _ in range(3):
        await asyncio.sleep(0)  # lets the overdue timer run
    assert emitter.sent == 2
    await emitter.close()
    assert sink.items == [p(1), p(3), p(4)]


async def test_close_waits_for_slow_sends() -> None:
    sink = Sink(delay_s=0.02)
    emitter = ProgressEmitter(sink, hz=10)
    emitter.report(p(1))
    emitter.report(p(2))
    await emitter.close()
    assert sink.items == [p(1), p(2)]


async def test_close_without_reports() -> None:
    sink = Sink()
    emitter = ProgressEmitter(sink, hz=10)
    await emitter.close()
    await emitter.close()
    assert sink.items == []
    assert emitter.sent == 0


async def test_close_twice_sends_nothing_more() -> None:
    sink = Sink()
    emitter = ProgressEmitter(sink, hz=10)
    emitter.report(p(1))
    emitter.report(p(2))
    await emitter.close()
    await emitter.close()
    assert sink.items == [p(1), p(2)]


async def test_failing_send_does_not_break_close() -> None:
    calls: list[Progress] = []

    async def send(progress: Progress) -> None:
        calls.append(progress)
        raise ConnectionError("gone")

    emitter = ProgressEmitter(send, hz=10)
    emitter.report(p(1))
    emitter.report(p(2))
    await emitter.close()
    assert calls == [p(1), p(2)]


async def test_last_change_moves_only_on_new_values() -> None:
    emitter = ProgressEmitter(Sink(), hz=10)
    emitter.report(p(1))
    first = emitter.last_change
    await wait_for(lambda: time.monotonic() > first)
    emitter.report(p(2))
    second = emitter.last_change
    assert second > first
    await emitter.close()
