"""The λ explorer's data (`compnb.explorer`) from a made-up runs.csv and run folders: the grid sorted, the
selection seed's values with paper 1's F1 per dataset, Student-t intervals over the confirmation seeds only,
the baseline's entropy and maps of the method looked at, and no maps where a run stored none; and its page
(`compnb.chapters.explorer_page`): the data embedded so that no text ends its script, the chart a numbered
figure, a note before chapter 3 has run, plotly.js from its package."""

from __future__ import annotations

import json
import math
import re

import nbformat
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from compnb import explorer
from compnb.chapters import explorer_page

CONFIRMATION = (1, 2, 3)
ENTROPY = {"gradient": 1.31, "mask": 1.6}  # the baselines' H(top-k) after training, per method, at seed 0


def _row(dataset: str, method: str, form: str, lam: float, seed: int, rng) -> dict:
    kind = "ce" if method == "—" else "competency"
    return {"dataset": dataset, "config": "baseline" if method == "—" else f"{method} · {form} · λ={lam:g}",
            "run": f"{dataset}-{kind}-{method}-{form}-{lam:g}-{seed}", "method": method, "form": form, "lam": lam,
            "seed": seed, "accuracy": rng.uniform(0.8, 0.9), "macro_f1": rng.uniform(0.8, 0.9),
            "f1_binary": rng.uniform(0.8, 0.9) if dataset == "sst2" else np.nan,
            "adv_dataset": "adv_sst2" if dataset == "sst2" else "adv_mnli", "adv_n": 148 if dataset == "sst2" else 121,
            "adv_accuracy": rng.uniform(0.3, 0.5), "adv_macro_f1": rng.uniform(0.3, 0.5),
            "adv_f1_binary": rng.uniform(0.3, 0.5) if dataset == "sst2" else np.nan,
            "H_topk_after": ENTROPY["gradient"] if method == "—" else rng.uniform(1.2, 1.6)}


@pytest.fixture
def runs() -> pd.DataFrame:
    """Per dataset: the baseline at every seed; gradient · subtract at λ 1, 0.1 (confirmed) and 0.5, and
    mask · subtract at λ 0.5; shuffled, so that nothing relies on the file's order of λ."""
    rng = np.random.default_rng(0)
    rows = []
    for dataset in ("sst2", "snli"):
        rows += [_row(dataset, "—", "—", 0.0, seed, rng) for seed in (0, *CONFIRMATION)]
        rows += [_row(dataset, "gradient", "subtract", lam, 0, rng) for lam in (1.0, 0.1, 0.5)]
        rows += [_row(dataset, "gradient", "subtract", 0.1, seed, rng) for seed in CONFIRMATION]
        rows.append(_row(dataset, "mask", "subtract", 0.5, 0, rng))
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


def _maps(label: int) -> dict:
    return {"rows": [4], "label_names": ["negative", "positive"], "examples": [
        {"row": 4, "text": "a fine film", "pair": None, "label": label, "probs": [0.3, 0.7],
         "maps": {"gradient": {"tokens": ["[CLS]", "a", "fine", "film", "[SEP]"], "scores": [0.1, 0.2, 0.4, 0.2, 0.1]},
                  "mask": {"tokens": ["[CLS]", "a", "fine", "film", "[SEP]"], "scores": [0.2] * 5}}}]}


@pytest.fixture
def runs_root(tmp_path, runs):
    """Run folders: every baseline's entropies (seed 0's as `ENTROPY`), and maps for the SST-2 baseline and the
    SST-2 gradient · subtract · λ=0.5 run only."""
    root = tmp_path / "runs"
    for _, r in runs[runs["method"] == "—"].iterrows():
        shift = 0.01 * r["seed"]
        (root / r["run"]).mkdir(parents=True)
        (root / r["run"] / "competency-k5.json").write_text(json.dumps({"entropy_after": {
            m: {"H": 3.0, "H_topk": h + shift} for m, h in ENTROPY.items()}}))
    for run, label in (("sst2-ce-—-—-0-0", 1), ("sst2-competency-gradient-subtract-0.5-0", 0)):
        (root / run).mkdir(parents=True, exist_ok=True)
        (root / run / "example-maps.json").write_text(json.dumps(_maps(label)))
    return root


def _config(data: dict, dataset: str, method: str, form: str) -> dict:
    part = next(d for d in data["datasets"] if d["dataset"] == dataset)
    return next(c for c in part["configs"] if (c["method"], c["form"]) == (method, form))


def test_the_grid_is_sorted_and_each_point_holds_the_selection_seeds_values(runs, runs_root):
    data = explorer.build(runs, runs_root, selection_seed=0)
    assert sorted(d["dataset"] for d in data["datasets"]) == ["snli", "sst2"]
    assert data["selection_seed"] == 0 and data["confirmation_seeds"] == list(CONFIRMATION)
    for dataset, f1 in (("sst2", "f1_binary"), ("snli", "macro_f1")):
        gradient = _config(data, dataset, "gradient", "subtract")
        assert [p["lam"] for p in gradient["points"]] == [0.1, 0.5, 1.0]
        for p in gradient["points"]:
            row = runs[(runs["dataset"] == dataset) & (runs["method"] == "gradient") & (runs["lam"] == p["lam"])
                       & (runs["seed"] == 0)].iloc[0]
            assert p["run"] == row["run"] and p["seed"] == 0
            assert p["values"] == {"accuracy": row["accuracy"], "f1": row[f1], "adv_accuracy": row["adv_accuracy"],
                                   "adv_f1": row[f"adv_{f1}"], "H_topk": row["H_topk_after"]}
        part = next(d for d in data["datasets"] if d["dataset"] == dataset)
        assert part["f1"] == ("binary" if dataset == "sst2" else "macro")
        assert part["adv_dataset"] == ("adv_sst2" if dataset == "sst2" else "adv_mnli")


def test_confirmed_points_carry_a_t_interval_over_the_confirmation_seeds_alone(runs, runs_root):
    data = explorer.build(runs, runs_root, selection_seed=0)
    points = _config(data, "sst2", "gradient", "subtract")["points"]
    confirmed = points[0]
    assert confirmed["lam"] == 0.1 and confirmed["confirmation"]["seeds"] == list(CONFIRMATION)
    assert points[1]["confirmation"] is None and points[2]["confirmation"] is None  # trained at seed 0 only
    at = runs[(runs["dataset"] == "sst2") & (runs["method"] == "gradient") & (runs["lam"] == 0.1)]
    values = at[at["seed"] != 0].sort_values("seed")["adv_accuracy"].to_numpy()
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    shown = confirmed["confirmation"]["adv_accuracy"]
    assert math.isclose(shown["mean"], values.mean()) and math.isclose(shown["low"], low)
    assert math.isclose(shown["high"], high)
    # the selection seed is not in the interval: moving its score leaves the interval as it was
    moved = runs.assign(adv_accuracy=np.where(runs["seed"] == 0, 0.0, runs["adv_accuracy"]))
    again = _config(explorer.build(moved, runs_root, selection_seed=0), "sst2", "gradient", "subtract")["points"][0]
    assert again["confirmation"] == confirmed["confirmation"] and again["values"]["adv_accuracy"] == 0.0


def test_the_baseline_shows_the_entropy_and_maps_of_the_method_looked_at(runs, runs_root):
    data = explorer.build(runs, runs_root, selection_seed=0)
    sst2 = next(d for d in data["datasets"] if d["dataset"] == "sst2")
    assert set(sst2["baseline"]) == {"gradient", "mask"}
    for method, h in ENTROPY.items():
        baseline = sst2["baseline"][method]
        assert baseline["values"]["H_topk"] == h and baseline["run"] == "sst2-ce-—-—-0-0"
        assert math.isclose(baseline["confirmation"]["H_topk"]["mean"], h + 0.02)  # seeds 1-3 add 0.01 × seed
        example = baseline["maps"][0]
        assert example["tokens"] == _maps(1)["examples"][0]["maps"][method]["tokens"]
        assert example["scores"] == _maps(1)["examples"][0]["maps"][method]["scores"]
        assert (example["label"], example["p_true"], example["text"]) == ("positive", 0.7, "a fine film")


def test_a_run_without_stored_maps_gets_none(runs, runs_root):
    data = explorer.build(runs, runs_root, selection_seed=0)
    points = _config(data, "sst2", "gradient", "subtract")["points"]
    assert [p["maps"] is None for p in points] == [True, False, True]
    assert points[1]["maps"][0]["label"] == "negative" and points[1]["maps"][0]["p_true"] == 0.3
    assert _config(data, "sst2", "mask", "subtract")["points"][0]["maps"] is None
    assert next(d for d in data["datasets"] if d["dataset"] == "snli")["baseline"]["gradient"]["maps"] is None


def test_one_seed_gives_a_mean_without_interval_and_a_missing_run_one_error(runs, runs_root):
    one = runs[(runs["seed"] != 2) & (runs["seed"] != 3)]
    point = _config(explorer.build(one, runs_root, selection_seed=0), "sst2", "gradient", "subtract")["points"][0]
    seed1 = one[(one["dataset"] == "sst2") & (one["lam"] == 0.1) & (one["seed"] == 1)].iloc[0]
    assert point["confirmation"]["accuracy"] == {"mean": seed1["accuracy"], "low": None, "high": None}
    moved = (runs["lam"] == 0.5) & (runs["dataset"] == "sst2") & (runs["method"] == "gradient")
    with pytest.raises(ValueError, match=r"sst2 gradient · subtract · λ=0.5 has 0 runs at the selection seed 0"):
        explorer.build(runs.assign(seed=np.where(moved, 7, runs["seed"])), runs_root, selection_seed=0)


def test_write_puts_the_json_in_chapter_3s_results_at_the_profile(project, runs, runs_root):
    target_runs = project / "results" / "smoke" / "runs"
    target_runs.parent.mkdir(parents=True)
    runs_root.rename(target_runs)
    path = explorer.write("smoke", runs)
    assert path == project / "results" / "smoke" / "03-modified-loss" / "explorer.json"
    written = json.loads(path.read_text())
    assert written["profile"] == "smoke" and written == json.loads(json.dumps(
        {"profile": "smoke", **explorer.build(runs, target_runs, selection_seed=0)}))
    assert "NaN" not in path.read_text()


def test_the_page_embeds_the_data_its_script_cannot_end_and_numbers_its_chart(runs, runs_root):
    data = {"profile": "smoke", **explorer.build(runs, runs_root, selection_seed=0)}
    point = _config(data, "sst2", "gradient", "subtract")["points"][1]
    point["maps"][0]["tokens"][1] = "</script><b>"  # a token that would close the data's <script> if left raw
    nb = explorer_page.notebook(data, "smoke")
    overview, figure, below = nb.cells
    assert overview.source.startswith("# The λ explorer\n") and "(0.1, 0.5 and 1)" in overview.source
    assert "confirmation seeds 1, 2 and 3" in overview.source and "smoke profile" in overview.source
    assert "Runs trained before chapter 3 kept the maps have none" in overview.source
    assert figure.metadata["mystnb"]["figure"]["name"] == explorer_page.FIGURE
    assert figure.metadata["tags"] == below.metadata["tags"] == ["remove-input"]
    html = figure.outputs[0]["data"]["text/html"]
    script = re.search(r'<script type="application/json" id="compnb-explorer-data">(.*?)</script>', html, re.S)[1]
    assert json.loads(script)["explorer"] == data and "<" not in script
    assert f'<script src="../_static/{explorer_page.PLOTLY}"></script>' in html
    assert 'id="compnb-explorer-maps"' in below.outputs[0]["data"]["text/html"]


def test_before_chapter_3_has_run_the_page_says_so(tmp_path, project):
    path = explorer_page.write(tmp_path, "smoke")
    assert path == tmp_path / "_generated" / "lambda-explorer.ipynb"
    cells = nbformat.read(path, as_version=4).cells
    assert len(cells) == 1 and "appears once chapter 3 has run" in cells[0].source


def test_plotly_js_comes_from_the_plotly_package(tmp_path):
    copied = explorer_page.copy_plotly(tmp_path)
    assert copied == tmp_path / "_static" / "plotly.min.js"
    assert copied.read_bytes() == explorer_page.plotly_source().read_bytes()
    assert b"plotly.js v" in copied.read_bytes()[:200]
