"""The README stays a short user's guide whose commands exist: its `make` targets are the Makefile's, its
`compnb` commands parse with the CLI's parser, its `python -m` modules and linked files exist."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from compnb import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MAX_LINES = 140


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w.%-]*)\s*:(?!=)", text, re.M)}


def _code_lines() -> list[str]:
    """Lines of the README's fenced code blocks, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", README, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines() if line.strip()]
    return lines


def _subcommands() -> set[str]:
    parser = cli.parser()
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(actions[0].choices)


def test_readme_is_short():
    lines = README.count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines; a user's guide of about 120 is the aim"


def test_every_make_target_exists():
    targets = _make_targets()
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", README))
    rules = {t for t in targets if "%" not in t}
    patterns = [re.compile(re.escape(t).replace("%", ".+") + "$") for t in targets if "%" in t]
    missing = {n for n in named if n not in rules and not any(p.match(n) for p in patterns)}
    assert named, "the README names no make target"
    assert not missing, f"README names make targets the Makefile lacks: {sorted(missing)}"


def test_every_compnb_subcommand_exists():
    named = set(re.findall(r"\bcompnb ([a-z][\w-]*)", README))
    assert named, "the README names no compnb subcommand"
    assert not named - _subcommands(), f"not compnb subcommands: {sorted(named - _subcommands())}"


@pytest.mark.parametrize("line", [line for line in _code_lines() if line.startswith("compnb ")])
def test_compnb_commands_parse(line):
    args = shlex.split(line)[1:]
    cli.parser().parse_args(args)  # argparse exits (SystemExit) on an unknown option or a missing argument


def test_python_modules_exist():
    modules = set(re.findall(r"python -m ([\w.]+)", README)) | set(re.findall(r"-m (compnb[\w.]*)", README))
    assert not {m for m in modules if importlib.util.find_spec(m) is None}


def test_linked_and_named_files_exist():
    links = re.findall(r"\]\(((?:docs|data|notebooks|src)/[^)#]+)\)", README)
    named = re.findall(r"`((?:docs|data|notebooks|src|benchmarks)/[\w./-]+\.(?:md|py|json|sh))`", README)
    missing = sorted({p for p in links + named if not (ROOT / p).exists()})
    assert not missing, f"README points to files that do not exist: {missing}"
