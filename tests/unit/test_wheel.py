"""The wheel carries the built page, and is not built without it (hatch_build.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_copy(tmp_path: Path, *, with_page: bool) -> Path:
    """The files a wheel is built from, without the checkout's own build of the page."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "hatch_build.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "schema", src / "schema")
    shutil.copytree(
        ROOT / "mediad", src / "mediad", ignore=shutil.ignore_patterns("static", "__pycache__")
    )
    if with_page:
        (src / "mediad" / "static" / "assets").mkdir(parents=True)
        (src / "mediad" / "static" / "index.html").write_text("<!doctype html>")
        (src / "mediad" / "static" / "assets" / "app-0a1b2c.js").write_text("1")
    return src


def build_wheel(src: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(src / "dist")],
        cwd=src,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_wheel_carries_the_page_schema_and_spec(tmp_path: Path) -> None:
    src = project_copy(tmp_path, with_page=True)
    # The page is git-ignored in the real checkout; artifacts put it in the wheel anyway.
    (src / ".gitignore").write_text("/mediad/static/\n")
    result = build_wheel(src)
    assert result.returncode == 0, result.stderr
    (wheel,) = (src / "dist").glob("mediad-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "mediad/static/index.html",
        "mediad/static/assets/app-0a1b2c.js",
        "mediad/openapi.yaml",
        "mediad/schema/001_init.sql",
    } <= names


def test_no_wheel_without_the_page(tmp_path: Path) -> None:
    src = project_copy(tmp_path, with_page=False)
    result = build_wheel(src)
    assert result.returncode != 0
    assert "web page is not built" in result.stderr and "make page" in result.stderr
    assert not list((src / "dist").glob("*.whl"))
    # … unless asked for on purpose.
    result = build_wheel(src, MEDIAD_WHEEL_WITHOUT_PAGE="1")
    assert result.returncode == 0, result.stderr
