"""Rebuild the offline data folder from the public repositories named in data/sources.json.

    python data/rebuild.py                 # into data/; needs internet (raw.githubusercontent.com)
    python data/rebuild.py --out DIR       # into another folder (then COMPNB_DATA_DIR=DIR)
    python data/rebuild.py --raw RAW       # from source files already downloaded: RAW/<owner>+<name>/<path>

Each source file is read at the commit pinned in sources.json and converted to the Hugging Face column
schema (SNLI's labels remapped to 0 entailment, 1 neutral, 2 contradiction), then written with the
recorded column types and zstd compression. Nothing is sampled or shuffled here: the SNLI sample is exactly
the 18,000/2,000 pairs its redistributor published. With the pinned pandas and pyarrow (constraints.txt)
every file comes out byte for byte as recorded (`sha256`), so the run records of the committed results
still match; with other versions the bytes may differ while the rows do not (`rows_sha256`), and cached
runs then stop with a line naming the file (retrain them, or install the pinned versions).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SOURCES = Path(__file__).with_name("sources.json")
SNLI_LABELS = {3: 0, 1: 1, 2: 2}  # the redistributor's 3 entailment, 1 neutral, 2 contradiction → the hub's
ADV_GLUE_TASKS = {"adv_sst2": "sst2", "adv_qqp": "qqp", "adv_mnli": "mnli", "adv_mnli_mismatched": "mnli-mm",
                  "adv_qnli": "qnli", "adv_rte": "rte"}


def read_raw(repository: str, commit: str, path: str, raw_dir: Path | None) -> bytes:
    owner_name = repository.removeprefix("https://github.com/")
    if raw_dir is not None:
        return (raw_dir / owner_name.replace("/", "+") / path).read_bytes()
    url = f"https://raw.githubusercontent.com/{owner_name}/{commit}/{path}"
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def convert(dataset: str, file: str, raw: bytes) -> pd.DataFrame:
    """One source file's bytes as the frame of `file` (e.g. 'snli/train_sample.parquet')."""
    stem = Path(file).stem
    if dataset == "sst2":
        frame = pd.read_csv(io.BytesIO(raw), sep="\t", quoting=3, keep_default_na=False, dtype=str)
        text = "sentence" if "sentence" in frame.columns else "content"
        return pd.DataFrame({"idx": range(len(frame)), "sentence": frame[text], "label": frame["label"].astype("int64")})
    if dataset == "snli":
        frame = pd.read_csv(io.BytesIO(raw), sep="\t", header=None, names=["gold", "label_copy", "premise", "hypothesis"],
                            keep_default_na=False, dtype={"premise": str, "hypothesis": str})
        return pd.DataFrame({"premise": frame["premise"], "hypothesis": frame["hypothesis"],
                             "label": frame["gold"].map(SNLI_LABELS).astype("int64")})
    if dataset == "adv_glue":
        return pd.DataFrame(json.loads(raw)[ADV_GLUE_TASKS[stem]])
    raise ValueError(f"unknown dataset {dataset!r}")


def write(frame: pd.DataFrame, columns: dict[str, str], target: Path) -> None:
    """`frame` as Parquet with the recorded Arrow types: 'string' from Python-backed strings, 'large_string'
    from Arrow-backed ones (so that pandas' metadata is as recorded), integers from int64."""
    storage = {"string": "python", "large_string": "pyarrow"}
    frame = pd.DataFrame({name: frame[name].astype(object).astype(pd.StringDtype(storage[kind], na_value=np.nan))
                          if kind in storage else frame[name].astype("int64") for name, kind in columns.items()})
    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in columns.items()])
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), target, compression="zstd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SOURCES.resolve().parent)
    parser.add_argument("--raw", type=Path, default=None, help="read source files from DIR/<owner>+<name>/<path>")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from compnb.fingerprints import file_sha256, rows_sha256

    bad = 0
    for source in json.loads(SOURCES.read_text())["sources"]:
        for entry in source["files"]:
            raw = read_raw(source["repository"], source["commit"], entry["from"], args.raw)
            frame = convert(source["dataset"], entry["file"], raw)
            target = args.out / entry["file"]
            write(frame, entry["columns"], target)
            same_rows = len(frame) == entry["rows"] and rows_sha256(frame) == entry["rows_sha256"]
            same_bytes = file_sha256(target) == entry["sha256"]
            bad += not same_rows
            verdict = "same bytes" if same_bytes else "same rows, other bytes" if same_rows else "OTHER ROWS"
            print(f"{verdict}: {target} ({len(frame)} rows) from {entry['from']} at {source['commit'][:7]}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
