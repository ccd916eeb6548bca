"""Offline-first datasets in the Hugging Face schema.

`load(name, split)` looks for Parquet files, in order, in `$COMPNB_DATA_DIR`, the project's `data/`,
and `../shared/data` (layout: `<folder>/<name>/<split>.parquet`, AdvGLUE under `adv_glue/`), and only
then asks the Hugging Face hub. The returned `datasets.Dataset` carries a `DataSource` (see
`source_of`) saying where it came from, so every run can record it.

SNLI offline is a sample (`snli/train_sample.parquet`, 18,000 pairs; `snli/test_sample.parquet`,
2,000 pairs) whose two files share 274 premises. To keep evaluation leak-free we drop exact duplicate
pairs and every training pair whose premise occurs in the test sample, and carve the validation
split from the rest by premise (a seeded group split), so no premise crosses a split boundary.

`load(..., complete=True)` (the paper profile; also `$COMPNB_COMPLETE_DATA=1`) takes only complete splits: it
passes over the SNLI sample and any local copy with fewer labelled rows than the corpus (`COMPLETE_ROWS`),
and then asks the hub. `locate` says, without loading, where a split would come from.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from compnb.fingerprints import data_sha256, rows_sha256
from compnb.paths import data_search_paths

NLI_LABELS = ("entailment", "neutral", "contradiction")
SENTIMENT_LABELS = ("negative", "positive")
SNLI_VALIDATION_FRACTION = 0.1
PRETOKENIZED = ("input_ids", "token_type_ids")  # id columns of pre-tokenized rows (lists of ints, unpadded)
TOKENIZER_COLUMN = "tokenizer"  # the `tokenizer_fingerprint` of the tokenizer that made a pre-tokenized row
# Labelled rows of the complete corpora's splits (the hub's, less its rows labelled -1); fewer is a subset.
COMPLETE_ROWS: dict[tuple[str, str], int] = {("snli", "train"): 549_367, ("snli", "validation"): 9_842,
                                             ("snli", "test"): 9_824, ("sst2", "train"): 67_349,
                                             ("sst2", "validation"): 872}
SNLI_SAMPLE = "offline SNLI sample (18,000/2,000 pairs, not the full 550,152/10,000/10,000 corpus)"
HUB_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DatasetSpec:
    """What the book knows about one dataset: its splits, text fields, labels and hub address."""

    name: str
    splits: tuple[str, ...]
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    hub_path: str
    hub_config: str | None
    local_folder: str
    local_stem: str | None = None  # file stem for single-split sets (AdvGLUE)


DATASETS: dict[str, DatasetSpec] = {
    "sst2": DatasetSpec("sst2", ("train", "validation", "test"), ("sentence",), SENTIMENT_LABELS,
                        "stanfordnlp/sst2", None, "sst2"),
    "snli": DatasetSpec("snli", ("train", "validation", "test"), ("premise", "hypothesis"), NLI_LABELS,
                        "stanfordnlp/snli", None, "snli"),
    "adv_sst2": DatasetSpec("adv_sst2", ("validation",), ("sentence",), SENTIMENT_LABELS,
                            "AI-secure/adv_glue", "adv_sst2", "adv_glue", "adv_sst2"),
    "adv_mnli": DatasetSpec("adv_mnli", ("validation",), ("premise", "hypothesis"), NLI_LABELS,
                            "AI-secure/adv_glue", "adv_mnli", "adv_glue", "adv_mnli"),
    "adv_mnli_mismatched": DatasetSpec("adv_mnli_mismatched", ("validation",), ("premise", "hypothesis"),
                                       NLI_LABELS, "AI-secure/adv_glue", "adv_mnli_mismatched", "adv_glue",
                                       "adv_mnli_mismatched"),
}


@dataclass(frozen=True)
class DataSource:
    """Where one split came from. `origin` is 'local' or 'hub'; `sample` marks the offline SNLI sample."""

    dataset: str
    split: str
    origin: str
    location: str
    rows: int
    sample: bool = False
    note: str = ""
    sha256: str = ""  # content of the local file or sample folder (`fingerprints.data_sha256`), or of a hub split's
    # rows as loaded (`fingerprints.rows_sha256`)

    def as_dict(self) -> dict:
        return asdict(self)


class DataNotFoundError(FileNotFoundError):
    """No local copy and no reachable hub for a dataset."""


def spec(name: str) -> DatasetSpec:
    """The `DatasetSpec` for `name`; a clear `ValueError` for unknown names."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def _check_split(s: DatasetSpec, split: str) -> None:
    if split not in s.splits:
        raise ValueError(f"unknown split {split!r} for dataset {s.name!r}; allowed: {', '.join(s.splits)}")


def _hub_disabled() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "COMPNB_OFFLINE"))


def _complete_by_default() -> bool:
    return os.environ.get("COMPNB_COMPLETE_DATA", "") not in ("", "0")


def hub_status() -> str | None:
    """None when the Hugging Face hub can be asked, else why not: the environment variable that disables it,
    or that it is unreachable (one HEAD request to `$HF_ENDPOINT`, default huggingface.co, remembered)."""
    if _hub_disabled():
        names = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "COMPNB_OFFLINE")
                 if os.environ.get(v, "") not in ("", "0")]
        return f"{names[0]}={os.environ[names[0]]} disables the hub"
    return _probe(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


@functools.lru_cache(maxsize=None)
def _probe(endpoint: str) -> str | None:
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=HUB_PROBE_TIMEOUT_S)
    except OSError as err:  # URLError, timeouts and refused connections are all OSErrors
        return f"the hub at {endpoint} is unreachable: {getattr(err, 'reason', err)}"
    return None


class DataError(ValueError):
    """A data file that does not hold what its dataset needs (columns, label type and range, texts)."""


def validate(frame: pd.DataFrame, s: DatasetSpec, location: str, unlabelled: bool = True) -> None:
    """Check, where data enters, that `frame` has `s`'s text fields and an integer `label` column whose values
    lie in 0..c-1 (and -1, unlabelled, where `unlabelled`), and that no labelled row has an empty or missing
    text; a DataError names the file, the column and what is allowed, in one line."""
    needed = [*s.text_fields, "label"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{location}: no column {', '.join(map(repr, missing))}; {s.name} needs columns "
                        f"{', '.join(needed)}")
    if not pd.api.types.is_integer_dtype(frame["label"]):
        raise DataError(f"{location}: column 'label' holds {frame['label'].dtype}, not integers; {s.name} labels "
                        f"are 0..{len(s.label_names) - 1} ({', '.join(s.label_names)})")
    allowed = set(range(len(s.label_names))) | ({-1} if unlabelled else set())
    bad = sorted(set(frame["label"].unique().tolist()) - allowed)
    if bad:
        raise DataError(f"{location}: column 'label' has values {bad[:5]}; allowed for {s.name}: "
                        f"0..{len(s.label_names) - 1}{' and -1 (unlabelled)' if unlabelled else ''}")
    labelled = frame[frame["label"] >= 0]
    for field in s.text_fields:
        empty = labelled[field].isna() | (labelled[field].astype(str).str.strip() == "")
        if empty.any():
            raise DataError(f"{location}: column {field!r} is empty in {int(empty.sum())} labelled row(s), the first "
                            f"at row {int(empty.idxmax())}; every {s.name} example needs its text")


def _to_dataset(frame: pd.DataFrame, s: DatasetSpec, source: DataSource) -> datasets.Dataset:
    """Pandas → `datasets.Dataset` with a ClassLabel column and the source recorded in `info.description`."""
    frame = frame[frame["label"] >= 0].reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    features = datasets.Features.from_arrow_schema(table.schema)
    for column, feature in features.items():
        if isinstance(feature, datasets.Value) and feature.dtype == "large_string":
            features[column] = datasets.Value("string")
    features["label"] = datasets.ClassLabel(names=list(s.label_names))
    ds = datasets.Dataset(table.cast(features.arrow_schema), info=datasets.DatasetInfo(features=features))
    ds.info.description = json.dumps(source.as_dict())
    return ds


def source_of(ds: datasets.Dataset) -> dict:
    """The `DataSource` (as a dict) recorded on a dataset returned by `load`."""
    try:
        return json.loads(ds.info.description or "")
    except json.JSONDecodeError as err:
        raise ValueError("this dataset was not produced by compnb.data.load; it records no source") from err


@functools.lru_cache(maxsize=64)
def current_source(name: str, split: str, complete: bool = False) -> dict:
    """The `DataSource` (a dict, with its SHA-256) that `split` of `name` resolves to now, read once per process:
    what cached runs and measurements are checked against."""
    return source_of(load(name, split, complete=complete))


def _snli_sample_splits(folder: Path, seed: int) -> dict[str, pd.DataFrame]:
    """Leak-free train/validation/test frames from the offline SNLI sample (see module docstring)."""
    train = pd.read_parquet(folder / "train_sample.parquet")
    test = pd.read_parquet(folder / "test_sample.parquet")
    for frame, name in ((train, "train_sample.parquet"), (test, "test_sample.parquet")):
        validate(frame, DATASETS["snli"], str(folder / name))
    train = train[train["label"] >= 0]
    test = test[test["label"] >= 0].reset_index(drop=True)
    train = train.drop_duplicates(subset=["premise", "hypothesis", "label"])
    train = train[~train["premise"].isin(set(test["premise"]))].reset_index(drop=True)
    premises = np.array(sorted(train["premise"].unique()))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(premises, size=int(round(SNLI_VALIDATION_FRACTION * len(premises))), replace=False))
    is_val = train["premise"].isin(held).to_numpy()
    return {"train": train[~is_val].reset_index(drop=True), "validation": train[is_val].reset_index(drop=True),
            "test": test}


def _local_path(s: DatasetSpec, split: str, folder: Path) -> tuple[Path, bool] | None:
    """(the file of `split` in `folder`, False), (the SNLI sample's folder, True), or None."""
    base = folder / s.local_folder
    path = base / f"{s.local_stem or split}.parquet"
    if path.is_file():
        return path, False
    if (s.name == "snli" and s.local_stem is None and (base / "train_sample.parquet").is_file()
            and (base / "test_sample.parquet").is_file()):
        return base, True
    return None


def _local(s: DatasetSpec, split: str, folder: Path, seed: int) -> tuple[pd.DataFrame, DataSource] | None:
    found = _local_path(s, split, folder)
    if found is None:
        return None
    path, sample = found
    if not sample:
        frame = pd.read_parquet(path)
        validate(frame, s, str(path))
        return frame, DataSource(s.name, split, "local", str(path), int((frame["label"] >= 0).sum()),
                                 sha256=data_sha256(str(path)))
    frame = _snli_sample_splits(path, seed)[split]
    note = (f"{SNLI_SAMPLE}; duplicates and train pairs sharing a premise with test dropped; validation carved "
            f"from train by premise with seed {seed}")
    return frame, DataSource(s.name, split, "local", str(path), len(frame), sample=True, note=note,
                             sha256=data_sha256(str(path)))


def _incomplete(s: DatasetSpec, split: str, location: str, sample: bool, rows: int) -> str | None:
    """Why a local copy is not the complete split (the SNLI sample, or too few labelled rows), or None."""
    if sample:
        return f"{location} holds only the {SNLI_SAMPLE}"
    need = COMPLETE_ROWS.get((s.name, split))
    if need is not None and rows < need:
        return f"{location} holds {rows:,} labelled rows of {s.name}/{split}, not the complete split's {need:,}"
    return None


def labelled_rows(path: str | Path) -> int:
    """Rows with a label (>= 0) in a Parquet file, reading only its label column; cached by size and mtime."""
    stat = Path(path).stat()
    return _labelled_rows(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _labelled_rows(path: str, size: int, mtime_ns: int) -> int:
    return int((pq.read_table(path, columns=["label"])["label"].to_numpy() >= 0).sum())


def locate(name: str, split: str, *, complete: bool = False,
           search_paths: list[Path] | None = None) -> tuple[str | None, list[str]]:
    """(the local copy `load` would read `split` of `name` from, or None when it would ask the hub; why local
    copies were passed over), reading no more than their labels; `complete` as in `load`."""
    s = spec(name)
    _check_split(s, split)
    passed: list[str] = []
    for folder in data_search_paths() if search_paths is None else search_paths:
        found = _local_path(s, split, folder)
        if found is None:
            continue
        path, sample = found
        rows = 0 if sample else int((pq.read_table(path, columns=["label"])["label"].to_numpy() >= 0).sum())
        why = _incomplete(s, split, str(path), sample, rows) if complete else None
        if why is None:
            return str(path), passed
        passed.append(why)
    return None, passed


def _hub(s: DatasetSpec, split: str) -> tuple[pd.DataFrame, DataSource]:
    hub_split = "validation" if s.hub_config else split
    frame = datasets.load_dataset(s.hub_path, s.hub_config, split=hub_split).to_pandas()
    if s.name == "sst2" and split == "test":
        raise DataNotFoundError("the hub's GLUE SST-2 test split hides its labels (all -1); provide "
                                "sst2/test.parquet with the original SST test labels in a local data folder")
    where = s.hub_path + (f" ({s.hub_config})" if s.hub_config else "")
    validate(frame, s, f"the hub's {where} {split}")
    return frame, DataSource(s.name, split, "hub", where, int((frame["label"] >= 0).sum()), sha256=rows_sha256(frame))


def load(name: str, split: str, *, seed: int = 0, search_paths: list[Path] | None = None,
         hub: bool = True, complete: bool | None = None) -> datasets.Dataset:
    """Load `split` of dataset `name` as a `datasets.Dataset` (HF column schema, ClassLabel `label`).

    Local folders are tried first (`search_paths`, default `compnb.paths.data_search_paths()`), then the hub
    unless `hub=False` or `HF_HUB_OFFLINE`/`COMPNB_OFFLINE` is set. `seed` only affects the validation split
    carved from the offline SNLI sample. Rows labelled -1 are dropped. `complete` (default: whether
    `$COMPNB_COMPLETE_DATA` is set) passes over local copies that are not the complete split (the SNLI
    sample, or fewer labelled rows than `COMPLETE_ROWS`); a DataNotFoundError names them if nothing else is found.
    """
    s = spec(name)
    _check_split(s, split)
    complete = _complete_by_default() if complete is None else complete
    folders = data_search_paths() if search_paths is None else list(search_paths)
    passed = []
    for folder in folders:
        found = _local(s, split, folder, seed)
        if found is not None:
            frame, source = found
            why = _incomplete(s, split, source.location, source.sample, source.rows) if complete else None
            if why is None:
                return _to_dataset(frame, s, source)
            passed.append(why)
    tried = [str(f / s.local_folder) for f in folders]
    if passed:
        tried.append(f"passed over as incomplete: {'; '.join(passed)}")
    how = (f"Provide it as Parquet in the Hugging Face schema at <folder>/{s.local_folder}/"
           f"{(s.local_stem or split)}.parquet under $COMPNB_DATA_DIR or the project's data/ folder, "
           f"or go online so the hub dataset {s.hub_path!r} can be downloaded.")
    if not hub or _hub_disabled():
        raise DataNotFoundError(f"no {'complete ' if complete else ''}local copy of {name}/{split}; searched "
                                f"{tried} (hub disabled). {how}")
    try:
        frame, source = _hub(s, split)
    except DataNotFoundError:
        raise
    except Exception as err:  # the hub raises many kinds of connection errors
        raise DataNotFoundError(f"no local copy of {name}/{split}; searched {tried}, and the hub failed "
                                f"({type(err).__name__}: {err}). {how}") from err
    return _to_dataset(frame, s, source)



def from_parquet(path: str | Path, name: str, split: str = "extra") -> datasets.Dataset:
    """Rows of dataset `name`'s schema (its text fields and an integer label) from a Parquet file, e.g. an
    adversarial set to train on; a ValueError names a missing column or a label outside the dataset's."""
    s, path = spec(name), Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"no Parquet file at {str(path)!r}; write the extra rows there first")
    return from_frame(pd.read_parquet(path), name, split, str(path))


def from_frame(frame: pd.DataFrame, name: str, split: str = "extra", location: str = "in memory") -> datasets.Dataset:
    """`frame`'s text fields and label as a `datasets.Dataset` of dataset `name`'s schema. A pre-tokenized frame
    (an `input_ids` column) keeps instead its id columns (`PRETOKENIZED`), `tokenizer` (`TOKENIZER_COLUMN`)
    and label, which `batching.encode` takes as they are. A ValueError names a missing column or a label
    outside the dataset's."""
    s = spec(name)
    tokenized = PRETOKENIZED[0] in frame.columns
    needed = [PRETOKENIZED[0], TOKENIZER_COLUMN, "label"] if tokenized else [*s.text_fields, "label"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{location!r} lacks column(s) {missing}; {'pre-tokenized ' if tokenized else ''}{name} "
                         f"rows need {needed}")
    if tokenized:
        bad = sorted(set(frame["label"].tolist()) - set(range(len(s.label_names))))
        if bad:
            raise DataError(f"{location!r} has labels {bad}; allowed for {name}: 0..{len(s.label_names) - 1}")
    else:
        validate(frame, s, repr(location), unlabelled=False)
    kept = [c for c in (*PRETOKENIZED, TOKENIZER_COLUMN) if c in frame.columns] if tokenized else list(s.text_fields)
    frame = frame[[*kept, "label"]].reset_index(drop=True)
    return _to_dataset(frame, s, DataSource(name, split, "local", location, len(frame), sha256=data_sha256(location)))


def tokenizer_fingerprint(tokenizer) -> str:
    """'vocab <size> <16 hex digits of the sha256 of its token → id map>': equal for tokenizers that give every
    token the same id (one tokenizer saved and loaded again, say), so pre-tokenized rows name their maker."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False, separators=(",", ":"))
    return f"vocab {len(tokenizer)} {hashlib.sha256(vocab.encode()).hexdigest()[:16]}"


def column(ds: datasets.Dataset, name: str) -> list:
    """Column `name` of `ds` as a Python list, read straight from Arrow (datasets' own row iteration is slow)."""
    if name not in ds.column_names:
        raise ValueError(f"unknown column {name!r}; the dataset has {ds.column_names}")
    return ds.select_columns([name]).with_format("arrow")[:].column(name).to_pylist()


def subsample(ds: datasets.Dataset, n: int | None, seed: int = 0) -> datasets.Dataset:
    """A seeded random subset of `n` rows (all rows, unchanged, when n is None or at least len(ds))."""
    if n is None or n >= len(ds):
        return ds
    if n < 1:
        raise ValueError(f"subsample size must be at least 1, got {n!r}")
    rows = np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False))
    return ds.select(rows)
