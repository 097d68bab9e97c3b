"""The Dockerfile, checked without Docker (which cannot run here): parsed into stages
and instructions by a small parser, then every ``COPY`` source must exist in the
checkout and not be excluded by .dockerignore, every ``COPY --from`` must name an earlier
stage, and the final stage must be a slim Python image that runs as a non-root user
with a ``HEALTHCHECK`` on /health."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    keyword: str
    flags: dict[str, str]
    args: list[str]  # exec (JSON) form as given, shell form split like a shell would
    line: int
    json_form: bool = False


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    """Instructions with their line continuations joined and comments dropped, grouped
    into stages by FROM (the escape character is the default backslash)."""
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        logical.append((start, pending + raw))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, rest = line.strip().partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        rest = rest.strip()
        while keyword in ("COPY", "ADD", "FROM", "RUN", "HEALTHCHECK") and rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        json_form = rest.startswith("[")
        if keyword == "HEALTHCHECK" and rest.upper().startswith("CMD "):
            inner = rest[4:].strip()
            json_form = inner.startswith("[")
            args = ["CMD", *(json.loads(inner) if json_form else shlex.split(inner))]
        elif json_form:
            args = json.loads(rest)
        elif keyword in ("RUN", "CMD", "ENTRYPOINT"):
            args = [rest]
        else:
            args = shlex.split(rest)
        instruction = Instruction(keyword, flags, args, number, json_form)
        if keyword == "FROM":
            name = args[2] if len(args) == 3 and args[1].upper() == "AS" else None
            stages.append(Stage(args[0], name))
        else:
            assert stages, f"line {number}: {keyword} before any FROM"
            stages[-1].instructions.append(instruction)
    return stages


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's ``patterns`` exclude ``path`` (relative, with /): Go's
    filepath.Match with ``**``, the last matching pattern deciding, ``!`` re-including;
    a folder's exclusion covers what is in it."""
    parts = path.strip("/").split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern[1:] if negate else pattern)
        for n in range(1, len(parts) + 1):
            if regex.fullmatch("/".join(parts[:n])):
                excluded = not negate
                break
    return excluded


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore() -> list[str]:
    path = ROOT / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


STAGES = parse((ROOT / "Dockerfile").read_text())


def test_the_parser() -> None:
    stages = parse(
        "# c\nFROM a:1 AS one\nRUN x \\\n  # inside\n  && y\nCOPY --chown=u:g a b ./dst/\n"
        'FROM one\nCOPY --from=one ["/x y", "/z"]\nHEALTHCHECK --interval=5s CMD ["c", "-x"]\n'
    )
    assert [(s.image, s.name) for s in stages] == [("a:1", "one"), ("one", None)]
    run, copy = stages[0].instructions
    assert run.args == ["x    && y"] and run.line == 3
    assert copy.flags == {"chown": "u:g"} and copy.args == ["a", "b", "./dst/"]
    copy2, health = stages[1].instructions
    assert copy2.flags == {"from": "one"} and copy2.args == ["/x y", "/z"]
    assert health.flags == {"interval": "5s"} and health.args == ["CMD", "c", "-x"]
    assert ignored("mediad/static/a.js", ["mediad/static"])
    assert ignored("a/__pycache__/x.pyc", ["**/__pycache__"])
    assert not ignored("mediad/cli.py", ["mediad/static", "**/__pycache__"])
    assert not ignored("keep.md", ["*.md", "!keep.md"])


def test_every_copy_source_exists_and_is_not_ignored() -> None:
    patterns = dockerignore()
    checked = 0
    for stage in STAGES:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            if "from" in instruction.flags:
                continue
            *sources, _destination = instruction.args
            assert sources, f"line {instruction.line}: COPY without a source"
            for source in sources:
                assert not source.startswith(("/", "..")), f"line {instruction.line}: {source}"
                matches = list(ROOT.glob(source)) if any(c in source for c in "*?[") else [
                    ROOT / source
                ]  # fmt: skip
                assert matches and all(m.exists() for m in matches), (
                    f"line {instruction.line}: COPY source {source} is not in the checkout"
                )
                assert not ignored(source, patterns), (
                    f"line {instruction.line}: {source} is excluded by .dockerignore"
                )
                checked += 1
    assert checked >= 5


def test_copy_from_names_an_earlier_stage() -> None:
    for index, stage in enumerate(STAGES):
        earlier = {s.name for s in STAGES[:index] if s.name} | {str(i) for i in range(index)}
        for instruction in stage.all("COPY"):
            source = instruction.flags.get("from")
            if source is not None:
                assert source in earlier, f"line {instruction.line}: no stage {source!r} before"


def test_the_page_is_built_in_a_node_stage_and_copied_from_where_it_is_built() -> None:
    page = next(s for s in STAGES if s.name == "page")
    assert page.image.startswith("node:")
    workdir = page.all("WORKDIR")[-1].args[0]
    vite = (ROOT / "ui" / "vite.config.ts").read_text()
    out_dir = re.search(r"outDir:\s*['\"]([^'\"]+)['\"]", vite)
    assert out_dir, "ui/vite.config.ts names no outDir"
    built = (Path(workdir) / "ui" / out_dir[1]).resolve()
    (copy,) = [c for c in STAGES[-1].all("COPY") if c.flags.get("from") == "page"]
    assert Path(copy.args[0]) == built


def test_the_final_stage_is_slim_runs_as_non_root_and_checks_health() -> None:
    final = STAGES[-1]
    assert final.image.startswith("python:3.11") and "slim" in final.image
    users = final.all("USER")
    assert users, "the final stage has no USER: it would run as root"
    user = users[-1].args[0].split(":")[0]
    assert user not in ("root", "0")
    # The user is created in this stage, before USER switches to it.
    created = [r for r in final.all("RUN") if re.search(rf"useradd\b.*\b{user}\b", r.args[0])]
    assert created and created[0].line < users[-1].line
    # Nothing after USER needs root (package installs would fail).
    after = [i for i in final.instructions if i.line > users[-1].line]
    assert not [i for i in after if i.keyword == "RUN" and "apt-get" in i.args[0]]
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1, "the final stage needs one HEALTHCHECK"
    health = checks[0]
    assert health.args[0] == "CMD"
    assert "/health" in " ".join(health.args)
    assert {"interval", "timeout", "start-period"} <= set(health.flags)
    entrypoint = final.all("ENTRYPOINT")[-1]
    assert entrypoint.json_form and entrypoint.args == ["mediad"]


@pytest.mark.parametrize("keyword", ["EXPOSE", "VOLUME", "STOPSIGNAL"])
def test_the_final_stage_declares(keyword: str) -> None:
    assert STAGES[-1].all(keyword)
