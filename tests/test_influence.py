"""The artifact-influence analysis: word scores sum their sub-word tokens' gradient norms, only the ranked
text's words are ranked, and the dataset-level statistics match a hand computation and scipy."""

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
