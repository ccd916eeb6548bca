"""The API reference (`book/api/`) has one page per public module of the `compnb` package, the index lists
each module once under its group, and the book's table of contents and the smoke book's staging reach the
folder."""

from __future__ import annotations

import pkgutil
import re

import yaml

import compnb
from compnb import bookbuild
from compnb.paths import project_root

API = project_root() / "book" / "api"


def public_modules() -> set[str]:
    """Every module and subpackage of `compnb` whose name has no leading underscore."""
    return {m.name for m in pkgutil.walk_packages(compnb.__path__, "compnb.")
            if not any(part.startswith("_") for part in m.name.split("."))}


def test_every_public_module_has_its_page_and_no_page_lacks_a_module():
    pages = {p.stem: p.read_text() for p in API.glob("compnb.*.md")}
    modules = public_modules()
    assert not modules - set(pages), f"modules without an API page in book/api/: {sorted(modules - set(pages))}"
    assert not set(pages) - modules, f"API pages of no module: {sorted(set(pages) - modules)}"
    for name, text in pages.items():
        assert re.search(rf"^\.\. automodule:: {re.escape(name)}\n   :members:$", text, re.M), \
            f"book/api/{name}.md does not document its module's members"
        assert text.startswith(f"# {name}\n"), f"book/api/{name}.md is not titled by its module"


def test_the_index_lists_every_module_once_under_a_group():
    index = (API / "index.md").read_text()
    listed = re.findall(r"^   (compnb\.[\w.]+)$", index, re.M)
    duplicates = sorted({m for m in listed if listed.count(m) > 1})
    assert not duplicates, f"modules listed twice in book/api/index.md: {duplicates}"
    assert set(listed) == public_modules(), (
        f"book/api/index.md misses {sorted(public_modules() - set(listed))} "
        f"and lists unknown {sorted(set(listed) - public_modules())}")
    groups = re.findall(r"^## (.+)$", index, re.M)
    assert groups == ["Data", "Statistics", "Saliency", "Losses", "Training", "Evaluation", "Chapters",
                      "Infrastructure"]


def test_the_toc_reaches_every_page():
    toc = yaml.safe_load((project_root() / "book" / "_toc.yml").read_text())
    reference = [c for part in toc["parts"] for c in part["chapters"] if c.get("file") == "api/index"]
    assert reference and reference[0]["sections"] == [{"glob": "api/compnb.*"}]


def test_the_smoke_book_stages_the_api_folder_whole(tmp_path, monkeypatch):
    staged = tmp_path / "book"
    (staged / "api").mkdir(parents=True)
    (staged / "api" / "compnb.removed.md").write_text("# a page the book no longer has\n")
    monkeypatch.setattr(bookbuild, "book_dir", lambda profile: staged)
    assert bookbuild._stage_smoke_book("smoke") == staged
    assert {p.name for p in (staged / "api").iterdir()} == {p.name for p in API.iterdir()}
    for name in bookbuild.BOOK_SOURCES:
        assert (staged / name).exists(), f"{name} was not staged"


def test_every_docstring_the_reference_shows_is_valid_restructuredtext():
    """autodoc renders the public members' docstrings as reStructuredText and the book builds with warnings as
    errors, so a stray `|x|` (a substitution) or a broken emphasis would fail the book late in CI; caught here."""
    import importlib
    import inspect
    import io

    import docutils.core

    failures = []
    for name in sorted(public_modules()):
        module = importlib.import_module(name)
        members = [(name, module)] + [(f"{name}.{n}", o) for n, o in vars(module).items() if not n.startswith("_")
                                      and (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == name]
        for label, member in members:
            doc = inspect.getdoc(member)
            if not doc:
                continue
            stream = io.StringIO()
            docutils.core.publish_doctree(doc, settings_overrides={"warning_stream": stream, "report_level": 2})
            if stream.getvalue().strip():
                failures.append(f"{label}: {stream.getvalue().strip().splitlines()[0]}")
    assert not failures, "docstrings that are not valid reStructuredText:\n" + "\n".join(failures)
