"""data/sources.json is the one record of the offline data: the documents name every file it lists with its
SHA-256, the loader's facts agree with it, local copies hash to it, and data/rebuild.py writes those bytes."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from compnb import data
from compnb.fingerprints import data_sha256, file_sha256, rows_sha256
from compnb.paths import data_search_paths

ROOT = Path(__file__).resolve().parents[1]
SOURCES = json.loads((ROOT / "data" / "sources.json").read_text())["sources"]
FILES = [(source, entry) for source in SOURCES for entry in source["files"]]
DOCUMENTS = ["README.md", "data/README.md", "book/intro.md"]


def _rebuild():
    spec = importlib.util.spec_from_file_location("rebuild", ROOT / "data" / "rebuild.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _local(file: str) -> Path | None:
    """The copy of `file` the loader would read first, or None."""
    return next((folder / file for folder in data_search_paths() if (folder / file).is_file()), None)


def test_sources_are_complete_records():
    assert {s["dataset"] for s in SOURCES} == {"sst2", "snli", "adv_glue"}
    for source in SOURCES:
        assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", source["repository"]), source["repository"]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source["commit"]
        for entry in source["files"]:
            assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), entry
            assert entry["rows_sha256"].startswith("rows:") and entry["rows"] > 0
            assert sum(entry["labels"].values()) == entry["rows"]
            assert "label" in entry["columns"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documents_name_every_source_with_its_hash(document):
    text = (ROOT / document).read_text()
    missing = []
    for source in SOURCES:
        repository = source["repository"].removeprefix("https://github.com/")
        for fact in (repository, source["commit"][:7]):
            if fact not in text:
                missing.append(f"{source['dataset']}: {fact}")
        for entry in source["files"]:
            for fact in (entry["file"], entry["sha256"], f"{entry['rows']:,}"):
                if fact not in text:
                    missing.append(f"{entry['file']}: {fact}")
    assert not missing, f"{document} does not name: {missing}"


def test_data_readme_names_full_commits_and_the_sample_folder_hash():
    text = (ROOT / "data" / "README.md").read_text()
    for source in SOURCES:
        assert source["commit"] in text, source["dataset"]
    snli = next(s for s in SOURCES if s["dataset"] == "snli")
    assert snli["folder_sha256"] in text
    for split in ("train", "validation", "test"):
        assert f"{snli['loaded_as'][split]:,}" in text, split


def test_the_loader_agrees_on_the_complete_corpus():
    snli = next(s for s in SOURCES if s["dataset"] == "snli")
    for split, rows in snli["hub_rows"]["labelled"].items():
        assert data.COMPLETE_ROWS[("snli", split)] == rows
    for source in SOURCES:
        hub = {s.hub_path for s in data.DATASETS.values() if s.local_folder == source["dataset"]}
        assert hub == {source["hub"]}, source["dataset"]


@pytest.mark.parametrize("file", [entry["file"] for _, entry in FILES])
def test_local_copies_are_the_recorded_files(file):
    entry = next(e for _, e in FILES if e["file"] == file)
    path = _local(file)
    if path is None:
        pytest.skip(f"no local copy of {file} (../shared/data, data/ or $COMPNB_DATA_DIR)")
    assert file_sha256(path) == entry["sha256"], f"{path} is not the file data/sources.json records"
    frame = pd.read_parquet(path)
    assert len(frame) == entry["rows"] and rows_sha256(frame) == entry["rows_sha256"]


def test_the_sample_splits_and_folder_hash_are_as_recorded():
    snli = next(s for s in SOURCES if s["dataset"] == "snli")
    found, _ = data.locate("snli", "train")
    if found is None or not Path(found).is_dir():
        pytest.skip("the offline SNLI sample is not present (../shared/data, data/ or $COMPNB_DATA_DIR)")
    assert data_sha256(str(found)) == snli["folder_sha256"]
    seed = snli["loaded_as"]["seed"]
    for split in ("train", "validation", "test"):
        assert len(data.load("snli", split, seed=seed, hub=False)) == snli["loaded_as"][split], split


def test_rebuild_writes_the_recorded_bytes(tmp_path):
    """rebuild.write, given a local copy's rows, writes the same bytes (so a rebuilt copy keeps the
    committed runs reusable); the files without a local copy are skipped."""
    rebuild = _rebuild()
    checked = 0
    for _, entry in FILES:
        path = _local(entry["file"])
        if path is None or path.stat().st_size > 5_000_000:
            continue
        target = tmp_path / entry["file"]
        rebuild.write(pd.read_parquet(path), entry["columns"], target)
        assert file_sha256(target) == entry["sha256"], entry["file"]
        checked += 1
    if not checked:
        pytest.skip("no local copy of the offline data to compare with")


def test_rebuild_converts_each_source_format():
    rebuild = _rebuild()
    sst2 = rebuild.convert("sst2", "sst2/test.parquet", b"label\tcontent\n0\tbad \" film\n1\tgood\n")
    assert sst2.to_dict("list") == {"idx": [0, 1], "sentence": ['bad " film', "good"], "label": [0, 1]}
    snli = rebuild.convert("snli", "snli/test_sample.parquet", b"3\t3\tA p.\tA h.\n1\t1\tB p.\tB h.\n2\t2\tC.\tD.\n")
    assert snli["label"].tolist() == [0, 1, 2] and snli["premise"].tolist() == ["A p.", "B p.", "C."]
    adv = rebuild.convert("adv_glue", "adv_glue/adv_mnli_mismatched.parquet",
                          json.dumps({"mnli-mm": [{"idx": 0, "premise": "p", "hypothesis": "h", "label": 2}]}).encode())
    assert adv.to_dict("list") == {"idx": [0], "premise": ["p"], "hypothesis": ["h"], "label": [2]}
