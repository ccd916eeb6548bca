"""A chapter's parameters: the defaults of its `parameters` cell, and the check that overrides fit them.

The CLI checks `-p NAME VALUE` before anything runs, and each chapter checks its own values in its first
code cell (`check(chapter, globals())`), so a bad override stops with the same one line either way: an
unknown name (with the allowed ones), or a value whose type is not the default's (an int where the default
is an int, a number where it is a float, a string, a list, or a bool; a default of None takes a number or a
string). Values themselves (λ ≥ 0, known profiles, ...) are checked where they are used.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import lru_cache

import jupytext

from compnb.paths import project_root


class ParameterError(ValueError):
    """A chapter parameter that does not exist or has the wrong type."""


@lru_cache(maxsize=None)
def defaults(chapter: str) -> dict[str, object]:
    """Name → default value of `chapter`'s parameters cell (one-line literal assignments)."""
    notebook = jupytext.read(project_root() / "notebooks" / f"{chapter}.md")
    cell = next((c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return {}
    values = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def _kind(default: object) -> tuple[tuple[type, ...], str]:
    """The types a value may have to replace `default`, and how to name them."""
    if isinstance(default, bool):
        return (bool,), "true or false"
    if isinstance(default, int):
        return (int,), "an integer"
    if isinstance(default, float):
        return (int, float), "a number"
    if isinstance(default, str):
        return (str,), "a string"
    if isinstance(default, (list, tuple)):
        return (list, tuple), "a list"
    return (int, float, str, type(None)), "a number, a string or None"


def check(chapter: str, values: Mapping[str, object], only: set[str] | None = None) -> None:
    """Raise a ParameterError naming the first of `values` (all of them, or the names in `only`) that is not
    a parameter of `chapter` or whose type is not its default's."""
    allowed = defaults(chapter)
    for name in sorted(only if only is not None else values):
        if name not in allowed:
            raise ParameterError(f"unknown parameter {name!r} for chapter {chapter}; allowed: {', '.join(allowed)}")
        types, wanted = _kind(allowed[name])
        value = values[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ParameterError(f"parameter {name} of chapter {chapter} must be {wanted} (default "
                                 f"{allowed[name]!r}), got {value!r}")


def check_cell(chapter: str, scope: Mapping[str, object]) -> None:
    """The check a chapter runs on its own parameters (every name of its parameters cell, read from `scope`),
    which also decides whether this run is a tweak (`compnb.tweaks`): if any value is not its default, the
    chapter's results go to the tweak's folder, said in one printed line, and never to the published ones."""
    from compnb import tweaks

    values = {name: scope[name] for name in defaults(chapter)}
    check(chapter, values)
    tweak = tweaks.of(chapter, str(values["profile"]), values)
    tweaks.activate(tweak)
    if tweak is not None:
        print(f"A tweak ({tweak.describe()}): its results go to {tweak.results}, not to the published chapter's")
