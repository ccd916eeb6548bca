"""Before a chapter trains: the runs it is about to train, a measured estimate, and the stop on a CPU at full."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from compnb import announce, cli, data, parallel, run_cache
from compnb.chapters import adversarial_eval, baseline, competency, ig_variance_eval
from compnb.paths import data_search_paths, project_root
from conftest import needs_data

REPO = project_root()
DATA = next((p for p in data_search_paths() if (p / "sst2" / "train.parquet").is_file()), None)
H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture
def world(project, monkeypatch):
    """A tmp project on the offline data, on a CPU, not told to go on."""
    monkeypatch.setenv("COMPNB_DATA_DIR", str(DATA))
    monkeypatch.delenv(announce.YES_ENV, raising=False)
    monkeypatch.setattr(announce, "device", lambda: "CPU")
    return project


def _finish(config, weights: bool, rate: float | None = None, device: str = "CPU (2 threads)") -> None:
    """A finished run folder of `config` (with or without its weights), recording `rate` examples/s."""
    folder = run_cache.run_dir(config)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    (folder / run_cache.FINISHED).write_text(json.dumps({"device": device, "train_examples_per_s": rate}))
    if weights:
        (folder / "model.safetensors").write_bytes(b"")


def _names(line: str) -> set[str]:
    return set(line.split(" profile: ", 1)[1].split(". ", 1)[0].split(", "))


@needs_data
def test_the_list_names_exactly_the_runs_to_train_and_the_estimate_is_measured(world, capsys):
    configs = baseline.configs("smoke", seeds=(0, 1))
    _finish(configs[0], weights=True, rate=10.0)  # cached
    _finish(configs[1], weights=False, rate=30.0)  # kept without weights: retrained for its measurements
    todo = announce.to_train(configs)
    assert todo == configs[1:]
    announce.announce("02-baseline-finetune", "smoke", todo, len(configs) - len(todo))
    line = capsys.readouterr().out.strip()
    assert _names(line) == {run_cache.run_dir(c).name for c in configs[1:]}
    assert f"{len(configs) - 1} runs to train (1 cached)" in line
    rows = {c.dataset: data.labelled_rows(data.locate(c.dataset, "train")[0]) for c in configs}
    seconds = sum(min(rows[c.dataset], c.max_train_examples) * c.epochs for c in todo) / 20.0  # median of 10 and 30
    assert f"CPU): {announce.duration(seconds)};" in line and "2 ce runs" in line


@needs_data
def test_kinds_never_timed_here_are_named_not_estimated(world):
    config = competency.config("smoke", "sst2", 0, {"method": "mask", "form": "subtract", "lam": 0.5})
    time, basis = announce.estimate([config], "CPU")
    assert time == "no estimate" and "no competency/mask run was ever timed on CPU" in basis
    _finish(config, weights=True, rate=2.0, device=H100)
    assert announce.estimate([config], "CPU")[0] == "no estimate"  # a GPU's speed says nothing of a CPU's
    assert announce.estimate([config], H100)[0] == announce.duration(48 / 2.0)


def test_a_training_split_on_the_hub_is_named_not_estimated(world, monkeypatch):
    config = competency.config("smoke", "sst2", 0, {"method": "mask", "form": "subtract", "lam": 0.5})
    _finish(config, weights=True, rate=2.0, device=H100)

    def on_the_hub(config):
        raise ValueError(f"{config.dataset}/train is not local; its size is unknown")

    monkeypatch.setattr(announce, "examples", on_the_hub)
    time, basis = announce.estimate([config], H100)
    assert time == "no estimate" and "the size of sst2/train is not known before it is downloaded" in basis


def _tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


PIPELINES = {
    "02-baseline-finetune": lambda profile: baseline.run_all(profile),
    "03-modified-loss": lambda profile: competency.run_all(profile, workers=1),
    "04-adversarial-eval": lambda profile: adversarial_eval.run_all(profile),
    "05-ig-variance": lambda profile: ig_variance_eval.run_all(profile),
}


class Trained(Exception):
    """Raised where training would start."""


@needs_data
@pytest.mark.parametrize("chapter", sorted(PIPELINES))
def test_a_cpu_at_full_stops_before_any_training_and_writes_nothing(world, monkeypatch, capsys, chapter):
    def train(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(parallel, "run_jobs", train)
    before = _tree(world)
    with pytest.raises(announce.TrainingRefused, match=f"not training .* runs of {chapter} at the full profile on a "
                                                       "CPU .*--yes.*YES=1.*COMPNB_YES=1"):
        PIPELINES[chapter]("full")
    assert _tree(world) == before
    assert f"{chapter}" in capsys.readouterr().out
    monkeypatch.setenv(announce.YES_ENV, "1")
    with pytest.raises(Trained):
        PIPELINES[chapter]("full")


@needs_data
def test_smoke_on_a_cpu_and_full_on_a_gpu_are_never_stopped(world, monkeypatch):
    def train(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(parallel, "run_jobs", train)
    with pytest.raises(Trained):
        baseline.run_all("smoke")
    monkeypatch.setattr(announce, "device", lambda: H100)
    with pytest.raises(Trained):
        baseline.run_all("full")


def test_nothing_to_train_prints_nothing(capsys):
    announce.announce("02-baseline-finetune", "full", [], 4)
    assert capsys.readouterr().out == ""


def test_yes_reaches_the_chapters_kernel(monkeypatch):
    seen = []
    monkeypatch.delenv(announce.YES_ENV, raising=False)
    monkeypatch.setattr("compnb.bookbuild.run_chapter",
                        lambda *a, **k: seen.append(__import__("os").environ.get(announce.YES_ENV)) or REPO)
    assert cli.main(["chapter", "03", "--profile", "smoke", "--prepare-only"]) == 0
    assert cli.main(["chapter", "03", "--profile", "smoke", "--prepare-only", "--yes"]) == 0
    assert seen == [None, "1"]


def test_make_passes_yes_and_renders_a_tweak():
    def dry(*args: str) -> str:
        return subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout

    assert "--yes" in dry("chapter", "CH=03", "PROFILE=smoke", "YES=1")
    assert "--yes" not in dry("chapter", "CH=03", "PROFILE=smoke")
    assert "compnb html --tweak build/smoke/tweaks/x" in dry("tweak-html", "TWEAK=build/smoke/tweaks/x")


@needs_data
def test_a_tweak_needing_a_published_runs_weights_stops_before_anything_trains(world, monkeypatch):
    from compnb import tweaks

    configs = baseline.configs("smoke")
    _finish(configs[0], weights=False, rate=10.0)
    monkeypatch.setenv(tweaks.ENV, json.dumps({"chapter": baseline.CHAPTER, "profile": "smoke", "changed": {"k": 3}}))
    with pytest.raises(ValueError, match=f"needs the weights of run {run_cache.run_dir(configs[0]).name}"):
        announce.announce(baseline.CHAPTER, "smoke", announce.to_train(configs), 0)


def test_inside_a_kernel_the_list_also_reaches_the_terminal(capfd, monkeypatch):
    """Under papermill the kernel's stdout goes into the notebook; `compnb chapter` shows the line on the
    terminal too (the kernel's own stderr). Outside a kernel it is printed once."""
    monkeypatch.setattr("sys.stdout", __import__("io").StringIO())  # what a kernel's stdout is: not the process's
    announce._say("03-modified-loss: 2 runs to train")
    assert capfd.readouterr().err == "03-modified-loss: 2 runs to train\n"
    monkeypatch.setattr("sys.stdout", sys.__stdout__)  # a plain Python process: stdout is the terminal
    announce._say("once")
    out = capfd.readouterr()
    assert (out.out, out.err) == ("once\n", "")


def test_runs_are_ordered_longest_first_by_measured_speed_or_else_by_examples(monkeypatch):
    from compnb.training import TrainConfig

    sizes = {"sst2": 1000, "snli": 300}
    monkeypatch.setattr(announce, "examples", lambda config: sizes[config.dataset])
    ce, grad, mask = (TrainConfig(dataset="snli", loss="ce"),
                      TrainConfig(dataset="snli", loss="competency", loss_params={"method": "gradient", "lam": 0.1}),
                      TrainConfig(dataset="snli", loss="competency", loss_params={"method": "mask", "lam": 0.1}))
    long_ce = TrainConfig(dataset="sst2", loss="ce", epochs=2)
    known = [announce.Record(H100, kind, ce.model, ce.max_length, rate)
             for kind, rate in (("ce", 1000.0), ("competency/gradient", 500.0), ("competency/mask", 10.0))]
    # seconds: ce 0.3, gradient 0.6, mask 30, long_ce 2.0
    assert announce.longest_first([ce, grad, long_ce, mask], H100, known) == [mask, long_ce, grad, ce]
    # the mask kind never timed here: examples × epochs alone (long_ce 2000, the others 300, in their order)
    assert announce.longest_first([ce, grad, long_ce, mask], H100, known[:2]) == [long_ce, ce, grad, mask]
    # a training split on the hub: sizes unknown, the order kept
    def on_the_hub(config):
        raise ValueError(f"{config.dataset}/train is not local; its size is unknown")

    monkeypatch.setattr(announce, "examples", on_the_hub)
    assert announce.longest_first([ce, grad, long_ce, mask], H100, known) == [ce, grad, long_ce, mask]
