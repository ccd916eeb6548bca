from collections import Counter

import numpy as np
import pytest
from scipy import stats

from compnb import artifacts

# A toy corpus with a hand-checked answer: "great" occurs in 4 examples, 3 positive.
TEXTS = ["A great film.", "great, GREAT acting!", "a great bore", "great fun", "dull", "a dull film", "", "..."]
LABELS = [1, 1, 0, 1, 0, 0, 1, 0]


def test_tokenization_edge_cases():
    assert artifacts.tokenize("") == []
    assert artifacts.tokenize("...!?") == []
    assert artifacts.tokenize("Great, GREAT great!") == ["great", "great", "great"]
    assert artifacts.tokenize("it 's not , is n't it ? don't") == ["it", "'s", "not", "is", "n't", "it", "don't"]
    assert artifacts.tokenize("snake_case café 42") == ["snake", "case", "café", "42"]


def test_counts_once_per_example_and_match_a_counter_loop():
    vocabulary, counts = artifacts.word_label_counts(TEXTS, LABELS, 2)
    reference = Counter((w, y) for t, y in zip(TEXTS, LABELS) for w in set(artifacts.tokenize(t)))
    for i, word in enumerate(vocabulary):
        for label in (0, 1):
            assert counts[i, label] == reference[(word, label)]
    great = list(vocabulary).index("great")
    assert counts[great].tolist() == [1, 3]  # "great, GREAT acting!" counts once
    assert list(vocabulary) == sorted(vocabulary)


def test_statistic_known_answer_against_scipy():
    table = artifacts.mine(TEXTS, LABELS, 2, alpha=0.05)
    row = table[(table.word == "great") & (table.label == 1)].iloc[0]
    assert (row.n, row["count"]) == (4, 3)
    assert row.p_hat == pytest.approx(0.75)
    assert row.z == pytest.approx((0.75 - 0.5) / np.sqrt(0.25 / 4))  # = 1.0
    # scipy's one-sample proportions z-test against p0 = 1/2, one-sided ("greater")
    expected_p = stats.norm.sf((3 - 4 * 0.5) / np.sqrt(4 * 0.5 * 0.5))
    assert row.p_value == pytest.approx(expected_p, rel=1e-12)
    assert table.attrs["num_tests"] == 2 * table.word.nunique()


def test_three_label_z_uses_one_third():
    table = artifacts.mine(["no", "no", "no", "yes"], [2, 2, 2, 0], 3)
    row = table[(table.word == "no") & (table.label == 2)].iloc[0]
    assert row.z == pytest.approx((1 - 1 / 3) / np.sqrt((1 / 3) * (2 / 3) / 3))


def test_bonferroni_boundary_decides_exactly():
    # 40 examples: "w" in 30 of label 1 and 10 of label 0; "x" everywhere, balanced.
    texts = ["w x"] * 30 + ["w x"] * 10 + ["x"] * 0
    labels = [1] * 30 + [0] * 10
    table = artifacts.mine(texts, labels, 2, alpha=0.01)
    m = table.attrs["num_tests"]
    assert m == 4
    row = table[(table.word == "w") & (table.label == 1)].iloc[0]
    assert row.artifact == (row.p_value < 0.01 / m)
    boundary = artifacts.rejection_boundary(row.n, 2, 0.01, m)
    assert (row.p_hat > boundary) == row.artifact
    # at the boundary p̂ the p-value equals alpha / m exactly
    z_at = artifacts.z_statistic(boundary, row.n, 2)
    assert stats.norm.sf(z_at) == pytest.approx(0.01 / m)
    # a stricter alpha flips it
    assert not artifacts.mine(texts, labels, 2, alpha=1e-9).query("word == 'w' and label == 1").artifact.item()


def test_min_count_and_detectable_n():
    table = artifacts.mine(TEXTS, LABELS, 2, min_count=2)
    assert table["n"].min() >= 2
    assert artifacts.smallest_detectable_n(4.954923, 2) == 25


def test_share_and_top_artifacts():
    texts = ["bad"] * 40 + ["good"] * 40 + ["the bad"] * 5
    labels = [0] * 40 + [1] * 40 + [0] * 5
    table = artifacts.mine(texts, labels, 2, label_names=["neg", "pos"])
    assert set(table.loc[table.artifact, "word"]) == {"bad", "good"}
    assert artifacts.artifact_share(table) == pytest.approx(2 / 3)
    top = artifacts.top_artifacts(table, 1)
    assert top.set_index("label")["word"].to_dict() == {"neg": "bad", "pos": "good"}


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 0.0}, r"alpha must lie in \(0, 1\), got 0.0"),
    ({"alpha": 1.5}, "got 1.5"),
    ({"min_count": 0}, "min_count must be an integer >= 1, got 0"),
    ({"label_names": ["a"]}, "1 label names given for 2 labels"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        artifacts.mine(TEXTS, LABELS, 2, **kwargs)


def test_bad_labels():
    with pytest.raises(ValueError, match="labels must lie in 0..1; found 0..2"):
        artifacts.word_label_counts(["a", "b"], [0, 2], 2)
    with pytest.raises(ValueError, match="got 2 texts but 1 labels"):
        artifacts.word_label_counts(["a", "b"], [0], 2)
    with pytest.raises(ValueError, match="k must be at least 1"):
        artifacts.top_artifacts(artifacts.mine(TEXTS, LABELS, 2), 0)


def test_empty_corpus_gives_an_empty_table():
    table = artifacts.mine(["", "?!"], [0, 1], 2)
    assert list(table.columns) == artifacts.COLUMNS and table.empty


@pytest.mark.parametrize("text", TEXTS + ["it 's n't Don't café 'quoted' 42x"])
def test_word_spans_agree_with_tokenize(text):
    spans = artifacts.word_spans(text)
    assert [w for w, _, _ in spans] == artifacts.tokenize(text)
    assert all(text[s:e].lower() == w for w, s, e in spans)
