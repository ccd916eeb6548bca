"""Chapter 2's pipeline caches its analysis in two parts: a missing sensitivity table is computed alone when
the run's weights are at hand, and a run without weights is retrained with every old measurement dropped."""

import json

import pandas as pd
import pytest
from transformers import AutoTokenizer, BertConfig

from compnb import advglue, atomicio, influence, models, run_cache, training
from compnb.chapters import baseline


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A finished, AdvGLUE-scored, analysed sst2 run in tmp_path whose analysis lacks its sensitivity table."""
    config = baseline.configs("smoke", seeds=(0,))[0]
    folder = tmp_path / "run"
    monkeypatch.setattr(run_cache, "run_dir", lambda cfg, runs_root=None: folder)
    atomicio.write_json(folder / "config.json", config.to_dict())
    atomicio.write_json(folder / run_cache.FINISHED, {})
    for name in advglue.sets_for(config.dataset):
        atomicio.write_json(advglue.eval_path(folder, name), {})
    analysis = folder / "analysis-k5"
    atomicio.write_json(analysis / "summary.json", {"old": True})
    atomicio.write_csv(analysis / "entropy.csv", pd.DataFrame({"entropy": [1.0]}))
    atomicio.write_json(analysis / "examples.json", [])
    return config, folder


def test_a_missing_sensitivity_table_makes_an_analysed_run_not_ready(run):
    config, folder = run
    assert baseline._ready(folder, config.dataset, 5, analysed=False)
    assert not baseline._ready(folder, config.dataset, 5, analysed=True)
    atomicio.write_csv(folder / "analysis-k5" / "sensitivity.csv", pd.DataFrame({"unit": ["word"]}))
    assert baseline._ready(folder, config.dataset, 5, analysed=True)


def test_a_weightless_run_is_retrained_and_measured_afresh(run, monkeypatch):
    config, folder = run
    calls = []

    def train(cfg, force=False):
        calls.append(("train", force, sorted(p.name for p in folder.iterdir())))
        (folder / "model.safetensors").write_bytes(b"")
        return folder

    monkeypatch.setattr(training, "train", train)
    monkeypatch.setattr(advglue, "evaluate_run", lambda f: calls.append(("evaluate",)))
    monkeypatch.setattr(baseline, "analyse", lambda f, k, n: calls.append(("analyse", (f / "analysis-k5").exists())))
    assert baseline.prepare(config, analysed=True) == folder
    # the old evaluations and analysis (made on the lost weights) are gone before retraining from scratch
    assert calls == [("train", True, ["config.json", run_cache.FINISHED]), ("evaluate",), ("analyse", False)]


def test_with_weights_only_the_missing_sensitivity_table_is_computed(run, monkeypatch):
    config, folder = run
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))
    model = models.SequenceClassifier.from_config(
        BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=32, max_position_embeddings=64), num_labels=2).eval()
    monkeypatch.setattr(training, "load_run", lambda f: (model, tokenizer, config))
    monkeypatch.setattr(baseline, "validation_texts", lambda cfg: (["a fine film", "dull , dull"], None, [1, 0]))
    monkeypatch.setattr(baseline, "artifact_words", lambda dataset: {"dull"})

    def untouched(*args, **kwargs):
        raise AssertionError("the word analysis is cached and must not be recomputed")

    monkeypatch.setattr(influence, "word_saliency", untouched)
    monkeypatch.setattr(influence, "saliency_entropy", untouched)
    result = baseline.analyse(folder, 5)
    assert result["summary"] == {"old": True}
    table = result["sensitivity"]
    assert list(table.columns) == ["unit", "specials", "k", "sentences", "slots", "observed", "expected", "ratio",
                                   "p_value", "observed_low", "observed_high", "entropy_topk", "entropy_max",
                                   "special_share"]
    assert table[["unit", "specials"]].apply(tuple, axis=1).tolist() == list(influence.COMBINATIONS)
    assert table.equals(pd.read_csv(folder / "analysis-k5" / "sensitivity.csv"))
    assert json.loads((folder / "analysis-k5" / "summary.json").read_text()) == {"old": True}


def test_sensitivity_table_stacks_the_analysed_runs():
    config = baseline.configs("smoke", seeds=(0,))[0]
    rows = pd.DataFrame({"unit": ["word", "token"], "specials": ["excluded", "included"], "ratio": [0.8, 0.9]})
    records = [{"config": config, "analysis": {"sensitivity": rows}}, {"config": config, "analysis": None}]
    table = baseline.sensitivity_table(records)
    assert list(table.columns) == ["dataset", "seed", "unit", "specials", "ratio"]
    assert table["dataset"].tolist() == ["sst2", "sst2"] and table["ratio"].tolist() == [0.8, 0.9]
