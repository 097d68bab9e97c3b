"""What the e2e tests share: the page's contract names, rows by their text, direct
inserts into the service's PostgreSQL for states a test cannot wait for."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from playwright.async_api import Locator, Page, expect

from mediad.service import Service

STATUSES = ("queued", "running", "paused", "completed", "failed", "cancelled")
ACTIONS = ("Cancel", "Pause", "Resume", "Retry", "Stop", "Delete")
# What each status allows (the contract; ffmpeg jobs also have Stop while running).
ALLOWED = {
    "queued": {"Cancel", "Pause", "Delete"},
    "running": {"Cancel", "Pause"},
    "paused": {"Resume", "Cancel", "Delete"},
    "completed": {"Delete"},
    "failed": {"Retry", "Delete"},
    "cancelled": {"Retry", "Delete"},
}
PAUSED_TEXT = re.compile("live updates paused", re.IGNORECASE)


def tag() -> str:
    return uuid.uuid4().hex[:8]


def jobs_list(page: Page) -> Locator:
    return page.get_by_role("list", name="Jobs", exact=True)


def rows(page: Page) -> Locator:
    """The job items: direct children of the Jobs list (a row may hold a list of files)."""
    return jobs_list(page).locator(":scope > li")


def row(page: Page, text: str) -> Locator:
    return rows(page).filter(has_text=text)


def status_of(item: Locator, status: str) -> Locator:
    return item.get_by_text(status, exact=True)


async def expect_status(item: Locator, status: str, timeout_ms: float = 20_000) -> None:
    await expect(status_of(item, status)).to_be_visible(timeout=timeout_ms)


async def expect_actions(item: Locator, allowed: set[str], timeout_ms: float = 5_000) -> None:
    """Exactly the action buttons ``allowed``, each once; none of the others."""
    for name in ACTIONS:
        button = item.get_by_role("button", name=name, exact=True)
        await expect(button, f"button {name!r}").to_have_count(
            1 if name in allowed else 0, timeout=timeout_ms
        )


async def click_action(item: Locator, name: str) -> None:
    await item.get_by_role("button", name=name, exact=True).click()


async def confirm_delete(page: Page, item: Locator, *, keep_first: bool = True) -> str:
    """Delete a job through its button and the confirmation. An in-page dialog (role
    dialog/alertdialog, with Delete and Keep) or window.confirm are both accepted; returns
    which it was. With ``keep_first`` the in-page dialog is first answered Keep, and the
    row must stay."""
    confirms: list[str] = []

    async def on_dialog(dialog: Any) -> None:
        confirms.append(dialog.message)
        await dialog.accept()

    page.on("dialog", on_dialog)
    try:
        dialog = page.get_by_role("dialog").or_(page.get_by_role("alertdialog"))
        await click_action(item, "Delete")
        deadline = asyncio.get_running_loop().time() + 5
        while not confirms and not await dialog.is_visible():
            assert asyncio.get_running_loop().time() < deadline, (
                "Delete asked for no confirmation (no role=dialog, no window.confirm)"
            )
            await asyncio.sleep(0.05)
        if confirms:
            return "window.confirm"
        if keep_first:
            await dialog.get_by_role("button", name="Keep", exact=True).click()
            await expect(dialog).to_be_hidden()
            await expect(item).to_have_count(1)
            await click_action(item, "Delete")
            await expect(dialog).to_be_visible()
        await dialog.get_by_role("button", name="Delete", exact=True).click()
        await expect(dialog).to_be_hidden()
        return "dialog"
    finally:
        page.remove_listener("dialog", on_dialog)


# -- rows written straight into PostgreSQL ----------------------------------------------------


def job_row(url: str, status: str, **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    finished = status in ("completed", "failed", "cancelled")
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "url": url,
        "type": "aria2",
        "status": status,
        # The stages the server writes: a paused job keeps the one it was stopped in.
        "stage": {
            "queued": "queued",
            "completed": "finalizing",
            "failed": "downloading",
            "cancelled": "downloading",
        }.get(status, "downloading"),
        "progress": 100.0 if status == "completed" else 0.0,
        "speed": None,
        "eta": None,
        "total_bytes": None,
        "filename": None,
        "size": None,
        "error_code": None,
        "error_message": None,
        "attempts": 0 if status == "queued" else 1,
        "created_at": now,
        "updated_at": now,
        "started_at": None if status == "queued" else now - timedelta(seconds=5),
        "finished_at": now if finished else None,
    }
    row.update(fields)
    return row


async def insert_jobs(
    service: Service, jobs: list[dict[str, Any]], *, write_files: bool = True
) -> list[str]:
    """Write jobs as rows (no queue entry, no worker): states a test cannot wait for.
    A completed job with a ``filename`` gets that file, ``size`` bytes, in its folder."""
    assert service.config.database.url
    columns = list(jobs[0])
    sql = (
        f"INSERT INTO jobs ({', '.join(columns)})"
        f" VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})"
    )
    conn = await asyncpg.connect(service.config.database.url)
    try:
        await conn.executemany(sql, [[job[c] for c in columns] for job in jobs])
    finally:
        await conn.close()
    for job in jobs:
        if write_files and job["status"] == "completed" and job["filename"]:
            folder = Path(service.config.data_path) / str(job["id"])
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / job["filename"]).open("wb") as f:
                f.truncate(int(job["size"] or 0))  # sparse: the size without the bytes
    return [str(job["id"]) for job in jobs]
