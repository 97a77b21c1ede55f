"""The commands the README and the docs print work as printed: every concrete ``uv run leadtime
...`` parses against the CLI (each option known, each value of its type), and after set-up the
README's one PATH line makes ``uv`` run, where ``make`` put it when it was missing."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "simulation" / "README.md"]
INLINE = re.compile(r"`(uv run leadtime [^`]+)`")
LINE = re.compile(r"^\s*(uv run leadtime [^#\n]+)", re.MULTILINE)


def documented() -> list[tuple[str, str]]:
    """``(page, command)`` for each concrete command: optional ``[...]`` parts left out,
    templates with placeholders (``PATH``, ``NAME``) skipped."""
    found = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in [*INLINE.finditer(text), *LINE.finditer(text)]:
            command = re.sub(r"\s*\[[^\]]*\]", "", match.group(1)).rstrip(" \\")
            if not re.search(r"\b[A-Z]{2,}\b", command.removeprefix("uv run leadtime")):
                found.add((page.name, command))
    return sorted(found)


def parse(args: list[str]):
    """Parse ``args`` down to the leaf command as Click would, without running it."""
    import typer.main

    from leadtime_cli.app import app

    command = typer.main.get_command(app)
    ctx = command.make_context("leadtime", list(args))
    while hasattr(command, "resolve_command"):
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


def test_the_pages_print_commands_to_check():
    pages = {page for page, _ in documented()}
    assert len(documented()) >= 20 and "README.md" in pages


@pytest.mark.parametrize(("page", "command"), documented())
def test_each_printed_command_parses(page, command, monkeypatch):
    monkeypatch.chdir(ROOT)  # relative paths as the pages print them
    ctx = parse(shlex.split(command)[3:])
    assert ctx.command.callback is not None, f"{page}: {command!r} is not a command"


def test_the_readme_path_line_makes_uv_run_as_printed():
    """The line as the README prints it, then ``uv run leadtime --help`` in a shell whose PATH
    has no other ``uv`` when ``make`` installed one into ``.tools/bin`` (as on a machine without
    uv); with uv installed system-wide the line changes nothing and uv runs anyway."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"^export PATH=.*$", readme, re.MULTILINE).group(0)
    path = os.environ["PATH"].split(os.pathsep)
    if (ROOT / ".tools" / "bin" / "uv").exists():
        path = [d for d in path if not (Path(d) / "uv").exists()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(path)
    out = subprocess.run(["bash", "-c", f"{line} && uv run leadtime --help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "leadtime" in out.stdout and "bench" in out.stdout
