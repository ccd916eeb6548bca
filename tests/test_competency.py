"""Chapter 3's sweep: the λ grid, the plan of runs, best-λ selection, and the tables built from run rows."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from compnb import formatting as fmt
from compnb.chapters import competency, competency_report
from compnb.losses import FORMS, METHODS
from compnb.profiles import settings
from compnb.training import TrainConfig


def test_lambdas_add_a_readers_column_and_reject_bad_values():
    assert competency.lambdas("full") == (0.1, 0.5, 1.0)
    assert competency.lambdas("full", 0.3) == (0.1, 0.3, 0.5, 1.0)
    assert competency.lambdas("full", 0.5) == (0.1, 0.5, 1.0)
    for bad in (-0.1, float("nan"), float("inf"), True, "0.3"):
        with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
            competency.lambdas("full", bad)
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        competency.lambdas("fast")


def test_full_grid_covers_every_method_form_and_lambda_once_per_dataset():
    configs = competency.grid("full", 0, competency.lambdas("full"))
    assert len(configs) == len(competency.DATASETS) * (1 + len(METHODS) * len(FORMS) * 3)
    assert len({c.run_id() for c in configs}) == len(configs)
    for dataset in competency.DATASETS:
        mine = [c for c in configs if c.dataset == dataset]
        assert [c.loss for c in mine].count("ce") == 1
        assert {(c.loss_kwargs["method"], c.loss_kwargs["form"], c.loss_kwargs["lam"]) for c in mine if c.loss != "ce"} \
            == {(m, f, lam) for m in METHODS for f in FORMS for lam in (0.1, 0.5, 1.0)}
    sst2 = next(c for c in configs if c.dataset == "sst2")
    assert sst2.max_train_examples == 16000 and sst2.epochs == 1
    assert next(c for c in configs if c.dataset == "snli").max_train_examples is None


def _record(dataset, seed, accuracy, params=None):
    config = TrainConfig(dataset=dataset, seed=seed, profile="smoke", loss="competency" if params else "ce",
                         loss_params=params or {})
    return {"config": config, "metrics": {"validation": {"accuracy": accuracy}}}


def test_best_lambda_is_the_most_accurate_first_seed_run_with_ties_to_the_smaller():
    records = [_record("sst2", 0, 0.80),
               _record("sst2", 0, 0.81, {"method": "mask", "form": "exp_subtract", "lam": 1.0}),
               _record("sst2", 0, 0.81, {"method": "mask", "form": "exp_subtract", "lam": 0.5}),
               _record("sst2", 0, 0.79, {"method": "mask", "form": "exp_subtract", "lam": 0.1}),
               _record("sst2", 1, 0.99, {"method": "mask", "form": "exp_subtract", "lam": 0.1}),  # not the first seed
               _record("sst2", 0, 0.70, {"method": "gradient", "form": "subtract", "lam": 0.1}),
               _record("sst2", 0, 0.75, {"method": "gradient", "form": "subtract", "lam": 1.0})]
    assert competency.best_lams(records) == {("sst2", "mask", "exp_subtract"): 0.5, ("sst2", "gradient", "subtract"): 1.0}


def test_the_inverse_form_takes_the_unscaled_lambda_without_a_choice():
    records = [_record("sst2", 0, 0.80),
               _record("sst2", 0, 0.90, {"method": "gradient", "form": "inverse", "lam": 0.1}),
               _record("sst2", 0, 0.70, {"method": "gradient", "form": "inverse", "lam": 1.0})]
    assert competency.best_lams(records) == {("sst2", "gradient", "inverse"): 1.0}
    assert competency.unscaled_lam([0.1, 0.5]) == 0.5 and competency.unscaled_lam([2.0, 0.4]) == 2.0


def test_the_selection_seed_never_confirms_its_own_choice():
    selection, confirmation = competency.seed_roles("full")
    assert selection not in confirmation and len(confirmation) == len(settings("03-modified-loss", "full")["seeds"]) - 1
    with pytest.raises(ValueError, match=r"seeds must be distinct, got \[0, 1, 0\]"):
        competency.seed_roles("full", (0, 1, 0))
    records = [_record("sst2", 0, 0.80),
               _record("sst2", 0, 0.85, {"method": "mask", "form": "subtract", "lam": 0.5}),
               _record("sst2", 0, 0.81, {"method": "mask", "form": "subtract", "lam": 0.1})]
    stage2 = competency.confirmation_configs("smoke", records, (0, 1, 2))
    assert {c.seed for c in stage2} == {1, 2}
    assert {c.loss_kwargs.get("lam") for c in stage2} == {None, 0.5}
    frame = _frame()  # the comparison reads the confirmation seeds only
    comparison = competency_report.seed_comparison(frame)
    assert set(comparison["seeds"]) == {"1, 2"}
    shifted = frame.assign(accuracy=np.where(frame["seed"] == 0, 0.0, frame["accuracy"]))
    pd.testing.assert_frame_equal(competency_report.seed_comparison(shifted), comparison)


def test_workers_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        competency.run_all("smoke", workers=0)


def _frame() -> pd.DataFrame:
    """Run rows as `runs_frame` makes them: a baseline at 3 seeds, one config at 3 seeds, one at seed 0."""
    rng = np.random.default_rng(0)
    rows = []
    for config, method, form, lam, seeds in (("baseline", "—", "—", 0.0, (0, 1, 2)),
                                             ("gradient · subtract · λ=0.5", "gradient", "subtract", 0.5, (0, 1, 2)),
                                             ("gradient · subtract · λ=1", "gradient", "subtract", 1.0, (0,))):
        for seed in seeds:
            rows.append({"dataset": "sst2", "config": config, "method": method, "form": form, "lam": lam,
                         "seed": seed, "accuracy": rng.uniform(0.8, 0.9), "macro_f1": rng.uniform(0.8, 0.9),
                         "adv_accuracy": rng.uniform(0.3, 0.5), "adv_macro_f1": rng.uniform(0.3, 0.5)})
    return pd.DataFrame(rows)


def test_grid_table_puts_the_baseline_at_lambda_zero_and_leaves_no_cell_empty():
    frame = _frame()
    table = competency_report.grid_table(frame)
    plain = frame[(frame["config"] == "baseline") & (frame["seed"] == 0)].iloc[0]
    assert list(table.columns.get_level_values(0).unique()) == ["λ = 0", "λ = 0.5", "λ = 1"]
    assert table[("λ = 0", "acc")].iloc[0] == plain["accuracy"]
    assert table[("λ = 1", "macro F1")].iloc[0] == frame.iloc[-1]["macro_f1"]
    assert not table.isna().any().any()


def test_seed_comparison_pairs_seeds_and_matches_scipy():
    frame = _frame()
    table = competency_report.seed_comparison(frame).set_index("config")
    assert list(table.index) == ["baseline", "gradient · subtract · λ=0.5"]  # the selection-seed-only config is left out
    confirm = frame[frame["seed"] > 0]
    a = confirm[confirm["config"] == "gradient · subtract · λ=0.5"].sort_values("seed")["accuracy"].to_numpy()
    b = confirm[confirm["config"] == "baseline"].sort_values("seed")["accuracy"].to_numpy()
    row = table.loc["gradient · subtract · λ=0.5"]
    assert row["Δ acc"] == pytest.approx((a - b).mean())
    assert row["p (acc)"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    low, high = stats.t.interval(0.95, 1, loc=(a - b).mean(), scale=stats.sem(a - b))
    assert fmt.parse_interval(row["Δ acc 95% CI"]) == pytest.approx((low, high), abs=5e-4)
    assert row["p (acc, Holm)"] == row["p (acc)"]  # a family of one comparison
    verdict = "significant, also after Holm's correction" if row["p (acc)"] < 0.05 else "not significant"
    assert f"({fmt.p_text(row['p (acc)'])}, {verdict})" in competency_report.significance_sentences(table.reset_index())

