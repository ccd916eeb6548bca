"""Chapter parameters: checked against the parameters cell's defaults, by the CLI before anything runs and by
the chapter itself, with one line naming the bad value and what is allowed."""

from __future__ import annotations

import pytest

from compnb import cli, parameters
from compnb.bookbuild import chapters


def test_every_chapter_declares_its_parameters_as_literals():
    for chapter in chapters():
        assert "profile" in parameters.defaults(chapter), chapter


@pytest.mark.parametrize("values, message", [
    ({"k": "abc"}, "parameter k of chapter 03-modified-loss must be an integer (default 5), got 'abc'"),
    ({"lam": [1]}, "parameter lam of chapter 03-modified-loss must be a number, a string or None"),
    ({"kk": 5}, "unknown parameter 'kk' for chapter 03-modified-loss; allowed: profile, model, lam, k, workers"),
    ({"workers": True}, "parameter workers of chapter 03-modified-loss must be a number, a string or None"),
    ({"model": 3}, "must be a string")])
def test_bad_overrides_are_named_with_what_is_allowed(values, message):
    with pytest.raises(parameters.ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        parameters.check("03-modified-loss", values)


def test_good_overrides_pass_and_a_float_default_takes_an_integer():
    parameters.check("03-modified-loss", {"k": 3, "lam": 0.3, "workers": 2, "model": "x/y"})
    parameters.check("01-artifact-mining", {"alpha": 0.05, "min_count": 5})
    with pytest.raises(parameters.ParameterError):
        parameters.check("01-artifact-mining", {"alpha": "0.05"})


def test_the_cli_refuses_a_bad_parameter_before_anything_runs(capsys, monkeypatch):
    monkeypatch.setattr("compnb.bookbuild.run_chapter", lambda *a, **k: pytest.fail("the chapter ran"))
    assert cli.main(["chapter", "03", "--profile", "smoke", "-p", "k", "abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("parameter k of chapter 03-modified-loss must be an integer (default 5), got 'abc'")
    assert "Traceback" not in "\n".join(err)


def test_a_chapter_checks_its_own_cell():
    scope = {**parameters.defaults("05-ig-variance"), "n_steps": [10]}
    with pytest.raises(parameters.ParameterError, match="n_steps of chapter 05-ig-variance must be a number"):
        parameters.check_cell("05-ig-variance", scope)
