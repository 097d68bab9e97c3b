"""How pytest-xdist hands out the suite's files (``pytest_xdist_make_scheduler`` in
tests/conftest.py): its own ``--dist loadfile``/``loadscope``/``loadgroup``, with one
change. When a worker dies in a test — the per-test timeout ends a hung test by ending
its process (tests/support/hangdump.py) — xdist reports that test failed and starts a
new worker, but its scope-based schedulers put the test back in the queue with the rest
of its file, so a hanging test would be run, and hang, again on every new worker until
xdist gives up on restarting them. Here the crashed test counts as done: reported
failed once, never run again; the rest of its file runs on another worker.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadFileScheduling, LoadGroupScheduling, LoadScopeScheduling


class _CrashedTestStaysDone:
    """``remove_node`` of xdist's ``LoadScopeScheduling`` (which the others inherit),
    the crashed test marked done. Mixed in before the scheduler it changes."""

    assigned_work: dict[Any, dict[str, dict[str, bool]]]
    workqueue: dict[str, dict[str, bool]]

    def remove_node(self, node: Any) -> str | None:
        workload = self.assigned_work.pop(node)
        if not self._pending_of(workload):  # type: ignore[attr-defined]
            return None  # a worker that finished its work
        # It crashed: the first test of its workload not done yet is the one that ran.
        crashed = next(
            nodeid for unit in workload.values() for nodeid, done in unit.items() if not done
        )
        workload[self._split_scope(crashed)][crashed] = True  # type: ignore[attr-defined]
        self.workqueue.update(
            {scope: unit for scope, unit in workload.items() if not all(unit.values())}
        )
        for other in self.assigned_work:
            self._reschedule(other)  # type: ignore[attr-defined]
        return crashed


class FileScheduling(_CrashedTestStaysDone, LoadFileScheduling):
    pass


class ScopeScheduling(_CrashedTestStaysDone, LoadScopeScheduling):
    pass


class GroupScheduling(_CrashedTestStaysDone, LoadGroupScheduling):
    pass


SCHEDULERS = {
    "loadfile": FileScheduling,
    "loadscope": ScopeScheduling,
    "loadgroup": GroupScheduling,
}


def make(config: Any, log: Any) -> Any:
    """The scheduler for ``--dist``, or None to leave the choice to xdist."""
    scheduler = SCHEDULERS.get(config.getvalue("dist"))
    return scheduler(config, log) if scheduler is not None else None
