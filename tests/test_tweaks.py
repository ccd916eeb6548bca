"""Tweaks never publish: a chapter run with other parameters than its defaults goes to its own folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from compnb import cli, parameters, tweaks
from compnb.chapters import adversarial_eval, baseline
from compnb.paths import data_search_paths, project_root, published_results_dir, results_dir
from compnb.profiles import settings
from conftest import needs_data

REPO = project_root()
DATA = next((p for p in data_search_paths() if (p / "sst2" / "train.parquet").is_file()), None)
CH1 = "01-artifact-mining"


@pytest.fixture(autouse=True)
def _no_tweak(monkeypatch):
    """Every test starts and ends without an active tweak."""
    monkeypatch.delenv(tweaks.ENV, raising=False)
    yield
    os.environ.pop(tweaks.ENV, None)


def test_defaults_workers_and_profile_make_no_tweak():
    assert tweaks.of("03-modified-loss", "smoke", {}) is None
    assert tweaks.of("03-modified-loss", "full", parameters.defaults("03-modified-loss")) is None
    assert tweaks.of("03-modified-loss", "smoke", {"workers": 4, "profile": "full"}) is None
    assert tweaks.of("01-artifact-mining", "full", {"alpha": 0.01, "min_count": 1}) is None
    assert tweaks.of("05-ig-variance", "full", {"lam": None}) is None


def test_the_papers_backbone_is_the_default_model_at_the_paper_profile_only():
    from compnb.profiles import paper_backbones

    first = paper_backbones("03-modified-loss")[0]
    assert tweaks.of("03-modified-loss", "paper", {"model": first}) is None
    assert tweaks.of("03-modified-loss", "full", {"model": first}) is not None
    assert tweaks.of("03-modified-loss", "paper", {"model": parameters.defaults("03-modified-loss")["model"]})


def test_a_tweak_is_named_by_its_changed_parameters_only():
    one = tweaks.of("03-modified-loss", "smoke", {"lam": 0.3})
    assert one.changed == {"lam": 0.3} and len(one.digest) == 8 and int(one.digest, 16) >= 0
    assert one == tweaks.of("03-modified-loss", "smoke", {"lam": 0.3, "k": 5, "workers": 3})
    assert one.digest != tweaks.of("03-modified-loss", "smoke", {"lam": 0.5}).digest
    assert one.folder == REPO / "build" / "smoke" / "tweaks" / f"03-modified-loss-{one.digest}"
    assert one.notebook == one.folder / "03-modified-loss.ipynb" and one.results == one.folder / "results"
    # a float default takes an integer: 1 and 1.0 are the same tweak
    assert tweaks.of(CH1, "smoke", {"alpha": 1}).digest == tweaks.of(CH1, "smoke", {"alpha": 1.0}).digest
    assert tweaks.of(CH1, "full", {"min_count": 7}).folder.parent == REPO / "build" / "full" / "tweaks"


def test_check_cell_activates_the_tweak_for_its_chapter_and_results_dir_follows(project, capsys):
    scope = {**parameters.defaults(CH1), "min_count": 7}
    parameters.check_cell(CH1, scope)
    tweak = tweaks.of(CH1, "full", {"min_count": 7})
    assert "min_count=7" in capsys.readouterr().out
    assert results_dir("full", CH1) == tweak.results == project / "build/full/tweaks" / tweak.folder.name / "results"
    assert json.loads((tweak.folder / tweaks.RECORD).read_text())["changed"] == {"min_count": 7}
    # other chapters, and the same chapter at another profile, read the published results
    assert results_dir("full", "02-baseline-finetune") == published_results_dir("full", "02-baseline-finetune")
    assert results_dir("smoke", CH1) == project / "results" / "smoke" / CH1
    assert not (project / "results" / "full" / CH1).exists()
    # the defaults again in the same kernel: published
    parameters.check_cell(CH1, parameters.defaults(CH1))
    assert tweaks.ENV not in os.environ and results_dir("full", CH1) == project / "results" / "full" / CH1


def test_run_chapter_sends_a_tweaks_notebook_to_its_folder(project, monkeypatch):
    from compnb import bookbuild

    (project / "notebooks").mkdir()
    shutil.copy2(REPO / "notebooks" / f"{CH1}.md", project / "notebooks")
    ran = []
    monkeypatch.setattr("papermill.execute_notebook", lambda source, partial, **kw: (
        ran.append(kw["parameters"]), shutil.copy2(source, partial)))
    tweak = tweaks.of(CH1, "full", {"min_count": 7})
    assert bookbuild.run_chapter(CH1, "full", {"min_count": 7}) == tweak.notebook
    assert bookbuild.run_chapter(CH1, "full", {"workers": 2}) == project / "book/chapters" / f"{CH1}.ipynb"
    assert ran == [{"profile": "full", "min_count": 7}, {"profile": "full", "workers": 2}]
    assert tweak.notebook.is_file() and not list((project / "book" / "chapters").glob(".*partial*"))


def test_a_tweak_that_fails_leaves_no_folder_behind(project, monkeypatch):
    """Chapter 7's bad-input check: `compnb chapter 03 -p lam -0.5` must write nothing, in build/ too."""
    from compnb import bookbuild

    (project / "notebooks").mkdir()
    shutil.copy2(REPO / "notebooks" / f"{CH1}.md", project / "notebooks")
    tweak = tweaks.of(CH1, "smoke", {"min_count": 7})

    def fail(source, partial, **kw):  # what the kernel does before the chapter stops: activate, then raise
        tweaks.activate(tweak)
        raise ValueError("min_count out of range")

    monkeypatch.setattr("papermill.execute_notebook", fail)
    with pytest.raises(ValueError, match="out of range"):
        bookbuild.run_chapter(CH1, "smoke", {"min_count": 7})
    assert not tweak.folder.exists()
    tweak.folder.mkdir(parents=True)  # a folder an earlier, finished tweak made stays
    (tweak.folder / "kept").write_text("x")
    with pytest.raises(ValueError):
        bookbuild.run_chapter(CH1, "smoke", {"min_count": 7})
    assert (tweak.folder / "kept").read_text() == "x"


def test_a_tweak_never_retrains_a_published_run_in_place(project, monkeypatch):
    from compnb import training

    run = project / "results" / "full" / "runs" / "sst2-ce-000000000000"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    monkeypatch.setattr(training.run_cache, "run_dir", lambda config: run)
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setenv(tweaks.ENV, json.dumps({"chapter": "02-baseline-finetune", "profile": "full",
                                               "changed": {"k": 3}}))
    with pytest.raises(ValueError, match="needs the weights of run sst2-ce-000000000000.*published"):
        training.train_with_weights(None)
    assert (run / "metrics.json").read_text() == "{}"


def test_chapter_4_keeps_the_published_adversarial_sets_unless_the_backbone_changes(project, monkeypatch):
    published = published_results_dir("smoke", adversarial_eval.CHAPTER) / "adv"
    assert adversarial_eval.adv_path("smoke") == published  # no tweak
    monkeypatch.setenv(tweaks.ENV, json.dumps({"chapter": adversarial_eval.CHAPTER, "profile": "smoke",
                                               "changed": {"long_words": 10}}))
    own = tweaks.active("smoke", adversarial_eval.CHAPTER).results / "adv"
    assert adversarial_eval.adv_path("smoke") == own  # the published sets are not all there: its own
    published.mkdir(parents=True)
    for seed in settings(adversarial_eval.CHAPTER, "smoke")["seeds"]:
        for name in ["attacked", *(f"train-{n}" for n in adversarial_eval.TRAIN_FILES.values())]:
            (published / f"{name}-s{seed}.parquet").write_bytes(b"")
    assert adversarial_eval.adv_path("smoke") == published
    monkeypatch.setenv(tweaks.ENV, json.dumps({"chapter": adversarial_eval.CHAPTER, "profile": "smoke",
                                               "changed": {"model": "x/y"}}))
    assert adversarial_eval.adv_path("smoke") == tweaks.active("smoke", adversarial_eval.CHAPTER).results / "adv"


def test_chapter_2_keeps_other_numbers_of_example_maps_beside_the_published_ones():
    assert baseline.examples_file(baseline.EXAMPLES) == "examples.json"
    assert baseline.examples_file(6) == "examples-n6.json"


def _tree(*folders: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under `folders`."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders if folder.exists() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def chapter_1_world(project, monkeypatch):
    """A project with chapter 1's source, the offline data, and published results and notebooks to guard."""
    (project / "notebooks").mkdir()
    shutil.copy2(REPO / "notebooks" / f"{CH1}.md", project / "notebooks")
    monkeypatch.setenv("COMPNB_DATA_DIR", str(DATA))
    for profile in ("smoke", "full"):
        folder = project / "results" / profile / CH1
        folder.mkdir(parents=True)
        (folder / "shares.csv").write_text(f"published {profile} shares\n")
    for book in (project / "book" / "chapters", project / "build" / "smoke" / "book" / "chapters"):
        book.mkdir(parents=True)
        (book / f"{CH1}.ipynb").write_text("published notebook\n")
    return project


def _published(project: Path) -> dict[str, str]:
    return _tree(project / "book", project / "build" / "smoke" / "book", project / "results")


@needs_data
def test_a_smoke_tweak_through_the_cli_leaves_the_published_chapter_byte_identical(chapter_1_world, capsys):
    before = _published(chapter_1_world)
    assert cli.main(["chapter", "01", "--profile", "smoke", "-p", "min_count", "7"]) == 0  # about 8 s on 2 cores
    tweak = tweaks.of(CH1, "smoke", {"min_count": 7})
    out = capsys.readouterr().out
    assert f"build/smoke/tweaks/{tweak.folder.name}" in out and "compnb html --tweak" in out
    assert _published(chapter_1_world) == before
    nb = nbformat.read(tweak.notebook, as_version=4)
    assert any("min_count = 7" in c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    shares = (tweak.results / "shares.csv").read_text()
    assert shares != "published smoke shares\n" and "sst2" in shares
    assert {"sst2-artifacts.csv", "snli-artifacts.csv", "run.json"} <= {p.name for p in tweak.results.iterdir()}
    assert cli.main(["html", "--tweak", str(tweak.folder)]) == 0
    html = (tweak.folder / f"{CH1}.html").read_text()
    assert "<script src=\"mathjax/tex-mml-chtml.js\"></script>" in html and (tweak.folder / "mathjax").is_dir()
    assert "cdnjs.cloudflare.com/ajax/libs/mathjax" not in html and "require.min.js" not in html


@needs_data
def test_a_tweak_made_in_jupyter_goes_to_the_same_folder(chapter_1_world):
    """What a reader does in JupyterLab: open notebooks/01-....md, change a parameter, run all (cwd notebooks/)."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(chapter_1_world / "notebooks" / f"{CH1}.md")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = (cell.source.replace('profile = "full"', 'profile = "smoke"')
                   .replace("min_count = 1 ", "min_count = 7 "))
    before = _published(chapter_1_world)
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(chapter_1_world / "notebooks")}},
                   timeout=600).execute()
    tweak = tweaks.of(CH1, "smoke", {"min_count": 7})
    assert _published(chapter_1_world) == before
    assert (tweak.results / "shares.csv").is_file()
    assert any("min_count=7" in o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_rendering_a_folder_that_is_not_a_tweak_fails_in_one_line(tmp_path, capsys):
    assert cli.main(["html", "--tweak", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("compnb html: error:") and "not a tweak folder" in err and "\n" not in err
