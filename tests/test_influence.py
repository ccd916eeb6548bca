"""The artifact-influence analysis: word scores sum their sub-word tokens' gradient norms, only the ranked
text's words are ranked, and the dataset-level statistics match a hand computation and scipy; the unit
sensitivity tables (words or tokens, special tokens left out or ranked) agree with the word analysis."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from transformers import AutoTokenizer, BertConfig

from compnb import influence, models
from compnb.saliency import GradientSaliency


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    return models.SequenceClassifier.from_config(config, num_labels=3).eval()


def test_word_scores_sum_subword_norms_in_reading_order(model, tokenizer):
    text = "Unbelievably, the filmmakers' dog isn't here."
    table = influence.word_saliency(model, tokenizer, [text], [1], {"dog"}, k=2)
    enc = tokenizer([text], return_offsets_mapping=True, return_tensors="pt")
    norms = GradientSaliency(model).attribute(enc["input_ids"], enc["attention_mask"], torch.tensor([1]),
                                              normalize=False)[0]
    words = enc.word_ids(0)
    ordered = table.sort_values("position")
    assert ordered["word"].tolist() == ["unbelievably", "the", "filmmakers", "dog", "isn't", "here"]
    # "unbelievably" is several sub-word tokens: its score is their summed norms (word id 0 in the tokenizer)
    first = sum(float(norms[t]) for t, w in enumerate(words) if w == 0)
    assert sum(w == 0 for w in words) > 1
    assert ordered["score"].iloc[0] == pytest.approx(first, rel=1e-5)
    assert table["rank"].tolist() == list(range(1, 7)) and table["score"].is_monotonic_decreasing
    assert table["in_topk"].sum() == 2 and table.loc[table["word"] == "dog", "artifact"].item()


def test_pairs_rank_only_hypothesis_words(model, tokenizer):
    table = influence.word_saliency(model, tokenizer, ["a cat sleeps"], [2], set(), pairs=["the dog runs fast"])
    assert sorted(table["word"]) == ["a", "cat", "sleeps"] and table["n_words"].tolist() == [3, 3, 3]


def test_dataset_level_matches_hand_computation_and_scipy():
    rows = []
    # sentence 0: 6 words, 2 artifacts, both in the top-2; sentence 1: 2 words (< k), 1 artifact, not ranked first
    for rank, artifact in enumerate([True, True, False, False, False, False], start=1):
        rows.append((0, rank - 1, "w", 1.0 / rank, rank, 6, rank <= 2, artifact))
    for rank, artifact in enumerate([False, True], start=1):
        rows.append((1, rank - 1, "w", 1.0 / rank, rank, 2, rank <= 2, artifact))
    table = pd.DataFrame(rows, columns=["example", "position", "word", "score", "rank", "n_words", "in_topk",
                                        "artifact"])
    result = influence.dataset_level(table, k=2)
    expected = 2 * 2 / 6 + 2 * 1 / 2  # min(k, n)·a/n per sentence
    assert result["slots"] == 4 and result["observed"] == 3 and result["expected"] == pytest.approx(expected)
    assert result["p_value"] == pytest.approx(stats.binomtest(3, 4, expected / 4, alternative="greater").pvalue)
    assert result["observed_low"] <= 3 <= result["observed_high"]
    sentence = influence.sentence_level(table, k=2)
    assert sentence["sentences"] == 1 and sentence["p_topk_given_artifact"] == 1.0
    assert sentence["p_topk"] == pytest.approx(2 / 6)


def test_k_below_one_is_a_clear_error(model, tokenizer):
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        influence.word_saliency(model, tokenizer, ["a b"], [0], set(), k=0)


TEXTS = ["Unbelievably, the filmmakers' dog isn't here at all.", "a cat sleeps on the warm mat today",
         "Nobody outperformed the extraordinary dog", "two dogs run"]
PREMISES = ["the dog runs fast", "a man plays guitar on stage", "a woman reads", "children play outside"]
ARTIFACTS = {"dog", "nobody", "cat", "sleeps"}


@pytest.mark.parametrize("pairs", [None, PREMISES])
def test_word_excluded_row_is_dataset_level_of_word_saliency(model, tokenizer, pairs):
    labels = [0, 1, 2, 1]
    table = influence.word_saliency(model, tokenizer, TEXTS, labels, ARTIFACTS, k=3, pairs=pairs, batch_size=3)
    sens = influence.sensitivity(model, tokenizer, TEXTS, labels, ARTIFACTS, k=3, pairs=pairs, batch_size=3)
    assert [tuple(r) for r in sens[["unit", "specials"]].to_numpy()] == list(influence.COMBINATIONS)
    row = sens.set_index(["unit", "specials"]).loc[("word", "excluded")]
    assert {key: row[key] for key in influence.dataset_level(table, 3)} == influence.dataset_level(table, 3)
    assert (sens["sentences"] == 4).all() and row["special_share"] == 0


@pytest.mark.parametrize("pairs", [None, PREMISES])
def test_one_unit_pass_gives_the_word_table_and_the_sensitivity_table(model, tokenizer, pairs):
    labels = [0, 1, 2, 1]
    tables = influence.unit_saliency(model, tokenizer, TEXTS, labels, ARTIFACTS, k=3, pairs=pairs)
    pd.testing.assert_frame_equal(influence.word_saliency_of(tables),
                                  influence.word_saliency(model, tokenizer, TEXTS, labels, ARTIFACTS, k=3, pairs=pairs))
    pd.testing.assert_frame_equal(influence.sensitivity_of(tables, 3),
                                  influence.sensitivity(model, tokenizer, TEXTS, labels, ARTIFACTS, k=3, pairs=pairs))


def test_excluded_specials_never_reach_the_token_topk(model, tokenizer):
    tables = influence.unit_saliency(model, tokenizer, TEXTS, [0, 1, 2, 1], ARTIFACTS, k=5, pairs=PREMISES)
    tokens = tables["token", "excluded"]
    assert not tokens["special"].any() and (tokens["word_index"] >= 0).all()
    assert not set(tokens["unit"]) & set(tokenizer.all_special_tokens)
    included = tables["token", "included"]  # [CLS] and two [SEP] per pair
    assert included.groupby("example")["special"].sum().tolist() == [3, 3, 3, 3]
    assert set(included.loc[included["special"], "unit"]) == {"[CLS]", "[SEP]"}
    assert not included.loc[included["special"], "artifact"].any()


class _LoudestFirstToken:
    """A stand-in for GradientSaliency whose raw norm is 10 on each row's first token ([CLS]), else 1/t."""

    def __init__(self, model):
        pass

    def attribute(self, input_ids, attention_mask, labels, *, normalize, token_type_ids=None):
        norms = 1 / torch.arange(1, input_ids.shape[1] + 1, dtype=torch.float32).expand(input_ids.shape).clone()
        norms[:, 0] = 10.0
        return norms * attention_mask


def test_a_special_token_with_the_largest_norm_tops_the_included_rankings(model, tokenizer, monkeypatch):
    monkeypatch.setattr(influence, "GradientSaliency", _LoudestFirstToken)
    tables = influence.unit_saliency(model, tokenizer, TEXTS[:2], [0, 1], ARTIFACTS, k=5)
    for unit in influence.UNITS:
        first = tables[unit, "included"].groupby("example").head(1)
        assert first["unit"].tolist() == ["[CLS]", "[CLS]"] and first["in_topk"].all() and first["special"].all()
        assert "[CLS]" not in set(tables[unit, "excluded"]["unit"])
    sens = influence.sensitivity(model, tokenizer, TEXTS[:2], [0, 1], ARTIFACTS, k=5).set_index(["unit", "specials"])
    # [CLS] takes one of the 5 slots; [SEP], the last token, scores below every word
    assert sens.loc[("token", "included"), "special_share"] == sens.loc[("word", "included"), "special_share"] == 0.2
    assert sens.loc[("token", "excluded"), "special_share"] == sens.loc[("word", "excluded"), "special_share"] == 0


def test_a_split_word_scores_the_sum_of_its_pieces(model, tokenizer):
    tables = influence.unit_saliency(model, tokenizer, TEXTS, [0, 1, 2, 1], ARTIFACTS, pairs=PREMISES)
    words = tables["word", "excluded"].set_index(["example", "word_index"])
    pieces = tables["token", "excluded"].groupby(["example", "word_index"])
    summed = pieces["score"].sum()
    assert (pieces.size() > 1).sum() >= 3  # "unbelievably", "outperformed", "extraordinary", ...
    assert np.allclose(summed.loc[words.index], words["score"], rtol=1e-12)
    in_order = tables["token", "excluded"].sort_values(["example", "token"]).groupby(["example", "word_index"])
    spelled = in_order["unit"].agg(lambda p: "".join(t.removeprefix("##") for t in p))
    assert (spelled.loc[words.index] == words["unit"]).all()
    # a token is an artifact exactly when its word is
    tokens = tables["token", "excluded"].set_index(["example", "word_index"])
    assert (tokens["artifact"] == words.loc[tokens.index, "artifact"]).all()


def test_topk_entropies_lie_between_zero_and_log_k(model, tokenizer):
    sens = influence.sensitivity(model, tokenizer, TEXTS + ["dog"], [0, 1, 2, 1, 0], ARTIFACTS, k=4)
    assert ((sens["entropy_topk"] >= 0) & (sens["entropy_topk"] <= math.log(4) + 1e-12)).all()
    assert (sens["entropy_max"] == math.log(4)).all()


def test_unit_summary_matches_a_hand_computation():
    # example 0: units scored (log 3, 0, 0), the first a special token; example 1: a single artifact unit
    table = pd.DataFrame([(0, -1, 0, "[CLS]", math.log(3), 1, 3, True, False, True),
                          (0, 0, 1, "a", 0.0, 2, 3, True, True, False),
                          (0, 1, 2, "b", 0.0, 3, 3, False, False, False),
                          (1, 0, 1, "c", 0.5, 1, 1, True, True, False)], columns=influence.UNIT_COLUMNS)
    summary = influence.unit_summary(table, k=2)
    # top-2 of S renormalised: (3/4, 1/4) in example 0, (1,) in example 1
    h0 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert summary["entropy_topk"] == pytest.approx(h0 / 2) and summary["entropy_max"] == math.log(2)
    assert summary["special_share"] == pytest.approx((1 / 2 + 0) / 2)
    assert (summary["slots"], summary["observed"]) == (3, 2)
    assert summary["expected"] == pytest.approx(2 * 1 / 3 + 1)  # the special dilutes example 0's share


def test_topk_per_sentence_counts_each_sentences_slots_and_artifacts(model, tokenizer):
    texts = ["the dog runs in the park today", "a cat", "", "dog dog bites the man in the yard"]
    table = influence.word_saliency(model, tokenizer, texts, [0, 1, 2, 0], {"dog", "park"}, k=3)
    per = influence.topk_per_sentence(table)
    assert list(per.columns) == ["sentence", "slots", "artifacts_in_topk"]
    assert per["sentence"].tolist() == [0, 1, 3]  # validation row indices; the empty text has no ranked word
    words = table.groupby("example")["n_words"].first()
    assert per["slots"].tolist() == [min(3, words[i]) for i in (0, 1, 3)]
    top = table[table["in_topk"]]
    for _, row in per.iterrows():  # by hand: the artifact words among each sentence's top-3
        mine = top[top["example"] == row["sentence"]]
        assert row["artifacts_in_topk"] == sum(w in {"dog", "park"} for w in mine["word"])
    assert per.loc[per["sentence"] == 1, "artifacts_in_topk"].item() == 0
    level = influence.dataset_level(table, k=3)
    assert (per["slots"].sum(), per["artifacts_in_topk"].sum()) == (level["slots"], level["observed"])


def test_topk_per_sentence_of_a_hand_table_and_of_nothing():
    table = pd.DataFrame({"example": [4, 4, 4, 9, 9], "in_topk": [True, True, False, True, True],
                          "artifact": [True, False, True, False, True]})
    per = influence.topk_per_sentence(table)
    assert per.to_dict("list") == {"sentence": [4, 9], "slots": [2, 2], "artifacts_in_topk": [1, 1]}
    assert list(influence.topk_per_sentence(table.iloc[:0]).columns) == ["sentence", "slots", "artifacts_in_topk"]
