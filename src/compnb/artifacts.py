"""Lexical artifacts: Gardner et al.'s (2021) competency test, as the first paper uses it.

For every word w and label y, over the n_w examples that contain w (one count per example),
p̂(y|w) = count(w, y) / n_w is compared with the uniform 1/c by a one-sided z-test,

    z = (p̂ − 1/c) / sqrt((1/c)(1 − 1/c) / n_w),    p = 1 − Φ(z),

and (w, y) is an artifact when p < α / m, Bonferroni over all m = (#words tested) × c tests.

Tokenization: lowercase, then words are maximal runs of letters or digits, with internal apostrophes
kept and one leading apostrophe allowed ("don't", "n't", "'s"); all other punctuation is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain

import numpy as np
import pandas as pd
from scipy import sparse, stats

from compnb import data

TOKEN_PATTERN = r"'?[^\W_]+(?:'[^\W_]+)*"
COLUMNS = ["word", "label", "n", "count", "p_hat", "z", "p_value", "artifact"]
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """The words of `text` as the test counts them (see module docstring); '' gives []."""
    return _TOKEN_RE.findall(text.lower())


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for every word of `text`, with character offsets into `text` itself.

    The pattern has no case-dependent parts, so the words equal `tokenize(text)`.
    """
    return [(m.group().lower(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def word_label_counts(texts: Sequence[str], labels: Sequence[int], num_labels: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(vocabulary (V,), counts (V, c)): counts[w, y] = #examples with label y that contain word w.

    Vectorised: words are interned with `pandas.factorize`, then a binary document-term matrix (n, V)
    times a one-hot label matrix (n, c), both sparse. The vocabulary is sorted.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(texts) != len(labels):
        raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(f"labels must lie in 0..{num_labels - 1}; found {labels.min()}..{labels.max()}")
    token_lists = list(map(_TOKEN_RE.findall, map(str.lower, texts)))  # = map(tokenize, texts), without a call each
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.fromiter(chain.from_iterable(token_lists), dtype=object, count=int(lengths.sum()))
    codes, vocabulary = pd.factorize(flat, sort=True)
    docs = np.repeat(np.arange(len(texts)), lengths)
    # COO → CSR sums repeated (doc, word) entries; setting every stored value to 1 counts a word once per example
    doc_term = sparse.csr_matrix((np.ones(len(codes), dtype=np.int64), (docs, codes)),
                                 shape=(len(texts), len(vocabulary)))
    doc_term.sum_duplicates()
    doc_term.data[:] = 1
    one_hot = sparse.csr_matrix((np.ones(len(labels), dtype=np.int64), (np.arange(len(labels)), labels)),
                                shape=(len(labels), num_labels))
    counts = np.asarray((doc_term.T @ one_hot).todense())
    return np.asarray(vocabulary, dtype=object), counts


def z_statistic(p_hat: np.ndarray, n: np.ndarray, num_labels: int) -> np.ndarray:
    """One-sample z of p̂ against p0 = 1/c with n trials (elementwise)."""
    p0 = 1.0 / num_labels
    return (p_hat - p0) / np.sqrt(p0 * (1.0 - p0) / n)


def rejection_boundary(n: np.ndarray, num_labels: int, alpha: float, num_tests: int) -> np.ndarray:
    """Smallest p̂ that is an artifact at word count n: 1/c + z* sqrt((1/c)(1−1/c)/n), z* = Φ⁻¹(1 − α/m)."""
    p0 = 1.0 / num_labels
    z_crit = stats.norm.isf(alpha / num_tests)
    return p0 + z_crit * np.sqrt(p0 * (1.0 - p0) / np.asarray(n, dtype=float))


def smallest_detectable_n(z_crit: float, num_labels: int) -> int:
    """Fewest examples a word needs before even p̂ = 1 clears the boundary: ⌈z*² / (c − 1)⌉."""
    return int(np.ceil(z_crit**2 / (num_labels - 1)))


def mine(texts: Sequence[str], labels: Sequence[int], num_labels: int, *, alpha: float = 0.01,
         min_count: int = 1, label_names: Sequence[str] | None = None) -> pd.DataFrame:
    """The artifact table, one row per (word, label) for words in at least `min_count` examples.

    Columns: word, label, n (examples containing the word), count (of those, with this label), p_hat,
    z, p_value (one-sided), artifact (p_value < alpha / m). `table.attrs` holds alpha, num_tests (m),
    num_labels, min_count, num_examples and z_crit.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if int(min_count) != min_count or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels!r}")
    names = list(label_names) if label_names is not None else list(range(num_labels))
    if len(names) != num_labels:
        raise ValueError(f"{len(names)} label names given for {num_labels} labels")
    vocabulary, counts = word_label_counts(texts, labels, num_labels)
    n = counts.sum(axis=1)
    keep = n >= min_count
    vocabulary, counts, n = vocabulary[keep], counts[keep], n[keep]
    num_tests = max(int(keep.sum()) * num_labels, 1)
    n_rep = np.repeat(n, num_labels)
    p_hat = counts.reshape(-1) / n_rep
    z = z_statistic(p_hat, n_rep, num_labels)
    p_value = stats.norm.sf(z)
    table = pd.DataFrame({
        "word": np.repeat(vocabulary, num_labels).astype(str),
        "label": np.tile(np.asarray(names, dtype=object), len(vocabulary)),
        "n": n_rep, "count": counts.reshape(-1), "p_hat": p_hat, "z": z, "p_value": p_value,
        "artifact": p_value < alpha / num_tests,
    }, columns=COLUMNS)
    table.attrs.update(alpha=alpha, num_tests=num_tests, num_labels=num_labels, min_count=int(min_count),
                       num_examples=len(texts), z_crit=float(stats.norm.isf(alpha / num_tests)))
    return table


def artifact_share(table: pd.DataFrame) -> float:
    """Share of the tested word types that are an artifact for at least one label."""
    words = table.groupby("word")["artifact"].any()
    return float(words.mean()) if len(words) else 0.0


def top_artifacts(table: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The k artifacts with the largest z for each label."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k!r}")
    found = table[table["artifact"]].sort_values(["label", "z"], ascending=[True, False])
    return found.groupby("label", sort=False).head(k).reset_index(drop=True)


def join_fields(columns: Sequence[Sequence[str]]) -> list[str]:
    """One text per example from one or more text columns (joined by a space, so counts stay per example)."""
    if not columns:
        raise ValueError("at least one text column is needed")
    return [" ".join(parts) for parts in zip(*columns, strict=True)]


def default_fields(dataset: str) -> tuple[str, ...]:
    """The text the test reads by default: the sentence (SST-2) or the hypothesis (NLI sets)."""
    return (data.spec(dataset).text_fields[-1],)


def mine_dataset(dataset: str, split: str = "train", fields: Sequence[str] | None = None, *,
                 alpha: float = 0.01, min_count: int = 1, max_examples: int | None = None,
                 seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Mine one split of a dataset: (artifact table, data source record). `fields` default: `default_fields`."""
    ds = data.subsample(data.load(dataset, split), max_examples, seed)
    fields = tuple(fields) if fields else default_fields(dataset)
    unknown = [f for f in fields if f not in data.spec(dataset).text_fields]
    if unknown:
        raise ValueError(f"unknown text field(s) {unknown} for {dataset!r}; allowed: {data.spec(dataset).text_fields}")
    text = join_fields([data.column(ds, f) for f in fields])
    names = ds.features["label"].names
    table = mine(text, data.column(ds, "label"), len(names), alpha=alpha, min_count=min_count, label_names=names)
    table.attrs.update(dataset=dataset, split=split, fields=list(fields))
    return table, {**data.source_of(ds), "rows_used": len(ds)}
