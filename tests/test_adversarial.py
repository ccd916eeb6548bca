"""The gradient-guided attack and the adversarial-set bookkeeping: one hypothesis token masked, never a special
or premise token, the arg-max of the gradient score; premise-disjoint splits; balanced draws; subsets; errors."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, BertConfig

from compnb import adversarial, models
from compnb.adversarial import GradientMaskAttack
from compnb.models import SequenceClassifier

PREMISES = ["A man is playing a guitar on the stage.", "Two dogs run through a snowy field.",
            "A woman is slicing onions in a kitchen.", "Children are not playing outside today."]
HYPOTHESES = ["A person plays music.", "The animals are sleeping.", "Someone cooks.", "Kids might be indoors."]
LABELS = [0, 2, 1, 1]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    return SequenceClassifier.from_config(config, num_labels=3).double().eval()


def test_attack_masks_exactly_one_hypothesis_token_and_keeps_premise_and_specials(model, tokenizer):
    out = adversarial.attack_pairs(model, tokenizer, PREMISES, HYPOTHESES, LABELS, batch_size=3)
    assert len(out) == len(PREMISES) and (out["label"].tolist() == LABELS)
    for row in out.itertuples():
        before = tokenizer(row.premise, row.original)
        after = tokenizer(row.premise, row.hypothesis)
        assert len(before["input_ids"]) == len(after["input_ids"])
        changed = [i for i, (a, b) in enumerate(zip(before["input_ids"], after["input_ids"])) if a != b]
        assert len(changed) == 1
        position = changed[0]
        assert after["input_ids"][position] == tokenizer.mask_token_id
        assert before.sequence_ids()[position] == 1  # in the hypothesis
        assert before["input_ids"][position] not in tokenizer.all_special_ids
        assert row.original[row.start:row.end] == row.token and row.token


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


def test_mask_substitute_falls_back_to_the_unknown_token_then_refuses(tokenizer):
    assert adversarial.mask_substitute(tokenizer) == "[MASK]"
    assert adversarial.mask_substitute(SimpleNamespace(mask_token=None, unk_token="<unk>")) == "<unk>"
    with pytest.raises(ValueError, match="neither a mask nor an unknown token"):
        adversarial.mask_substitute(SimpleNamespace(mask_token=None, unk_token=None))


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


def test_leak_free_training_rows_never_share_a_premise_with_the_evaluation_half(tmp_path, monkeypatch):
    from compnb import adversarial_eval

    root = tmp_path / "project"
    (root / "src" / "compnb").mkdir(parents=True)
    (root / "_config.yml").write_text("title: test\n")
    monkeypatch.chdir(root)
    rng = np.random.default_rng(0)
    premises = [f"premise {i}" for i in rng.integers(0, 30, size=200)]
    build, held = adversarial.premise_split(premises, 0.5, 0)
    half = np.where(np.isin(np.arange(200), held), "evaluation", "build")
    attacked = pd.DataFrame({"premise": premises, "hypothesis": [f"h {i} [MASK]" for i in range(200)],
                             "original": [f"h {i} x" for i in range(200)], "label": rng.integers(0, 3, 200),
                             "half": half})
    path = adversarial_eval.adv_folder("smoke") / "attacked-s0.parquet"
    attacked.to_parquet(path)
    sets = adversarial_eval.training_sets("smoke", 0, path)
    evaluation = set(attacked.loc[attacked["half"] == "evaluation", "premise"])
    retrained, leaky = (pd.read_parquet(sets[k]) for k in ("retrained", "leaky"))
    assert len(retrained) and not set(retrained["premise"]) & evaluation
    assert set(leaky["premise"]) & evaluation  # the paper's setting does leak
    assert np.bincount(retrained["label"]).max() <= 8  # the smoke profile's per_class
