"""The saliency maps every chapter-3 run stores for the λ explorer: fixed validation rows chosen by label and length,
one map per saliency method that is a distribution over the example's tokens, cached, and never a retraining for a
run without weights."""

from __future__ import annotations

import json
import math
import shutil

import pytest

import tiny_runs

from compnb.chapters import competency


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_runs.trained_world(tmp_path_factory.mktemp("maps-world"))


def test_map_rows_take_the_first_short_rows_of_each_label_in_turn():
    texts = ["a b", "c " * 30, "d", "e f g", "h", "i", "j"]
    labels = [0, 1, 1, 0, 0, 1, 1]
    assert competency.map_rows(texts, None, labels, n=4) == [0, 3, 2, 5]
    pairs = ["p " * 24] + ["q"] * 6  # a pair counts both texts' words
    assert competency.map_rows(texts, pairs, labels, n=4) == [3, 4, 2, 5]


def test_each_run_stores_both_methods_maps_of_the_fixed_rows(world, monkeypatch, tmp_path):
    monkeypatch.setenv("COMPNB_DATA_DIR", str(world.data))
    run = shutil.copytree(world.finished, tmp_path / "run")
    path = competency.example_maps(run)
    stored = json.loads(path.read_text())
    assert len(stored["examples"]) == competency.MAP_EXAMPLES and stored["label_names"] == ["negative", "positive"]
    assert [e["label"] for e in stored["examples"]] == [0, 0, 0, 1, 1, 1]
    for example in stored["examples"]:
        assert math.isclose(sum(example["probs"]), 1.0, abs_tol=1e-5)
        for method in ("gradient", "mask"):
            m = example["maps"][method]
            assert len(m["tokens"]) == len(m["scores"]) and m["tokens"][0] == "[CLS]"
            assert math.isclose(sum(m["scores"]), 1.0, abs_tol=1e-4) and min(m["scores"]) >= 0
    assert stored["examples"][0]["maps"]["gradient"] != stored["examples"][0]["maps"]["mask"]
    before = path.stat().st_mtime_ns
    assert competency.example_maps(run) == path and path.stat().st_mtime_ns == before  # cached


def test_a_run_without_weights_gets_no_maps_and_is_not_retrained(world, monkeypatch, tmp_path):
    monkeypatch.setenv("COMPNB_DATA_DIR", str(world.data))
    run = shutil.copytree(world.finished, tmp_path / "run")
    (run / "model.safetensors").unlink()
    assert competency.example_maps(run) is None and not (run / competency.MAPS_FILE).exists()
