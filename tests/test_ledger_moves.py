"""The verdicts that moved between a frozen earlier ledger and today's: every kind of move, rows matched by claim
id, and freezing a committed ledger from git with its source."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from compnb.chapters import ledger_moves


@pytest.mark.parametrize("before, after, expected", [
    ("inconclusive", "reproduced", "decided"), ("inconclusive", "contradicted", "decided"),
    ("reproduced", "contradicted", "flipped"), ("contradicted", "reproduced", "flipped"),
    ("reproduced", "inconclusive", "undecided"), ("inconclusive", "inconclusive", "unchanged"),
    ("not run", "inconclusive", "other"), ("reproduced", "not run", "other"),
    ("not testable here", "not testable here", "unchanged"), (None, "reproduced", "new claim"),
    ("contradicted", None, "claim removed")])
def test_each_kind_of_move(before, after, expected):
    assert ledger_moves.move(before, after) == expected


def test_a_move_needs_a_verdict_on_one_side():
    with pytest.raises(ValueError, match="before or after"):
        ledger_moves.move(None, None)


def ledger(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame([{"id": i, "group": "claim", "claim": f"claim {i}", "verdict": v, "p adjusted": p,
                          "units for 80% power": "9 seeds", "scope": "seeds 1–3"} for i, v, p in rows])


def test_rows_are_matched_by_id_and_the_moved_ones_come_first():
    before = ledger([("a", "inconclusive", "0.3"), ("b", "reproduced", "0.01"), ("c", "inconclusive", "1"),
                     ("gone", "inconclusive", "1")])
    after = ledger([("c", "inconclusive", "0.9"), ("b", "contradicted", "0.02"), ("a", "reproduced", "0.004"),
                    ("fresh", "inconclusive", "")])
    table = ledger_moves.moves(before, after)
    assert list(table["id"]) == ["a", "b", "fresh", "gone", "c"]
    assert list(table["move"]) == ["decided", "flipped", "new claim", "claim removed", "unchanged"]
    row = table.set_index("id").loc["a"]
    assert (row["before"], row["after"], row["p adjusted before"], row["p adjusted after"]) == \
        ("inconclusive", "reproduced", "0.3", "0.004")
    assert pd.isna(table.set_index("id").loc["fresh", "p adjusted after"])  # an empty cell is no value
    assert ledger_moves.counts(table) == {"decided": 1, "flipped": 1, "undecided": 0, "other": 0, "new claim": 1,
                                          "claim removed": 1, "unchanged": 1}
    shown = ledger_moves.for_reading(table)
    assert list(shown["id"]) == ["a", "b", "fresh", "gone"]
    assert shown.loc[0, "verdict"] == "inconclusive → reproduced" and shown.loc[2, "p adjusted"] == "— → —"
    earlier = ledger_moves.Earlier("three-seeds", "1ec1dd4", "3 confirmation seeds", before)
    text = ledger_moves.sentence(table, earlier)
    assert text.startswith("Against the ledger of commit 1ec1dd4 (3 confirmation seeds; frozen as 'three-seeds')")
    assert "1 moved from inconclusive to a decision (1 reproduced)" in text and "1 flipped" in text
    assert "of the 5 rows, 1 moved" in text and "1 is new; 1 was removed; 1 kept its verdict." in text
    assert "back to inconclusive" not in text
    unmoved = ledger_moves.moves(before, before)
    assert ledger_moves.sentence(unmoved, earlier).endswith("no verdict moved: all 4 rows kept theirs.")


@pytest.mark.parametrize("broken, message", [
    (pd.DataFrame({"id": ["a", "a"], "verdict": ["reproduced", "inconclusive"]}), r"repeats claim id\(s\) \['a'\]"),
    (pd.DataFrame({"id": ["a"]}), r"lacks column\(s\) \['verdict'\]")])
def test_a_ledger_with_repeated_ids_or_without_verdicts_is_refused(broken, message):
    with pytest.raises(ValueError, match=message):
        ledger_moves.moves(broken, ledger([("a", "reproduced", "0.01")]))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A git repository that looks like the project, with one committed full-profile ledger; cwd inside it."""
    (tmp_path / "src" / "compnb").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text("title: test\n")
    path = tmp_path / "results" / "full" / ledger_moves.CHAPTER / "ledger.csv"
    path.parent.mkdir(parents=True)
    ledger([("a", "inconclusive", "0.3"), ("b", "reproduced", "0.01")]).to_csv(path, index=False)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "ledger"], check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_freezing_copies_the_committed_ledger_with_its_source_and_reads_back(project):
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    # today's ledger has moved on since the commit: the frozen one is the committed one
    today = project / "results" / "full" / ledger_moves.CHAPTER / "ledger.csv"
    ledger([("a", "reproduced", "0.001")]).to_csv(today, index=False)
    target = ledger_moves.freeze("HEAD", "three-seeds", "3 confirmation seeds")
    source = json.loads((target / "source.json").read_text())
    assert source["commit"] == commit[:12] and source["what"] == "3 confirmation seeds" and source["claims"] == 2
    (frozen,) = ledger_moves.earlier("full")
    assert (frozen.label, frozen.commit) == ("three-seeds", commit[:12])
    assert list(frozen.ledger["verdict"]) == ["inconclusive", "reproduced"]
    moved = ledger_moves.moves(frozen.ledger, pd.read_csv(today, dtype=str))
    assert ledger_moves.counts(moved)["decided"] == 1 and ledger_moves.counts(moved)["claim removed"] == 1


@pytest.mark.parametrize("commit, label, what, message", [
    ("HEAD", "a/b", "x", "one folder name"), ("HEAD", "ok", "  ", "--what must say"),
    ("no-such-commit", "ok", "x", "cannot read results/full/06-claims-ledger/ledger.csv at commit 'no-such-commit'")])
def test_bad_freeze_arguments_get_one_line_and_write_nothing(project, commit, label, what, message):
    with pytest.raises(ValueError, match=message):
        ledger_moves.freeze(commit, label, what)
    assert not (ledger_moves.folder("full")).exists() or not any(ledger_moves.folder("full").iterdir())


def test_a_label_is_frozen_once(project, capsys):
    assert ledger_moves.main(["--commit", "HEAD", "--label", "first", "--what", "x"]) == 0
    assert capsys.readouterr().out.startswith("froze the ledger of HEAD in ")
    with pytest.raises(SystemExit) as stop:
        ledger_moves.main(["--commit", "HEAD", "--label", "first", "--what", "x"])
    assert stop.value.code == 2
    assert "is already frozen; choose another --label" in capsys.readouterr().err
