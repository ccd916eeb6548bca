"""The gradient-guided attack and the adversarial-set bookkeeping: exactly one hypothesis id masked (never a special
or premise token, the arg-max of the gradient score), stored as ids that training and scoring take as they are;
a decoder's missing mask token refused; stale attacked sets, training sets and scores made again; premise-disjoint
splits; balanced draws; subsets; errors."""

import json
import random
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers import models as token_models
from transformers import AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerFast

from compnb import adversarial, batching, data, inference, models, run_cache, training
from compnb.chapters import adversarial_eval
from compnb.adversarial import GradientMaskAttack
from compnb.models import SequenceClassifier

PREMISES = ["A man is playing a guitar on the stage.", "Two dogs run through a snowy field.",
            "A woman is slicing onions in a kitchen.", "Children are not playing outside today."]
HYPOTHESES = ["A person plays music.", "The animals are sleeping.", "Someone cooks.", "Kids might be indoors."]
LABELS = [0, 2, 1, 1]
RECORDED: list[list[int]] = []  # unpadded input ids of every batch the recording loss sees


@training.register_loss("test_recording_ce")
def recording_ce(model, batch, params):
    """Cross-entropy that keeps each training row's ids as the loop feeds them."""
    RECORDED.extend(ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"]))
    return training.cross_entropy(model, batch, params)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))



def sandbox_encoding(tokenizer):
    """A padded batch whose first pair's hypothesis holds 'sandbox' = 'sand' '##box', and that pair's 'sand'."""
    enc = tokenizer(["A kid digs.", "A man is playing a guitar on the stage."], ["A sandbox is here.", "Music."],
                    padding=True, return_offsets_mapping=True, return_tensors="pt")
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    assert pieces[pieces.index("sand") + 1] == "##box"
    return enc, pieces.index("sand")


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    return SequenceClassifier.from_config(config, num_labels=3).double().eval()


def test_attack_masks_exactly_one_hypothesis_id_and_keeps_every_other(model, tokenizer):
    out = adversarial.attack_pairs(model, tokenizer, PREMISES, HYPOTHESES, LABELS, batch_size=3)
    assert len(out) == len(PREMISES) and (out["label"].tolist() == LABELS)
    assert set(out[data.TOKENIZER_COLUMN]) == {data.tokenizer_fingerprint(tokenizer)}
    for row in out.itertuples():
        before = tokenizer(row.premise, row.original)
        changed = [i for i, (a, b) in enumerate(zip(before["input_ids"], row.input_ids)) if a != b]
        assert len(row.input_ids) == len(before["input_ids"]) and changed == [row.position]
        assert row.input_ids[row.position] == tokenizer.mask_token_id
        assert list(row.token_type_ids) == before["token_type_ids"]
        assert before.sequence_ids()[row.position] == 1  # in the hypothesis
        assert row.token_id == before["input_ids"][row.position] not in tokenizer.all_special_ids
        assert tokenizer.convert_ids_to_tokens(row.token_id) == row.token
        assert row.original[row.start:row.end] == row.token.removeprefix("##") and "[MASK]" in row.hypothesis_display


@pytest.mark.parametrize("side", ["right", "left"])
def test_masking_a_non_final_piece_keeps_the_other_pieces_of_its_word(tokenizer, side):
    padded = AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE), padding_side=side)
    enc, sand = sandbox_encoding(padded)
    original = tokenizer("A kid digs.", "A sandbox is here.")["input_ids"]
    pad = len(enc["input_ids"][0]) - len(original) if side == "left" else 0
    assert enc["attention_mask"][0].sum() == len(original) < len(enc["input_ids"][0])  # the pair is padded
    row = adversarial.mask_one(padded, enc, 0, sand, tokenizer.mask_token_id)
    assert row["position"] == sand - pad and row["token"] == "sand" and (row["start"], row["end"]) == (2, 6)
    assert row["input_ids"] == original[:row["position"]] + [tokenizer.mask_token_id] + original[row["position"] + 1:]
    assert tokenizer.convert_ids_to_tokens(row["input_ids"][row["position"] + 1]) == "##box"  # kept as it was
    frame = pd.DataFrame([{"premise": "A kid digs.", "original": "A sandbox is here.", **row,
                           data.TOKENIZER_COLUMN: data.tokenizer_fingerprint(tokenizer)}])
    # the former text substitution, "A [MASK]box is here.", would have fed 'box', not '##box'
    assert adversarial.text_roundtrip_changes(tokenizer, frame, 128) == {"pairs": 1, "ids_differ": 1,
                                                                         "length_differs": 0}
    with pytest.raises(ValueError, match="is not a hypothesis token"):
        adversarial.mask_one(padded, enc, 0, pad + 1, tokenizer.mask_token_id)  # a premise token


def test_pretokenized_rows_are_encoded_batched_and_scored_as_stored(model, tokenizer, tmp_path):
    enc, sand = sandbox_encoding(tokenizer)
    rows = pd.DataFrame([{"label": 1, **adversarial.mask_one(tokenizer, enc, 0, sand, tokenizer.mask_token_id)},
                         {"label": 0, **adversarial.mask_one(tokenizer, enc, 1, len(enc["input_ids"][1]) - 3,
                                                             tokenizer.mask_token_id)}])
    rows[data.TOKENIZER_COLUMN] = data.tokenizer_fingerprint(tokenizer)
    rows.to_parquet(tmp_path / "rows.parquet")
    ds = data.from_parquet(tmp_path / "rows.parquet", "snli")
    assert ds.column_names == ["input_ids", "token_type_ids", "tokenizer", "label"]
    encoded = batching.encode(tokenizer, ds, ("premise", "hypothesis"), max_length=32)
    batch = batching.PadCollator(tokenizer.pad_token_id)([encoded[0], encoded[1]])
    longest = max(map(len, rows["input_ids"]))
    stored = [ids + [tokenizer.pad_token_id] * (longest - len(ids)) for ids in rows["input_ids"]]
    assert batch["input_ids"].tolist() == stored
    assert batch["attention_mask"].sum(1).tolist() == [len(ids) for ids in rows["input_ids"]]
    with torch.no_grad():
        direct = model(**training.model_inputs(batch)).softmax(-1).float().numpy()
    np.testing.assert_allclose(inference.predict(model, tokenizer, ds, ("premise", "hypothesis"), 32), direct,
                               rtol=1e-5)
    foreign = rows.assign(**{data.TOKENIZER_COLUMN: "vocab 50265 0123456789abcdef"})
    with pytest.raises(ValueError, match="made by tokenizer"):
        batching.encode(tokenizer, data.from_frame(foreign, "snli"), ("premise", "hypothesis"), 32)
    with pytest.raises(ValueError, match=r"used as stored, so each column needs the same 1\.\.8"):
        batching.encode(tokenizer, ds, ("premise", "hypothesis"), max_length=8)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['tokenizer'\]"):
        data.from_frame(rows.drop(columns=[data.TOKENIZER_COLUMN]), "snli")


def test_training_feeds_pretokenized_extra_rows_as_stored(tokenizer, tmp_path, monkeypatch):
    backbone, folder = tmp_path / "tiny-bert", tmp_path / "data" / "sst2"
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    folder.mkdir(parents=True)
    rng = random.Random(0)
    for split, n in (("train", 48), ("validation", 16)):
        pd.DataFrame({"sentence": [" ".join(rng.choices(["great", "awful", "film", "plot"], k=4)) for _ in range(n)],
                      "label": [i % 2 for i in range(n)]}).to_parquet(folder / f"{split}.parquet")
    monkeypatch.setenv("COMPNB_DATA_DIR", str(tmp_path / "data"))
    mask, cls, sep, box = tokenizer.convert_tokens_to_ids(["[MASK]", "[CLS]", "[SEP]", "##box"])
    extra = [[cls, tokenizer.convert_tokens_to_ids("great"), mask, box, sep], [cls, mask, box, box, sep]]
    pd.DataFrame({"input_ids": extra, "token_type_ids": [[0] * len(ids) for ids in extra], "label": [1, 0],
                  data.TOKENIZER_COLUMN: data.tokenizer_fingerprint(tokenizer)}).to_parquet(tmp_path / "extra.parquet")
    RECORDED.clear()
    cfg = training.TrainConfig(model=str(backbone), dataset="sst2", loss="test_recording_ce", epochs=1, batch_size=8,
                               max_length=16, profile="smoke", patience=None,
                               extra_train=str(tmp_path / "extra.parquet"))
    run = training.train(cfg, runs_root=tmp_path / "runs")
    assert json.loads((run / run_cache.FINISHED).read_text())["train_examples"] == 50 and len(RECORDED) == 50
    assert all(ids in RECORDED for ids in extra)  # '[MASK] ##box', which no text tokenizes to, reached the model


def test_scores_are_cached_per_set_content_and_made_again_when_a_set_changes(model, tokenizer, tmp_path, monkeypatch):
    loads = []
    monkeypatch.setattr(training, "load_run", lambda folder: loads.append(folder) or (
        model, tokenizer, SimpleNamespace(max_length=32, batch_size=4)))
    sets = {"clean": pd.DataFrame({"premise": PREMISES, "hypothesis": HYPOTHESES, "label": LABELS})}
    first = adversarial_eval.score(tmp_path, sets)["clean"]
    assert len(loads) == 1 and first.shape == (4, 3)
    adversarial_eval.score(tmp_path, sets)
    assert len(loads) == 1  # cached
    changed = {"clean": sets["clean"].assign(hypothesis=["Nobody is here."] * 4)}
    assert not np.allclose(adversarial_eval.score(tmp_path, changed)["clean"], first) and len(loads) == 2


def test_stale_or_foreign_attacked_sets_are_made_again_and_so_are_their_training_sets(model, tokenizer, project,
                                                                                      monkeypatch):
    pool = pd.DataFrame({"premise": PREMISES * 3, "hypothesis": HYPOTHESES * 3, "label": LABELS * 3})
    monkeypatch.setattr(adversarial_eval, "pool", lambda profile: (pool, np.arange(6), np.arange(6, 12)))
    loads = []
    monkeypatch.setattr(training, "load_run", lambda folder: loads.append(folder.name) or (
        model, tokenizer, SimpleNamespace(max_length=32, batch_size=4)))
    path = adversarial_eval.attacked_path("smoke", 0)
    old = pool.assign(original=pool["hypothesis"], hypothesis="[MASK]", token="x", start=0, end=1, half="build")
    old.to_parquet(path)  # a text-based set of format 1, as committed before token ids
    with pytest.raises(ValueError, match="not of format 2"):
        adversarial_eval.read_attacked("smoke", 0)
    base_a, base_b = project / "snli-ce-aaaaaaaaaaaa", project / "snli-ce-bbbbbbbbbbbb"
    adversarial_eval.attacked("smoke", 0, base_a)
    meta = adversarial_eval.read_meta(path)
    assert loads == [base_a.name] and meta["baseline_run"] == base_a.name and meta["format"] == 2
    assert "input_ids" in adversarial_eval.read_attacked("smoke", 0)
    first = adversarial_eval.training_sets("smoke", 0, path)
    made_from = adversarial_eval.read_meta(first["leaky"])["attacked_sha256"]
    adversarial_eval.attacked("smoke", 0, base_a)
    assert loads == [base_a.name]  # reused: made by this very baseline
    adversarial_eval.attacked("smoke", 0, base_b)  # another run (another backbone, say): attacked again
    assert loads == [base_a.name, base_b.name] and adversarial_eval.read_meta(path)["baseline_run"] == base_b.name
    again = adversarial_eval.training_sets("smoke", 0, path)
    assert first == again and adversarial_eval.read_meta(again["leaky"])["attacked_sha256"] == \
        adversarial_eval._sha256(path) != made_from


def test_scores_are_summed_absolute_gradients_and_the_choice_is_their_argmax(model, tokenizer):
    enc = tokenizer(PREMISES, HYPOTHESES, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    labels = torch.tensor(LABELS)
    scores = GradientMaskAttack(model).attribute(enc["input_ids"], enc["attention_mask"], labels,
                                                 token_type_ids=enc["token_type_ids"])
    for b in range(len(PREMISES)):  # each example on its own, unpadded, by plain autograd
        length = int(enc["attention_mask"][b].sum())
        embeds = model.embeddings(enc["input_ids"][b:b + 1, :length]).detach().requires_grad_()
        logits = model(inputs_embeds=embeds, token_type_ids=enc["token_type_ids"][b:b + 1, :length])
        F.cross_entropy(logits, labels[b:b + 1]).backward()
        torch.testing.assert_close(scores[b, :length], embeds.grad[0].abs().sum(-1).float())
        assert (scores[b, length:] == 0).all()
    candidates = torch.tensor([[sid == 1 for sid in enc.sequence_ids(i)] for i in range(len(PREMISES))])
    candidates &= ~enc["special_tokens_mask"].bool()
    chosen = GradientMaskAttack.choose(scores, candidates)
    for b in range(len(PREMISES)):
        allowed = candidates[b].nonzero().flatten()
        assert chosen[b] == allowed[scores[b, allowed].argmax()]


def test_choice_by_hand_and_rows_without_candidates_are_refused():
    scores = torch.tensor([[9.0, 1.0, 3.0, 2.0], [0.5, 4.0, 0.1, 7.0]])
    candidates = torch.tensor([[False, True, True, True], [True, True, True, False]])
    assert GradientMaskAttack.choose(scores, candidates).tolist() == [2, 1]
    with pytest.raises(ValueError, match=r"rows \[1\] have no hypothesis token"):
        GradientMaskAttack.choose(scores, torch.tensor([[True] * 4, [False] * 4]))


def test_a_tokenizer_without_a_mask_token_is_refused_unless_a_substitute_is_named(model, tokenizer):
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, "a": 3, "dog": 4}
    backend = Tokenizer(token_models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    decoder = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                      eos_token="</s>", name_or_path="tiny-decoder")
    assert adversarial.mask_substitute(tokenizer) == tokenizer.mask_token_id
    with pytest.raises(ValueError, match=r"\(tiny-decoder\) has no mask token; .* 'unk' \('<unk>'\), 'pad' "
                                         r"\('<pad>'\), or a token of its vocabulary"):
        adversarial.mask_substitute(decoder)
    with pytest.raises(ValueError, match="has no mask token"):
        adversarial.attack_pairs(model, decoder, ["a dog"], ["a dog"], [0])
    assert [adversarial.mask_substitute(decoder, s) for s in ("unk", "pad", "</s>")] == [0, 1, 2]
    with pytest.raises(ValueError, match="'cat' is not a token of tokenizer"):
        adversarial.mask_substitute(decoder, "cat")


@pytest.mark.parametrize("seed", range(5))
def test_premise_split_is_a_partition_that_never_shares_a_premise(seed):
    rng = np.random.default_rng(seed)
    premises = [f"premise {i}" for i in rng.integers(0, 40, size=300)]
    a, b = adversarial.premise_split(premises, 0.3, seed)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(300))
    assert not {premises[i] for i in a} & {premises[i] for i in b}
    distinct = len(set(premises))
    assert len({premises[i] for i in b}) == round(0.3 * distinct)
    with pytest.raises(ValueError, match="fraction must be in"):
        adversarial.premise_split(premises, 1.0, seed)


def test_balanced_draw_takes_up_to_per_class_and_reports_what_was_possible():
    labels = [0] * 50 + [1] * 8 + [2] * 30
    rows, counts = adversarial.balanced(labels, 20, 0)
    assert counts == {0: 20, 1: 8, 2: 20}
    assert len(rows) == len(set(rows.tolist())) == 48
    assert np.bincount(np.asarray(labels)[rows]).tolist() == [20, 8, 20]


def test_subsets_and_error_changes_by_hand():
    masks = adversarial.subsets(["a b c", " ".join(["w"] * 21), "x"],
                                ["nobody is here", "they might go", "it isn't raining"])
    assert masks["negation"].tolist() == [True, False, True]
    assert masks["ambiguity"].tolist() == [False, True, False]
    assert masks["long"].tolist() == [False, True, False]
    assert adversarial.error_changes([0, 1, 2, 0], [1, 1, 0, 0], [0, 2, 0, 0]) == \
        {"fixed": 1, "introduced": 1, "remaining": 1}


def test_leak_free_training_rows_never_share_a_premise_with_the_evaluation_half(project):
    rng = np.random.default_rng(0)
    premises = [f"premise {i}" for i in rng.integers(0, 30, size=200)]
    build, held = adversarial.premise_split(premises, 0.5, 0)
    half = np.where(np.isin(np.arange(200), held), "evaluation", "build")
    attacked = pd.DataFrame({"premise": premises, "original": [f"h {i} x" for i in range(200)],
                             "hypothesis_display": [f"h {i} [MASK]" for i in range(200)],
                             "label": rng.integers(0, 3, 200), "input_ids": [[101, i, 103, 102] for i in range(200)],
                             "token_type_ids": [[0, 1, 1, 1]] * 200, "tokenizer": "vocab 30522 f", "half": half})
    path = adversarial_eval.attacked_path("smoke", 0)
    attacked.to_parquet(path)
    sets = adversarial_eval.training_sets("smoke", 0, path)
    evaluation = set(attacked.loc[attacked["half"] == "evaluation", "premise"])
    retrained, leaky = (pd.read_parquet(sets[k]) for k in ("retrained", "leaky"))
    assert len(retrained) and not set(retrained["premise"]) & evaluation
    assert set(leaky["premise"]) & evaluation  # the paper's setting does leak
    assert np.bincount(retrained["label"]).max() <= 8  # the smoke profile's per_class
    assert list(retrained.columns) == list(adversarial_eval.TRAIN_COLUMNS)
