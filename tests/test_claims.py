"""The claims ledger: verdict rules on crafted result files, and a chapter without results marked as not run."""

import pandas as pd
import pytest

from compnb import claims


def _shares(folder, ours):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"dataset": "sst2", "examples": 100, "word types tested": 50, "share (ours)": ours}]).to_csv(
        folder / "shares.csv", index=False)


@pytest.mark.parametrize("ours, verdict", [(0.065, "reproduced"), (0.053, "reproduced"), (0.051, "not reproduced"),
                                           (0.081, "reproduced"), (0.082, "not reproduced")])
def test_an_artifact_share_is_reproduced_within_twenty_percent(tmp_path, ours, verdict):
    _shares(tmp_path, ours)
    assert claims._share("sst2", 0.065, True)(tmp_path).verdict == verdict


def _comparison(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{"dataset": "snli", "config": c, "Δ acc": d, "Δ acc 95% CI": "[.]", "p (acc, Holm)": p}
                          for c, d, p in rows])
    frame.to_csv(folder / "seed_comparison.csv", index=False)


def test_a_loss_improves_only_with_a_positive_holm_significant_difference(tmp_path):
    measure = claims._competency_gain("snli", "acc")
    _comparison(tmp_path, [("baseline", 0.0, None), ("a", 0.02, 0.2), ("b", -0.03, 0.01)])
    assert measure(tmp_path).verdict == "not reproduced"  # the significant one is worse
    _comparison(tmp_path, [("baseline", 0.0, None), ("a", 0.02, 0.04), ("b", -0.03, 0.01)])
    assert measure(tmp_path).verdict == "reproduced"
    _comparison(tmp_path, [("baseline", 0.0, None), ("a", 0.02, None)])
    assert "untestable" in measure(tmp_path).value


def test_chapters_without_results_are_not_run(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "results_dir", lambda profile, chapter: tmp_path / chapter)
    _shares(tmp_path / "01-artifact-mining", 0.065)
    table = claims.ledger("smoke")
    assert len(table) == len(claims.CLAIMS)
    first = table[table["chapter"] == "01-artifact-mining"]
    assert list(first["verdict"]) == ["reproduced", "not run"]  # SST-2's share; no SNLI row in the file
    rest = table[table["chapter"] != "01-artifact-mining"]
    assert set(rest["verdict"]) == {"not run"}
    assert set(claims.verdict_counts(table).columns) <= {"paper", *claims.VERDICTS}
