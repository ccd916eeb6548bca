"""The lab notes' readers: a missing result named in one sentence, and chapter 7's split batches summed up."""

import pandas as pd

from compnb.chapters import lab_notes
from compnb.paths import project_root


def test_a_missing_result_is_named_with_what_writes_it():
    path = project_root() / "results" / "smoke" / "07-reliability" / "faults.csv"
    text = lab_notes.absent(path, "`compnb chapter 07 --profile smoke`")
    assert text == ("*This part reads `results/smoke/07-reliability/faults.csv`, which is not there yet; "
                    "`compnb chapter 07 --profile smoke` writes it.*")


def test_the_split_batches_are_summed_up_per_kind_of_form():
    split = pd.DataFrame({"form or variant": ["inverse", "subtract", "detached integrated gradients"],
                          "split step: relative gradient difference": [1e-16, 2e-16, 3e-16],
                          "own means averaged (before): relative gradient difference": [1e-3, 4e-16, 0.8]})
    assert lab_notes.split_summary(split) == {"split": 3e-16, "own means, non-linear": 0.8,
                                              "own means, subtract": 4e-16}
