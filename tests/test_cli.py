import json

import pandas as pd
import pytest

from compnb import cli
from compnb.artifacts import COLUMNS


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    (folder / "sst2").mkdir(parents=True)
    pd.DataFrame({"idx": range(60), "sentence": ["awful plot"] * 30 + ["lovely cast"] * 30,
                  "label": [0] * 30 + [1] * 30}).to_parquet(folder / "sst2" / "train.parquet")
    monkeypatch.setenv("COMPNB_DATA_DIR", str(folder))
    return folder


def test_artifacts_command_writes_the_table_and_its_run_record(tiny_data, tmp_path, capsys):
    out = tmp_path / "out" / "artifacts.csv"
    assert cli.main(["artifacts", "--dataset", "sst2", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS
    assert set(table.loc[table.artifact, "word"]) == {"awful", "plot", "lovely", "cast"}
    record = json.loads(out.with_name("artifacts.csv.run.json").read_text())
    assert record["params"]["dataset"] == "sst2" and record["seed"] == 0
    assert record["data_sources"][0]["location"].startswith(str(tiny_data))
    assert record["packages"]["torch"] and "commit" in record["git"]
    assert "→" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--fields", "premise"], "unknown text field(s) ['premise'] for 'sst2'"),
    (["--alpha", "2"], "alpha must lie in (0, 1), got 2.0"),
    (["--split", "dev"], "unknown split 'dev'"),
])
def test_bad_input_fails_clearly_and_writes_nothing(tiny_data, tmp_path, capsys, argv, message):
    out = tmp_path / "bad.csv"
    assert cli.main(["artifacts", "--dataset", "sst2", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("bad.csv*"))


def test_unknown_dataset_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        cli.main(["artifacts", "--dataset", "imdb", "--out", "x.csv"])
    assert "invalid choice: 'imdb'" in capsys.readouterr().err


def test_unknown_chapter_and_profile(capsys):
    assert cli.main(["chapter", "99", "--profile", "smoke"]) == 2
    assert "unknown chapter '99'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["chapter", "01", "--profile", "huge"])
