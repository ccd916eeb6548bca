"""The papers' three architectures, as tiny random-initialised twins (`tests/twins.py`: OPT with an output
projection, Llama without a pad token, ELECTRA), loaded by name through `$COMPNB_MODELS_DIR` like real
backbones, through every method of the book: the head's width, padding and pooling, pairs, every loss and its
gradients (second order included), the attack, the artifact influence, training, AdvGLUE scoring and each
chapter's pipeline at a reduced smoke size."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import twins
from conftest import needs_data
from transformers import AutoModel, AutoTokenizer, OPTConfig

from compnb import (adversarial, advglue, batching, data, ig_variance, inference, influence, losses, models, profiles,
                    training)
from compnb.artifacts import word_spans
from compnb.chapters import adversarial_eval, baseline, competency, ig_variance_eval
from compnb.paths import data_search_paths
from compnb.saliency import GradientSaliency

PREMISES = ["A man is playing a guitar on the stage.", "Two dogs run through a snowy field.",
            "A woman is slicing onions in a kitchen.", "Children are not playing outside today."]
HYPOTHESES = ["A person plays music.", "The animals are sleeping.", "Someone cooks dinner for her family.",
              "Kids might be indoors."]
LABELS = [0, 2, 1, 1]
SENTENCES = ["a fine , funny film", "the plot is dull and the acting is worse than dull", "nobody sleeps",
             "it 's a charming and often affecting journey"]
LOSS_CASES = ([("ce", {})]
              + [("competency", {"method": m, "form": f, "lam": 0.5}) for m in losses.METHODS for f in losses.FORMS]
              + [("ig_variance", {"variant": v, "n_steps": 3}) for v in ig_variance.VARIANTS])
BACKBONES = {twins.OPT: "OPTModel", twins.LLAMA: "LlamaModel", twins.ELECTRA: "ElectraModel"}
TOKENIZERS = {twins.OPT: "GPT2Tokenizer", twins.LLAMA: "LlamaTokenizer", twins.ELECTRA: "BertTokenizer"}
SUBSTITUTE = {twins.OPT: "pad", twins.LLAMA: "unk", twins.ELECTRA: "mask"}  # what each twin's attack may use


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(params=twins.NAMES, ids=lambda name: name.split("/")[1])
def name(request, twins_dir):
    return request.param


@pytest.fixture(params=twins.DECODERS, ids=lambda name: name.split("/")[1])
def decoder(request, twins_dir):
    return request.param


def load(name: str, num_labels: int = 3, **kwargs):
    torch.manual_seed(0)
    return models.SequenceClassifier.from_pretrained(name, num_labels, **kwargs)


def pair_batch(tokenizer, max_length: int = 32) -> training.Batch:
    """The four pairs, tokenized as training does (`encode`, then `PadCollator` on the tokenizer's side)."""
    ids = tokenizer(PREMISES, HYPOTHESES, truncation=True, max_length=max_length, return_attention_mask=False)
    keys = [k for k in data.PRETOKENIZED if k in tokenizer.model_input_names]
    items = [{**{k: ids[k][i] for k in keys}, "labels": LABELS[i], "index": i} for i in range(len(LABELS))]
    return batching.PadCollator(tokenizer.pad_token_id, tokenizer.padding_side)(items)


def piece(tokenizer, token: str) -> str:
    """A token's text as in the input, lower-cased: without a word-start marker or WordPiece's '##'."""
    return tokenizer.convert_tokens_to_string([token]).strip().removeprefix("##").lower()


def first_layer_weight(model: models.SequenceClassifier) -> torch.nn.Parameter:
    """A weight matrix of the backbone's first transformer layer (deep: reached only through attention)."""
    return next(p for n, p in model.backbone.named_parameters() if ".0." in n and p.ndim == 2)


# --------------------------------------------------------------------------- loading, head, padding, pairs


def test_twins_are_tiny_and_load_by_name_through_the_models_dir(name, twins_dir):
    assert models.resolve_backbone(name) == str(twins.folder_of(twins_dir, name))
    model, tokenizer = load(name)
    config = model.backbone.config
    assert type(model.backbone).__name__ == BACKBONES[name] and type(tokenizer).__name__ == TOKENIZERS[name]
    assert config.num_hidden_layers == 2 and config.hidden_size <= 64 and len(tokenizer) <= 2000
    assert models.is_decoder(config) == (name in twins.DECODERS)
    assert model.pooling == ("last" if name in twins.DECODERS else "mean")


def test_the_head_takes_the_width_the_pooling_receives(name):
    model, tokenizer = load(name)
    enc = tokenizer(["a fine film"], return_tensors="pt")
    width = model.backbone(**enc).last_hidden_state.shape[-1]
    assert model.head[1].in_features == models.output_width(model.backbone) == width
    if name == twins.OPT:  # OPT-350m's layout: embeddings projected in, the output projected out
        assert width == model.backbone.config.word_embed_proj_dim != model.backbone.config.hidden_size
    assert model(**enc).shape == (1, 3)


def test_a_projected_opt_output_sizes_the_head_from_its_config():
    """Failed before `output_width`: the head was sized from hidden_size (16), the pooled states have 8."""
    config = OPTConfig(vocab_size=60, hidden_size=16, word_embed_proj_dim=8, num_hidden_layers=1, ffn_dim=32,
                       num_attention_heads=2, max_position_embeddings=32, pad_token_id=1)
    model = models.SequenceClassifier.from_config(config, num_labels=2).eval()
    assert model.head[1].in_features == 8
    assert model(input_ids=torch.tensor([[2, 5, 7]])).shape == (1, 2)


def test_llama_has_no_pad_token_and_pads_with_a_valid_id(twins_dir):
    folder = twins.folder_of(twins_dir, twins.LLAMA)
    assert AutoTokenizer.from_pretrained(folder).pad_token is None
    assert AutoModel.from_config(models.backbone_config(twins.LLAMA)).config.pad_token_id is None
    model, tokenizer = load(twins.LLAMA)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.backbone.config.pad_token_id
    assert 0 <= tokenizer.pad_token_id < model.embeddings.num_embeddings and tokenizer.padding_side == "left"


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_on_either_side_leaves_every_row_as_it_is_alone(name, side):
    """Last-token pooling (decoders) and mean pooling (ELECTRA) read only real tokens, on either side, with
    the tokenizer's padding and with the training collator's. (OPT counts positions from the attention mask and
    Llama's rotary positions are relative; ELECTRA's absolute positions need its tokenizer's right padding.)"""
    if side == "left" and name not in twins.DECODERS:
        pytest.skip("an encoder with absolute positions pads on the right, as its tokenizer does")
    model, tokenizer = load(name)
    model.eval()
    tokenizer.padding_side = side
    alone = torch.cat([model(**tokenizer([p], [h], return_tensors="pt")) for p, h in zip(PREMISES, HYPOTHESES)])
    padded = tokenizer(PREMISES, HYPOTHESES, padding=True, return_tensors="pt")
    assert not padded["attention_mask"].all()
    first = padded["attention_mask"][:, 0 if side == "left" else -1]
    assert (first == 0).any()  # some row is padded on this side
    torch.testing.assert_close(model(**padded), alone, atol=1e-5, rtol=1e-4)
    batch = pair_batch(tokenizer, max_length=64)
    torch.testing.assert_close(model(**training.model_inputs(batch)), alone, atol=1e-5, rtol=1e-4)


def test_pairs_mark_the_hypothesis_by_sequence_ids_and_specials_by_the_mask(name):
    _, tokenizer = load(name)
    enc = tokenizer(PREMISES[:1], HYPOTHESES[:1], return_special_tokens_mask=True)
    ids, sequence, special = enc["input_ids"][0], enc.sequence_ids(0), enc["special_tokens_mask"][0]
    specials = [i for i, s in enumerate(sequence) if s is None]
    assert [i for i, s in enumerate(special) if s] == specials
    hypothesis = [t for t, s in zip(ids, sequence) if s == 1]
    assert tokenizer.decode(hypothesis).strip().lower() == HYPOTHESES[0].lower()
    if name in twins.DECODERS:  # BOS premise BOS hypothesis: the separator is the BOS, no EOS, no segment ids
        assert [ids[i] for i in specials] == [tokenizer.bos_token_id] * 2 and specials[1] == sequence.index(1) - 1
        assert "token_type_ids" not in tokenizer.model_input_names
    else:
        assert [ids[i] for i in specials] == [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.sep_token_id]
    if name == twins.OPT:  # one id is BOS, EOS, unknown token and pair separator
        assert tokenizer.bos_token_id == tokenizer.eos_token_id == tokenizer.unk_token_id == 2
        assert tokenizer.pad_token_id == 1


# --------------------------------------------------------------------------- losses and their gradients


@pytest.mark.parametrize("loss,params", LOSS_CASES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(str(x) for x in v.values()))
def test_every_loss_gives_a_finite_loss_and_finite_gradients_to_every_parameter(name, loss, params):
    model, tokenizer = load(name)
    value, logits, logs = training.LOSSES[loss](model.train(), pair_batch(tokenizer), params)
    value.backward()
    assert torch.isfinite(value) and logits.shape == (4, 3) and all(torch.isfinite(v) for v in logs.values())
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert model.head[1].weight.grad.abs().sum() > 0 and first_layer_weight(model).grad.abs().sum() > 0


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_second_order_penalties_reach_the_deep_parameters(name, attention):
    """The gradient-saliency entropy and the differentiable IG variance are functions of input gradients: their
    own gradient (a double backward, through the MATH SDPA kernel or eager attention) reaches a first-layer
    weight; the detached IG variance reaches only the word embeddings."""
    model, tokenizer = load(name, attn_implementation=attention)
    assert model.backbone.config._attn_implementation == attention
    batch, deep = pair_batch(tokenizer), first_layer_weight(model)
    model.train()
    penalties = {"gradient": losses.topk_entropy(losses.gradient_s(model, batch)[1], 5).mean(),
                 "mask": losses.topk_entropy(losses.mask_s(model, batch)[1], 5).mean(),
                 "ig": ig_variance.penalty(model, batch, {"variant": "differentiable", "n_steps": 3})}
    for which, penalty in penalties.items():
        (grad,) = torch.autograd.grad(penalty, deep)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, which
    detached = ig_variance.penalty(model, batch, {"variant": "detached", "n_steps": 3})
    grads = torch.autograd.grad(detached, [model.embeddings.weight, deep], allow_unused=True)
    assert grads[0].abs().sum() > 0 and (grads[1] is None or not grads[1].any())
    s = GradientSaliency(model).attribute(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                          differentiable=True)
    torch.testing.assert_close(s.sum(-1), torch.ones(4))
    assert s.requires_grad and not s[~batch["attention_mask"].bool()].any()


# --------------------------------------------------------------------------- the attack


def test_decoders_refuse_the_mask_attack_unless_a_substitute_is_named(decoder):
    model, tokenizer = load(decoder)
    with pytest.raises(ValueError, match="has no mask token"):
        adversarial.attack_pairs(model, tokenizer, PREMISES, HYPOTHESES, LABELS)
    boundary = "unk" if decoder == twins.OPT else "pad"  # OPT: unk is '</s>'; Llama: pad is its EOS '</s>'
    with pytest.raises(ValueError, match=rf"the {boundary} token of tokenizer .* is '</s>' \(id 2\), the same id"):
        adversarial.mask_substitute(tokenizer, boundary)
    assert adversarial.mask_substitute(tokenizer, "</s>") == 2  # named itself, it is taken


def test_the_attack_replaces_exactly_one_hypothesis_token_and_never_a_special_one(name):
    model, tokenizer = load(name)
    model.eval()
    substitute = adversarial.mask_substitute(tokenizer, SUBSTITUTE[name])
    out = adversarial.attack_pairs(model, tokenizer, PREMISES, HYPOTHESES, LABELS, batch_size=3,
                                   substitute=SUBSTITUTE[name])
    clean = tokenizer(PREMISES, HYPOTHESES, return_special_tokens_mask=True)
    for i, row in out.iterrows():
        before, after = clean["input_ids"][i], list(row["input_ids"])
        changed = [t for t, (a, b) in enumerate(zip(before, after)) if a != b]
        assert len(before) == len(after) and changed == [row["position"]] and after[row["position"]] == substitute
        assert clean.sequence_ids(i)[row["position"]] == 1 and not clean["special_tokens_mask"][i][row["position"]]
        assert row["token_id"] == before[row["position"]] not in tokenizer.all_special_ids
        span = row["original"][row["start"]:row["end"]]  # the piece's own characters, without a leading space
        assert span.strip() == span and piece(tokenizer, row["token"]) == span.lower()


def test_a_decoders_attack_picks_the_pooled_last_token_because_of_last_token_pooling(decoder):
    """Not hidden: with 'last' pooling the last hypothesis token is the pooled position, its embedding reaches
    the pooled state through the residual stream alone, and its gradient dwarfs the others', so the attack
    takes it in every pair (the issue's 24/24). The same weights pooled by 'mean' spread the choice."""
    rows = pd.DataFrame({"premise": PREMISES * 3, "hypothesis": HYPOTHESES + SENTENCES + HYPOTHESES[::-1],
                         "label": LABELS * 3})
    picks = {}
    for pooling in ("last", "mean"):
        model, tokenizer = load(decoder, pooling=pooling)
        out = adversarial.attack_pairs(model.eval(), tokenizer, rows["premise"].tolist(), rows["hypothesis"].tolist(),
                                       rows["label"].tolist(), substitute=SUBSTITUTE[decoder])
        picks[pooling] = float(np.mean([p == len(ids) - 1 for p, ids in zip(out["position"], out["input_ids"])]))
    assert picks["last"] == 1.0 and picks["mean"] < 0.5, picks


# --------------------------------------------------------------------------- artifact influence


def test_influence_aligns_every_word_of_the_ranked_text(name):
    """Failed before on OPT and Llama: their tokens' offsets include the space before the word, so the
    alignment by a token's start left every word after the first out of the ranking."""
    model, tokenizer = load(name)
    table = influence.word_saliency(model, tokenizer, HYPOTHESES, LABELS, {"music", "sleeping"}, pairs=PREMISES, k=2)
    assert table.groupby("example")["n_words"].first().tolist() == [len(word_spans(h)) for h in HYPOTHESES]
    assert table["artifact"].sum() == 2 and table.groupby("example")["rank"].max().tolist() == table.groupby(
        "example")["n_words"].first().tolist()
    model, tokenizer = load(name, num_labels=2)
    single = influence.word_saliency(model, tokenizer, SENTENCES, [1, 0, 0, 1], {"dull"}, k=2)
    assert single.groupby("example")["n_words"].first().tolist() == [len(word_spans(s)) for s in SENTENCES]
    table = influence.sensitivity(model, tokenizer, SENTENCES, [1, 0, 0, 1], {"dull"}, k=2)
    assert len(table) == len(influence.COMBINATIONS) and table["entropy_topk"].between(0, math.log(2) + 1e-9).all()
    assert table.loc[table["specials"] == "included", "special_share"].notna().all()


# --------------------------------------------------------------------------- training, scoring, chapters


@pytest.fixture(scope="module")
def trained(twins_dir, tmp_path_factory):
    """One short SST-2 and one SNLI run per twin, in a temporary runs root: (twin, dataset) → run folder."""
    root = tmp_path_factory.mktemp("runs")
    return {(name, dataset): training.train(
        training.TrainConfig(model=name, dataset=dataset, max_train_examples=16, max_eval_examples=8, epochs=1,
                             batch_size=4, max_length=32, lr=1e-3, log_every=1), runs_root=root)
        for name in twins.NAMES for dataset in training.TRAIN_DATASETS}


@needs_data
@pytest.mark.parametrize("dataset", training.TRAIN_DATASETS)
def test_a_short_training_run_finishes_and_loads_back(name, dataset, trained):
    folder = trained[name, dataset]
    model, tokenizer, config = training.load_run(folder)
    assert config.model == name and type(model.backbone).__name__ == BACKBONES[name]
    assert tokenizer.pad_token_id == model.backbone.config.pad_token_id is not None
    recorded = np.load(folder / "val_probs.npy")
    ds = training.validation_set(config)
    again = inference.predict(model, tokenizer, ds, data.spec(dataset).text_fields, config.max_length, 4)
    np.testing.assert_allclose(again, recorded, atol=1e-5)


@needs_data
@pytest.mark.parametrize("dataset", training.TRAIN_DATASETS)
def test_advglue_scores_every_set_of_a_twin_run(name, dataset, trained):
    results = advglue.evaluate_run(trained[name, dataset])
    assert [r["dataset"] for r in results] == list(advglue.sets_for(dataset))
    assert all(0 <= r["accuracy"] <= 1 and r["n"] > 100 for r in results)
    assert advglue.evaluated(trained[name, dataset], dataset)


# --------------------------------------------------------------------------- chapter pipelines, reduced smoke

TINY = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "max_length": 32, "max_train_examples": 16, "max_eval_examples": 8}
LOADED: dict[tuple[str, str], object] = {}  # the offline splits, read once per session by the chapter tests
LOAD = data.load


def _load_once(name: str, split: str, **kwargs):
    """`data.load`, each (dataset, split) read once per session (datasets are immutable; other arguments pass)."""
    if kwargs:
        return LOAD(name, split, **kwargs)
    if (name, split) not in LOADED:
        LOADED[name, split] = LOAD(name, split)
    return LOADED[name, split]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throw-away project root (results land in tmp) reading the offline data, and smoke settings cut to
    `TINY` runs; chapter 1's artifacts (the same for every backbone) are mined once per session."""
    found = next((p for p in data_search_paths() if (p / "sst2" / "train.parquet").is_file()), None)
    if found is None:
        pytest.skip("offline datasets not found (see data/README.md)")
    root = tmp_path / "project"
    (root / "src" / "compnb").mkdir(parents=True)
    (root / "_config.yml").write_text("title: test\n")
    monkeypatch.chdir(root)
    monkeypatch.setenv("COMPNB_DATA_DIR", str(found))
    monkeypatch.setattr(baseline, "artifact_words", _artifact_words)
    monkeypatch.setattr(data, "load", _load_once)
    smoke = {"02-baseline-finetune": {"seeds": (0,), **TINY},
             "03-modified-loss": {"seeds": (0,), "lams": (0.5,), "forms": ("subtract",), **TINY},
             "04-adversarial-eval": {"seeds": (0,), **TINY, "max_pool": 24, "heldout_fraction": 0.5, "per_class": 2},
             "05-ig-variance": {"seeds": (0,), **TINY, "patience": 1, "lam": 0.1, "alpha": 10.0, "n_steps": 2,
                                "method": "riemann_right"}}
    for chapter, values in smoke.items():
        monkeypatch.setitem(profiles.CHAPTER_SETTINGS[chapter], "smoke", values)
    return root


@functools.cache
def _artifact_words(dataset: str) -> set[str]:
    return ARTIFACT_WORDS(dataset)


ARTIFACT_WORDS = baseline.artifact_words


def _inside(folder, root) -> bool:
    return Path(folder).resolve().is_relative_to(Path(root).resolve())


def test_chapter_2_baselines_train_score_and_analyse(name, project):
    records = baseline.run_all("smoke", model=name)
    assert [r["config"].dataset for r in records] == ["sst2", "snli"] and all(_inside(r["run_dir"], project)
                                                                            for r in records)
    for r in records:
        assert advglue.evaluated(r["run_dir"], r["config"].dataset) and r["config"].model == name
        assert r["analysis"]["summary"]["dataset"]["slots"] > 0 and len(r["analysis"]["sensitivity"]) == 4


def test_chapter_3_competency_sweep_runs_every_method(name, project):
    records = competency.run_all("smoke", model=name, datasets=("sst2",))  # pairs: chapters 2, 4 and 5
    losses_run = sorted((r["config"].loss, r["config"].loss_kwargs.get("method", "")) for r in records)
    assert losses_run == [("ce", ""), ("competency", "gradient"), ("competency", "mask")]
    for r in records:
        entropy = r["measures"]["entropy_after"]
        assert all(math.isfinite(entropy[m]["H_topk"]) for m in losses.METHODS)
        assert r["measures"]["adversarial"]["dataset"] == "adv_sst2"


def test_chapter_4_attack_retrain_and_score(name, project):
    if name in twins.DECODERS:
        with pytest.raises(ValueError, match="has no mask token"):  # refused before anything is trained
            adversarial_eval.run_all("smoke", model=name)
        assert not (project / "results" / "smoke" / "runs").exists()
    records = adversarial_eval.run_all("smoke", model=name, substitute=SUBSTITUTE[name])
    assert sorted(r["kind"] for r in records) == sorted(adversarial_eval.KINDS)
    attacked = adversarial_eval.read_attacked("smoke", 0)
    assert adversarial_eval.read_meta(adversarial_eval.attacked_path("smoke", 0))["substitute"] == SUBSTITUTE[name]
    substitute = adversarial.mask_substitute(models.load_tokenizer(name), SUBSTITUTE[name])
    assert all(ids[p] == substitute for ids, p in zip(attacked["input_ids"], attacked["position"]))
    assert all(np.isfinite(p).all() for r in records for p in r["probs"].values())


def test_chapter_5_ig_variance_runs_and_measures_every_variant(name, project):
    records = ig_variance_eval.run_all("smoke", model=name)
    assert sorted(r["variant"] for r in records) == sorted(ig_variance_eval.VARIANTS)
    for r in records:
        assert np.isfinite(r["ig"]["variance"]).all() and np.isfinite(r["ig"]["gap"]).all()
        assert r["probs"].shape == (TINY["max_eval_examples"], 3)
