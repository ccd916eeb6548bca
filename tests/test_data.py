import numpy as np
import pandas as pd
import pytest

from compnb import data
from conftest import needs_data


def _write(folder, name, frame):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)


def test_unknown_dataset_and_split_name_the_allowed_values():
    with pytest.raises(ValueError, match=r"unknown dataset 'imdb'.*adv_mnli.*sst2"):
        data.load("imdb", "train")
    with pytest.raises(ValueError, match=r"unknown split 'dev' for dataset 'sst2'.*train, validation, test"):
        data.load("sst2", "dev")


def test_missing_source_names_the_places_searched_and_how_to_provide(tmp_path):
    with pytest.raises(data.DataNotFoundError) as err:
        data.load("sst2", "train", search_paths=[tmp_path], hub=False)
    message = str(err.value)
    assert str(tmp_path / "sst2") in message
    assert "COMPNB_DATA_DIR" in message and "stanfordnlp/sst2" in message


def test_local_folder_resolution_order_drops_unlabelled_rows_and_records_source(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _write(second, "sst2/validation.parquet", pd.DataFrame({"idx": [0], "sentence": ["b"], "label": [1]}))
    _write(first, "sst2/validation.parquet",
           pd.DataFrame({"idx": [0, 1, 2], "sentence": ["x", "y", "z"], "label": [0, -1, 1]}))
    ds = data.load("sst2", "validation", search_paths=[first, second], hub=False)
    assert data.column(ds, "sentence") == ["x", "z"]
    assert ds.features["label"].names == ["negative", "positive"]
    source = data.source_of(ds)
    assert source["origin"] == "local" and source["location"].startswith(str(first))
    assert source["rows"] == 2 and not source["sample"]


def _snli_sample(folder):
    premises = [f"premise {i}" for i in range(40)]
    train = pd.DataFrame({"premise": np.repeat(premises, 3), "hypothesis": [f"h{i}" for i in range(120)],
                          "label": np.tile([0, 1, 2], 40)})
    train = pd.concat([train, train.iloc[[0]]])  # one duplicated pair
    test = pd.DataFrame({"premise": ["premise 0", "fresh premise"], "hypothesis": ["t0", "t1"], "label": [0, -1]})
    _write(folder, "snli/train_sample.parquet", train)
    _write(folder, "snli/test_sample.parquet", test)


def test_snli_sample_splits_are_disjoint_by_premise_seeded_and_leak_free(tmp_path):
    _snli_sample(tmp_path)
    splits = {s: data.load("snli", s, search_paths=[tmp_path], hub=False) for s in ("train", "validation", "test")}
    premises = {s: set(data.column(d, "premise")) for s, d in splits.items()}
    assert not premises["train"] & premises["validation"]
    assert not premises["train"] & premises["test"] and not premises["validation"] & premises["test"]
    assert len(splits["test"]) == 1  # the -1 label dropped
    assert len(splits["train"]) + len(splits["validation"]) == 117  # duplicate and test-premise pairs dropped
    assert len(premises["validation"]) == 4  # 10% of the 39 remaining premises, rounded
    again = data.load("snli", "validation", search_paths=[tmp_path], hub=False)
    other = data.load("snli", "validation", search_paths=[tmp_path], hub=False, seed=1)
    assert data.column(again, "hypothesis") == data.column(splits["validation"], "hypothesis")
    assert set(data.column(other, "premise")) != premises["validation"]
    assert data.source_of(splits["train"])["sample"]


def test_subsample_is_seeded_and_respects_selection(tmp_path):
    frame = pd.DataFrame({"idx": range(50), "sentence": [f"s{i}" for i in range(50)], "label": [0, 1] * 25})
    _write(tmp_path, "sst2/train.parquet", frame)
    ds = data.load("sst2", "train", search_paths=[tmp_path], hub=False)
    a, b = data.subsample(ds, 10, seed=3), data.subsample(ds, 10, seed=3)
    assert data.column(a, "sentence") == data.column(b, "sentence")
    assert len(data.column(a, "sentence")) == 10
    assert data.subsample(ds, None) is ds
    with pytest.raises(ValueError, match="at least 1"):
        data.subsample(ds, 0)


@needs_data
def test_offline_shared_data_matches_the_manifest():
    assert len(data.load("sst2", "train")) == 67349
    assert len(data.load("sst2", "validation")) == 872
    assert len(data.load("adv_sst2", "validation")) == 148
    assert len(data.load("adv_mnli", "validation")) == 121
    assert len(data.load("adv_mnli_mismatched", "validation")) == 162
    test = data.load("snli", "test")
    assert len(test) == 2000 and data.source_of(test)["sample"]


def test_from_parquet_checks_columns_and_labels(tmp_path):
    import pandas as pd

    from compnb.data import DataNotFoundError, from_parquet

    good = tmp_path / "good.parquet"
    pd.DataFrame({"premise": ["a b", "c d"], "hypothesis": ["e", "f"], "label": [0, 2], "idx": [1, 2]}).to_parquet(good)
    ds = from_parquet(good, "snli")
    assert ds.column_names == ["premise", "hypothesis", "label"] and ds.features["label"].names[2] == "contradiction"
    pd.DataFrame({"premise": ["a"], "label": [0]}).to_parquet(tmp_path / "short.parquet")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['hypothesis'\]"):
        from_parquet(tmp_path / "short.parquet", "snli")
    pd.DataFrame({"sentence": ["a"], "label": [3]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"column 'label' has values \[3\]; allowed for sst2: 0..1$"):
        from_parquet(tmp_path / "bad.parquet", "sst2")
    with pytest.raises(DataNotFoundError, match="no Parquet file"):
        from_parquet(tmp_path / "none.parquet", "sst2")


@pytest.mark.parametrize("frame, message", [
    ({"sentence": ["a", "b"]}, r"train.parquet: no column 'label'; sst2 needs columns sentence, label$"),
    ({"sentence": ["a", "b"], "label": [0, 7]}, r"column 'label' has values \[7\]; allowed for sst2: 0..1 and -1"),
    ({"sentence": ["a", "b"], "label": [0.0, 1.0]}, r"column 'label' holds float64, not integers"),
    ({"sentence": ["a", " "], "label": [0, 1]}, r"column 'sentence' is empty in 1 labelled row\(s\), the first at row 1"),
    ({"text": ["a"], "label": [0]}, r"no column 'sentence'")])
def test_bad_data_is_refused_where_it_enters_with_one_line(tmp_path, frame, message):
    import pandas as pd

    from compnb import data

    (tmp_path / "sst2").mkdir()
    pd.DataFrame(frame).to_parquet(tmp_path / "sst2" / "train.parquet")
    with pytest.raises(data.DataError, match=message) as err:
        data.load("sst2", "train", search_paths=[tmp_path])
    assert str(tmp_path / "sst2" / "train.parquet") in str(err.value) and "\n" not in str(err.value)


def test_unlabelled_rows_may_have_empty_text(tmp_path):
    import pandas as pd

    from compnb import data

    (tmp_path / "sst2").mkdir()
    pd.DataFrame({"sentence": ["a", ""], "label": [1, -1]}).to_parquet(tmp_path / "sst2" / "train.parquet")
    assert len(data.load("sst2", "train", search_paths=[tmp_path])) == 1
