"""`compnb.executors.run_distributed` on a local Dask cluster of two single-threaded worker processes (CPU): each
config runs as one `compnb train --config` task and the run folders come back in order; a failed run is named
(an in-process cluster, the task replaced)."""

import json

import pandas as pd
import pytest
from transformers import AutoTokenizer, BertConfig, BertModel

from compnb import executors, models
from compnb.executors import run_distributed
from compnb.run_cache import FINISHED, run_dir
from compnb.training import TrainConfig

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A tiny BERT, 24/8 SST-2-shaped rows, and the two-worker cluster, started with COMPNB_DATA_DIR set."""
    root = tmp_path_factory.mktemp("executors")
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=32)).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    (root / "data" / "sst2").mkdir(parents=True)
    for split, n in (("train", 24), ("validation", 8)):
        pd.DataFrame({"idx": range(n), "sentence": ["a great film" if i % 2 else "an awful film" for i in range(n)],
                      "label": [i % 2 for i in range(n)]}).to_parquet(root / "data" / "sst2" / f"{split}.parquet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMPNB_DATA_DIR", str(root / "data"))  # the workers and their `compnb train` inherit it
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as local:
            yield root, local


def tiny(root, seed: int, **overrides) -> TrainConfig:
    values = dict(model=str(root / "bert"), seed=seed, epochs=1, batch_size=8, max_length=16, profile="smoke")
    return TrainConfig(**(values | overrides))


def test_two_configs_train_as_tasks_on_a_two_worker_cluster(cluster, tmp_path):
    root, local = cluster
    configs = [tiny(root, 0), tiny(root, 1)]
    folders = run_distributed(configs, local.scheduler_address, runs_root=tmp_path)
    assert folders == [run_dir(c, tmp_path) for c in configs]
    for folder, config in zip(folders, configs):
        assert json.loads((folder / FINISHED).read_text())["steps"] == 3
        assert TrainConfig.from_json(folder / "config.json") == config


def test_failed_runs_do_not_stop_the_others_and_are_named(tmp_path, monkeypatch):
    def fake_task(config, root, runs_root, gpus):
        if config["seed"] == 1:
            raise RuntimeError("compnb train exited with 2: no such model")
        return str(tmp_path / f"run-{config['seed']}")

    monkeypatch.setattr(executors, "train_task", fake_task)
    configs = [TrainConfig(seed=0, profile="smoke"), TrainConfig(seed=1, profile="smoke")]
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as local:
        with pytest.raises(RuntimeError, match=r"1 of 2 runs failed:\nsst2-ce-\w+: .*no such model"):
            executors.run_distributed(configs, local.scheduler_address, runs_root=tmp_path)
