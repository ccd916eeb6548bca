"""Benchmark: vectorised artifact mining vs a plain Counter loop on all of SST-2 train, in one run.

    python benchmarks/bench_artifacts.py [--repeats 3]

Both count (word, label) pairs once per example with the same tokenizer and produce the same counts
(checked); the statistic afterwards is identical. Prints the best-of-N wall time of each and the ratio.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from compnb import artifacts, data


def counter_loop(texts: list[str], labels: list[int], num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """The same table as `artifacts.word_label_counts`, with dictionaries and Python loops."""
    counter: Counter = Counter()
    for text, label in zip(texts, labels):
        for word in set(artifacts.tokenize(text)):
            counter[(word, label)] += 1
    vocabulary = np.array(sorted({w for w, _ in counter}), dtype=object)
    index = {w: i for i, w in enumerate(vocabulary)}
    counts = np.zeros((len(vocabulary), num_labels), dtype=np.int64)
    for (word, label), n in counter.items():
        counts[index[word], label] = n
    return vocabulary, counts


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ds = data.load("sst2", "train")
    texts, labels = data.column(ds, "sentence"), data.column(ds, "label")
    t_vec, (vocab_v, counts_v) = best_time(lambda: artifacts.word_label_counts(texts, labels, 2), args.repeats)
    t_mine, _ = best_time(lambda: artifacts.mine(texts, labels, 2), args.repeats)
    t_loop, (vocab_l, counts_l) = best_time(lambda: counter_loop(texts, labels, 2), args.repeats)
    assert (vocab_v == vocab_l).all() and (counts_v == counts_l).all(), "the two counts disagree"
    print(f"SST-2 train: {len(texts):,} examples, {len(vocab_v):,} word types, best of {args.repeats}")
    print(f"  Counter loop (counts only)        {t_loop:7.3f} s")
    print(f"  sparse vectorised (counts only)   {t_vec:7.3f} s   speed-up ×{t_loop / t_vec:.2f}")
    print(f"  artifacts.mine (counts + z-test)  {t_mine:7.3f} s")


if __name__ == "__main__":
    main()
