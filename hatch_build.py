"""Hatch build hook: a wheel of mediad must carry its web page.

The page is built from ``ui/`` into ``mediad/static/`` (``make page``), which git ignores;
the ``artifacts`` entry in pyproject.toml puts it in the wheel anyway. A wheel built
without it would serve "the page was not built" forever, so the build stops instead, with
what to run. Editable installs (``pip install -e .``, as ``make setup`` does) read the page
from the checkout at run time, so they need no build of it. ``MEDIAD_WHEEL_WITHOUT_PAGE=1``
builds an API-only wheel on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class PageHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "mediad-page"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        index = Path(self.root) / "mediad" / "static" / "index.html"
        if index.is_file() or os.environ.get("MEDIAD_WHEEL_WITHOUT_PAGE") == "1":
            return
        raise RuntimeError(
            f"mediad's web page is not built ({index} is missing): run `make page`"
            " (or `cd ui && npm ci && npm run build`) first, or set"
            " MEDIAD_WHEEL_WITHOUT_PAGE=1 for a wheel without the page"
        )
