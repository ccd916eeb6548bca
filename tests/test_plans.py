"""`compnb plan`: a chapter's unfinished runs as numbered TrainConfig files and a manifest; chapter 3 in two stages."""

import json
from pathlib import Path

import pytest

from compnb import atomicio, cli, run_cache, training
from compnb.chapters import baseline, competency, ig_variance_eval, plans


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A folder that `paths.project_root` takes for the repository (run folders land in it), as the cwd."""
    root = tmp_path / "project"
    (root / "src" / "compnb").mkdir(parents=True)
    (root / "_config.yml").write_text("title: test\n")
    monkeypatch.chdir(root)
    return root


def _finish(config: training.TrainConfig, accuracy: float) -> None:
    atomicio.write_json(run_cache.run_dir(config) / run_cache.FINISHED, {"validation": {"accuracy": accuracy}})


def test_plan_writes_one_config_per_run_that_compnb_train_reads(project, capsys):
    expected = baseline.configs("smoke")
    assert cli.main(["plan", "--chapter", "02", "--profile", "smoke", "--out", "plan"]) == 0
    assert "sbatch --array=0-1" in capsys.readouterr().out
    manifest = json.loads((project / "plan" / plans.MANIFEST).read_text())
    assert [r["file"] for r in manifest["runs"]] == ["0000.json", "0001.json"] and manifest["finished"] == []
    assert [training.TrainConfig.from_json(project / "plan" / r["file"]) for r in manifest["runs"]] == expected
    assert plans.read(project / "plan") == expected
    assert [r["run"] for r in manifest["runs"]] == [run_cache.run_dir(c).name for c in expected]
    assert "compnb chapter 02 --profile smoke" in manifest["next"]


def test_chapter_3_plans_stage_2_only_after_stage_1_has_finished(project):
    stage1, seeds = competency.plan("smoke")
    first = plans.plan(competency.CHAPTER, "smoke")
    assert first.stages == {competency.models.DEFAULT_BACKBONE: 1} and [c for _, c in first.todo] == stage1
    _finish(stage1[0], 0.5)
    assert [c for _, c in plans.plan(competency.CHAPTER, "smoke").todo] == stage1[1:]
    for i, config in enumerate(stage1):
        _finish(config, 0.5 + 0.01 * i)
    second = plans.plan(competency.CHAPTER, "smoke")
    records = [{"config": c, "metrics": {"validation": {"accuracy": 0.5 + 0.01 * i}}} for i, c in enumerate(stage1)]
    assert [c for _, c in second.todo] == competency.confirmation_configs("smoke", records, seeds)
    assert {stage for stage, _ in second.todo} == {2} and second.done == []  # stage 2 has not started
    manifest = json.loads(plans.write(first, project / "stage1").read_text())
    assert "writes stage 2" in manifest["next"]


def test_chapter_5_plans_every_seed_and_variant_and_finished_runs_drop_out(project, capsys):
    planned = plans.plan(ig_variance_eval.CHAPTER, "smoke")
    assert len(planned.todo) == 2 * len(ig_variance_eval.VARIANTS)
    for _, config in planned.todo:
        _finish(config, 0.5)
    assert cli.main(["plan", "--chapter", "05", "--profile", "smoke", "--out", "plan"]) == 0
    assert "nothing to train: all 6 runs" in capsys.readouterr().out and not (project / "plan").exists()


@pytest.mark.parametrize("argv, message", [
    (["plan", "--chapter", "04", "--profile", "smoke", "--out", "p"], "cannot be planned; allowed: 02-baseline"),
    (["plan", "--chapter", "02", "--profile", "smoke", "--out", "taken"], "must be a new or empty folder"),
    (["execute", "--plan", "nowhere"], "holds no manifest.json"),
])
def test_bad_plans_are_clear_errors(project, capsys, argv, message):
    (project / "taken").mkdir()
    (project / "taken" / "0000.json").write_text("{}")
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
