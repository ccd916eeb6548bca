import re

from compnb.paths import project_root


def _pins(lines):
    return {m.group(1).lower(): m.group(2) for l in lines if (m := re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==(\S+)", l))}


def test_environment_yml_repeats_the_constraints():
    root = project_root()
    constraints = _pins((root / "constraints.txt").read_text().splitlines())
    conda = _pins((root / "environment.yml").read_text().splitlines())
    assert constraints and constraints == conda


def test_every_chapter_source_has_one_parameter_cell_with_profile():
    for source in sorted((project_root() / "notebooks").glob("[0-9][0-9]-*.md")):
        text = source.read_text()
        assert text.count(":tags: [parameters]") == 1, source.name
        assert re.search(r'^profile = "full"', text, re.M), source.name
