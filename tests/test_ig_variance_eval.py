"""Chapter 5's pipeline and report: run configs, per-pair IG measurements, example rules and tables."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from transformers import AutoTokenizer, BertConfig

from compnb import batching, data, ig_variance, models, render
from compnb.chapters import ig_variance_eval, ig_variance_report
from compnb.models import SequenceClassifier
from compnb.saliency import IntegratedGradients


def test_loss_settings_take_the_profile_and_refuse_bad_values_by_name():
    assert ig_variance_eval.loss_settings("full") == {"lam": 0.1, "alpha": 10.0, "n_steps": 10, "method": "riemann_right"}
    assert ig_variance_eval.loss_settings("full", lam=0.3, n_steps=None)["lam"] == 0.3
    with pytest.raises(ValueError, match="lam must be a finite number >= 0, got -1"):
        ig_variance_eval.loss_settings("full", lam=-1)
    with pytest.raises(ValueError, match="unknown IG method 'simpson'"):
        ig_variance_eval.loss_settings("full", method="simpson")
    with pytest.raises(ValueError, match=r"unknown penalty parameters \['beta'\]"):
        ig_variance_eval.loss_settings("full", beta=1.0)


def test_configs_differ_only_where_the_variants_do():
    base, detached, differentiable = (ig_variance_eval.config("full", v, 1) for v in ig_variance_eval.VARIANTS)
    assert base.loss == "ce" and detached.loss == differentiable.loss == "ig_variance"
    assert detached.loss_kwargs["variant"] == "detached" and differentiable.loss_kwargs["variant"] == "differentiable"
    assert {c.batch_size for c in (base, detached, differentiable)} == {16}
    assert len({c.run_id() for c in (base, detached, differentiable)}) == 3
    with pytest.raises(ValueError, match="unknown variant 'frozen'; allowed: baseline, detached, differentiable"):
        ig_variance_eval.config("full", "frozen", 0)


def test_attribute_lays_out_every_pair_and_matches_one_pair_at_a_time():
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    model = SequenceClassifier.from_config(config, num_labels=3, dropout=0.0).double()
    ds = data.from_frame(pd.DataFrame({"premise": ["A dog runs in the park.", "Two men.", "A woman sings a song loudly."],
                                       "hypothesis": ["An animal moves.", "Nobody is here at all today.", "Quiet."],
                                       "label": [0, 2, 1]}), "snli")
    encoded = batching.encode(tokenizer, ds, ("premise", "hypothesis"), 32)
    out = ig_variance_eval.attribute(model, tokenizer, encoded, n_steps=4, method="riemann_right", batch_size=2)
    enc = [tokenizer(p, h) for p, h in zip(data.column(ds, "premise"), data.column(ds, "hypothesis"))]
    assert list(np.diff(out["offsets"])) == [len(e["input_ids"]) for e in enc]
    for i, e in enumerate(enc):
        ids = torch.tensor([e["input_ids"]])
        alone = IntegratedGradients(model).attribute(ids, torch.ones_like(ids), torch.tensor([ds[i]["label"]]), n_steps=4,
                                                     token_type_ids=torch.tensor([e["token_type_ids"]]))[0]
        start, end = out["offsets"][i], out["offsets"][i + 1]
        assert out["ids"][start:end].tolist() == e["input_ids"]
        np.testing.assert_allclose(out["attributions"][start:end], alone.detach().numpy(), rtol=1e-5, atol=1e-7)
        assert out["variance"][i] == pytest.approx(float(ig_variance.attribution_variance(alone[None], torch.ones_like(ids))[0]))


def test_examples_follow_the_stated_rules_and_do_not_repeat():
    premises = ["a cat sleeps", "a man rides a red bike in town today", "kids play", "the dog eats food now"]
    hypotheses = ["a cat is awake", "a man rides a bike", "kids sleep", "the dog eats"]
    labels = np.array([1, 2, 1, 2])
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.7, 0.1, 0.2], [0.1, 0.1, 0.8]])
    picked = ig_variance_report.pick_examples(premises, hypotheses, labels, probs)
    assert picked["neutral, baseline wrong"] == 2  # the only misclassified neutral pair
    assert picked["contradiction, high overlap"] == 1  # 5/5 hypothesis words in the premise, longer than pair 3's 3/3
    assert picked["long premise"] == 3  # pair 1 is longer but already shown


def test_wordpieces_merge_and_signed_colours_follow_the_sign():
    words, values = ig_variance_report._merged(["[CLS]", "play", "##ing", "[SEP]", "dogs", "[SEP]"],
                                               np.array([0.5, 1.0, 0.5, 0.0, -2.0, 0.0]), {"[CLS]", "[SEP]"})
    assert words == ["playing", "‖", "dogs"] and values == [1.5, 0.0, -2.0]
    html = render.signed_html(["up", "down"], [1.0, -1.0])
    red, blue = (part.split("background:")[1][:7] for part in html.split("<span")[1:])
    assert int(red[1:3], 16) > int(red[5:7], 16) and int(blue[5:7], 16) > int(blue[1:3], 16)


def _records(seed_acc: dict[str, list[float]], n: int = 40) -> tuple[list[dict], np.ndarray]:
    labels = np.arange(n) % 3
    records = []
    for variant, accs in seed_acc.items():
        for seed, acc in enumerate(accs):
            right = np.arange(n) < round(acc * n)
            probs = np.full((n, 3), 0.1)
            probs[np.arange(n), np.where(right, labels, (labels + 1) % 3)] = 0.8
            records.append({"variant": variant, "seed": seed, "probs": probs,
                            "ig": {"variance": np.full(n, 0.1 * (seed + 1)), "gap": np.zeros(n)},
                            "metrics": {"train_time_s": 10.0, "steps": 100, "epochs_run": 1, "stopped_early": False,
                                        "train_loss": []}})
    return records, labels


def test_comparison_pairs_seeds_against_the_baseline_like_scipy():
    records, labels = _records({"baseline": [0.5, 0.6, 0.7], "detached": [0.55, 0.6, 0.8],
                                "differentiable": [0.5, 0.7, 0.75]})
    runs = ig_variance_report.per_run(records, labels)
    table = ig_variance_report.comparison(runs, ("accuracy",)).set_index("variant")
    a, b = runs[runs["variant"] == "detached"]["accuracy"].to_numpy(), runs[runs["variant"] == "baseline"]["accuracy"].to_numpy()
    assert table.loc["detached", "Δ vs baseline"] == pytest.approx((a - b).mean())
    assert table.loc["detached", "p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert table.loc["detached", "p (Holm)"] >= table.loc["detached", "p"]


def test_error_by_length_bins_hold_every_pair_once():
    records, labels = _records({"baseline": [0.5, 0.6], "detached": [0.5, 0.5], "differentiable": [0.6, 0.6]})
    lengths = np.arange(len(labels)) % 17 + 5
    table = ig_variance_report.error_by_length(records, labels, lengths, n_bins=4)
    assert table.groupby("variant")["pairs"].sum().eq(len(labels)).all()
    assert ((table["low"] >= 0) & (table["high"] <= 1)).all()


def test_training_settings_are_parameters_too():
    train = ig_variance_eval.train_settings("full", lr=1e-4, patience=None)
    assert train["lr"] == 1e-4 and train["patience"] == 1 and train["batch_size"] == 16
    assert ig_variance_eval.config("full", "differentiable", 0, train=train).lr == 1e-4
    with pytest.raises(ValueError, match=r"unknown training settings \['momentum'\]"):
        ig_variance_eval.train_settings("full", momentum=0.9)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        ig_variance_eval.config("full", "baseline", 0, train={"batch_size": 0})


def _random_records(n: int = 90, seeds: int = 3, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """Made-up runs with random probabilities (every class predicted and present), three variants."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    records = [{"variant": v, "seed": s, "probs": rng.dirichlet(np.ones(3), n)}
               for v in ig_variance_eval.VARIANTS for s in range(seeds)]
    return records, labels


def test_per_class_scores_match_sklearn_and_have_the_ledger_columns():
    from sklearn.metrics import f1_score, precision_score, recall_score
    records, labels = _random_records()
    table = ig_variance_report.per_class(records, labels)
    assert list(table.columns) == ["variant", "seed", "class", "accuracy", "recall", "precision", "f1", "support"]
    assert len(table) == len(records) * 3
    for r in records:
        pred = r["probs"].argmax(1)
        rows = table[(table["variant"] == r["variant"]) & (table["seed"] == r["seed"])].set_index("class")
        rows = rows.loc[list(ig_variance_report.LABELS)]
        np.testing.assert_allclose(rows["recall"], recall_score(labels, pred, labels=[0, 1, 2], average=None))
        np.testing.assert_allclose(rows["precision"], precision_score(labels, pred, labels=[0, 1, 2], average=None))
        np.testing.assert_allclose(rows["f1"], f1_score(labels, pred, labels=[0, 1, 2], average=None))
        np.testing.assert_array_equal(rows["accuracy"], rows["recall"])  # per-class accuracy is the recall
        assert rows["support"].tolist() == [int((labels == k).sum()) for k in range(3)]


def test_per_class_leaves_precision_undefined_for_a_class_never_predicted():
    labels = np.array([0, 1, 2, 0])
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.8, 0.1, 0.1]])
    table = ig_variance_report.per_class([{"variant": "baseline", "seed": 0, "probs": probs}], labels).set_index("class")
    assert table.loc["contradiction", "recall"] == 0 and np.isnan(table.loc["contradiction", "precision"])
    assert table.loc["entailment", "precision"] == pytest.approx(2 / 3) and table.loc["entailment", "recall"] == 1


def test_length_buckets_assign_every_pair_once_and_per_seed_rates_average_to_the_summary():
    records, labels = _random_records(n=101)
    lengths = np.random.default_rng(1).integers(5, 40, len(labels))
    names, order = ig_variance_report.length_bins(lengths)
    assert len(names) == len(labels) and set(names) <= set(order)
    for name in order:  # a bin's name covers exactly the lengths inside it, and bins do not overlap
        low, high = map(int, name.split("–"))
        assert ((lengths >= low) & (lengths <= high)).sum() == (names == name).sum()
    seeds = ig_variance_report.error_by_length_seeds(records, labels, lengths)
    assert list(seeds.columns) == ["variant", "seed", "words", "pairs", "error rate"]
    assert seeds.groupby(["variant", "seed"])["pairs"].sum().eq(len(labels)).all()
    r = records[4]
    one = seeds[(seeds["variant"] == r["variant"]) & (seeds["seed"] == r["seed"])].set_index("words")
    for name in order:
        inside = names == name
        assert one.loc[name, "error rate"] == pytest.approx((r["probs"][inside].argmax(1) != labels[inside]).mean())
    summary = ig_variance_report.error_by_length(records, labels, lengths)
    means = seeds.groupby(["variant", "words"])["error rate"].mean()
    for _, row in summary.iterrows():
        assert row["error rate"] == pytest.approx(means.loc[(row["variant"], row["words"])])


def test_length_interval_is_over_seeds_not_over_pooled_pairs():
    # two seeds with identical predictions: no spread over seeds, so the interval collapses to the mean, however
    # few pairs a bin holds (a pooled binomial interval would not)
    records, labels = _random_records(n=30, seeds=1)
    records += [dict(r, seed=1) for r in records]
    table = ig_variance_report.error_by_length(records, labels, np.arange(30), n_bins=3)
    np.testing.assert_allclose(table["low"], table["error rate"])
    np.testing.assert_allclose(table["high"], table["error rate"])


def test_length_trend_reads_slope_and_roughness_off_each_run():
    seeds = pd.DataFrame({"variant": ["baseline"] * 4 + ["detached"] * 4, "seed": [0] * 8,
                          "words": list("abcd") * 2, "pairs": [1] * 8,
                          "error rate": [0.1, 0.2, 0.3, 0.4, 0.1, 0.3, 0.1, 0.3]})
    trend = ig_variance_report.length_trend(seeds).set_index("variant")
    assert trend.loc["baseline", "slope"] == pytest.approx(0.1) and trend.loc["baseline", "roughness"] == pytest.approx(0)
    assert trend.loc["detached", "roughness"] > 0.05


def test_seed_comparison_pairs_by_seed_and_holms_over_the_whole_table():
    records, labels = _random_records(n=200)
    classes = ig_variance_report.per_class(records, labels)
    table = ig_variance_report.seed_comparison(classes, ("recall",), by="class")
    tested = table[table["variant"] != "baseline"]
    assert len(tested) == 6
    for _, row in tested.iterrows():
        own = classes[(classes["variant"] == row["variant"]) & (classes["class"] == row["class"])].sort_values("seed")
        base = classes[(classes["variant"] == "baseline") & (classes["class"] == row["class"])].sort_values("seed")
        assert row["p (paired t, raw)"] == pytest.approx(stats.ttest_rel(own["recall"], base["recall"]).pvalue)
    from statsmodels.stats.multitest import multipletests
    np.testing.assert_allclose(tested["p (Holm, table)"], multipletests(tested["p (paired t, raw)"], method="holm")[1])


def test_seed_comparison_leaves_out_seeds_where_a_score_is_undefined():
    table = pd.DataFrame({"variant": ["baseline"] * 3 + ["detached"] * 3 + ["differentiable"] * 3,
                          "seed": [0, 1, 2] * 3,
                          "precision": [0.5, 0.6, np.nan, 0.55, 0.7, 0.9, np.nan, np.nan, np.nan]})
    out = ig_variance_report.seed_comparison(table, ("precision",)).set_index("variant")
    assert out.loc["baseline", "seeds"] == 2 and out.loc["baseline", "mean"] == pytest.approx(0.55)
    assert out.loc["detached", "Δ vs baseline"] == pytest.approx(0.075)  # seeds 0 and 1 only
    assert out.loc["differentiable", "95% CI"] == "undefined at every seed"
