"""What ``mediad get`` shows while it waits: nothing (``--json`` without a terminal), plain
lines (a pipe or a file), or a live bar (a terminal; rich is imported then only)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from mediad.client_cli.formats import human_eta, human_speed, progress_line

TERMINAL = ("completed", "failed", "cancelled")


class Display:
    """What ``get`` shows while it waits; this one shows nothing (--json, not a terminal)."""

    def start(self, job_id: str, job_type: str) -> None:
        pass

    def job(self, job: Mapping[str, Any]) -> None:
        """A job as the ack, REST or a job-update has it."""

    def progress(self, event: Mapping[str, Any]) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def stop(self) -> None:
        pass


class PlainDisplay(Display):
    """Lines for logs and pipes: one per status or stage change and per whole percent."""

    UNKNOWN_EVERY_S = 5.0

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.status: str | None = None
        self.stage: str | None = None
        self.percent: int | None = None
        self.last_unknown = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, job_id: str, job_type: str) -> None:
        self._print(f"job {job_id} ({job_type})")

    def job(self, job: Mapping[str, Any]) -> None:
        status = job.get("status")
        if status and status != self.status:
            self.status = status
            if status not in ("running", *TERMINAL):
                self._print(f"{status}")
        if status == "running":
            self.progress(job)

    def progress(self, event: Mapping[str, Any]) -> None:
        stage = str(event.get("stage") or "downloading")
        value = event.get("progress")
        percent = int(value) if isinstance(value, int | float) else None
        changed = stage != self.stage
        now = time.monotonic()
        if percent is None:
            if not changed and now - self.last_unknown < self.UNKNOWN_EVERY_S:
                return
            self.last_unknown = now
        elif not changed and percent == self.percent:
            return
        self.stage, self.percent = stage, percent
        self._print(progress_line(stage, value, event.get("speed"), event.get("eta")))

    def note(self, text: str) -> None:
        self._print(text)


class RichDisplay(Display):
    """A live bar on a terminal: percent, speed, ETA and stage; pulsing when the total is
    unknown. rich is imported here only."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        self.console = Console(file=stream)
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[stage]:<14}"),
            BarColumn(),
            TextColumn("{task.fields[percent]:>5}"),
            TextColumn("{task.fields[speed]:>11}"),
            TextColumn("ETA {task.fields[eta]:>8}"),
            console=self.console,
            transient=False,
        )
        self.task: Any = None  # rich's TaskID, once start() has added the bar

    def start(self, job_id: str, job_type: str) -> None:
        self.console.print(f"job {job_id} ({job_type})")
        self.bar.start()
        self.task = self.bar.add_task("", total=None, stage="queued", percent="", speed="", eta="-")

    def job(self, job: Mapping[str, Any]) -> None:
        status = job.get("status")
        if status == "running":
            self.progress(job)
        elif status == "completed":
            self.bar.update(
                self.task, total=100, completed=100, stage=status, percent="100%", speed="", eta="-"
            )
        elif status:
            self.bar.update(self.task, stage=str(status), speed="", eta="-")

    def progress(self, event: Mapping[str, Any]) -> None:
        value = event.get("progress")
        done = float(value) if isinstance(value, int | float) else None  # None: unknown
        self.bar.update(
            self.task,
            total=None if done is None else 100,
            completed=0 if done is None else done,
            stage=str(event.get("stage") or "downloading"),
            percent="" if done is None else f"{value:.0f}%",
            speed=human_speed(event.get("speed")),
            eta=human_eta(event.get("eta")),
        )

    def note(self, text: str) -> None:
        self.console.print(text)

    def stop(self) -> None:
        self.bar.stop()


def make_display(json_output: bool) -> Display:
    """A live bar where a person watches, plain lines where stdout is a pipe or a file."""
    if json_output:  # stdout is for the JSON; a person may still watch stderr
        return RichDisplay(sys.stderr) if sys.stderr.isatty() else Display()
    if sys.stdout.isatty():
        return RichDisplay(sys.stdout)
    return PlainDisplay(sys.stdout)
