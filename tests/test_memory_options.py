"""The memory options of `TrainConfig` on a tiny BERT: committed run ids unchanged, gradient accumulation equal to
one big batch with the schedule stepped per optimizer step, LoRA training adapters and head only (and saved and
loaded), and 16-bit backbone weights."""

import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from accelerate.utils import set_seed
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertModel

from compnb import data, inference, models, run_cache, training
from compnb.paths import project_root
from compnb.chapters import faults
from compnb.training import TrainConfig, train

DEFAULT_RUN_ID = "9d5d1d4e4821"  # TrainConfig().run_id() before the memory options existed


def _sentences(n: int, seed: int) -> pd.DataFrame:
    """Label 1 iff the sentence says 'great' (else 'awful'), among 2-10 random filler words."""
    return faults.sentences(n, seed, most_words=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A dropout-free tiny BERT (with the packaged MiniLM tokenizer) and 32/16 SST-2-shaped rows."""
    root = tmp_path_factory.mktemp("memory")
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))
    backbone = root / "tiny-bert"
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    (root / "data" / "sst2").mkdir(parents=True)
    _sentences(32, 0).to_parquet(root / "data" / "sst2" / "train.parquet")
    _sentences(16, 1).to_parquet(root / "data" / "sst2" / "validation.parquet")
    return SimpleNamespace(root=root, backbone=backbone, data=root / "data")


@pytest.fixture(autouse=True)
def _env(world, monkeypatch):
    monkeypatch.setenv("COMPNB_DATA_DIR", str(world.data))
    original = models.SequenceClassifier.from_pretrained  # the head's dropout off: micro-batches draw other masks
    monkeypatch.setattr(models.SequenceClassifier, "from_pretrained",
                        lambda *args, **kwargs: original(*args, **(kwargs | {"dropout": 0.0})))


def config(world, **overrides) -> TrainConfig:
    values = dict(model=str(world.backbone), epochs=1, batch_size=16, lr=3e-3, max_length=32, log_every=1,
                  patience=None, warmup_ratio=0.0, profile="smoke")
    return TrainConfig(**(values | overrides))


def test_default_config_and_every_committed_run_keep_their_run_ids():
    assert TrainConfig().run_id() == DEFAULT_RUN_ID
    assert not {"weight_dtype", "grad_accum", "lora"} & set(TrainConfig().to_dict())
    folders = sorted((project_root() / "results").glob("*/runs/*/config.json"))
    for path in folders:
        assert path.parent.name.endswith("-" + TrainConfig.from_json(path).run_id()), path
    changed = [TrainConfig(weight_dtype="bfloat16"), TrainConfig(grad_accum=2), TrainConfig(lora={"r": 4})]
    assert len({DEFAULT_RUN_ID, *(c.run_id() for c in changed)}) == 4
    assert all(TrainConfig.from_dict(c.to_dict()) == c for c in changed)


def test_lora_settings_are_filled_in_so_equal_runs_hash_equally():
    short = TrainConfig(lora={"r": 8})
    long = TrainConfig(lora=[("target_modules", None), ("dropout", 0), ("alpha", 8), ("r", 8)])
    assert short == long and short.run_id() == long.run_id()
    assert short.to_dict()["lora"] == {"alpha": 8.0, "dropout": 0.0, "r": 8, "target_modules": None}
    listed = TrainConfig(lora={"target_modules": ["query", "value"]})
    assert json.loads(json.dumps(listed.to_dict()))["lora"]["target_modules"] == ["query", "value"]


@pytest.mark.parametrize("overrides, message", [
    ({"weight_dtype": "fp8"}, "weight_dtype must be one of float32, bfloat16, float16, got 'fp8'"),
    ({"weight_dtype": "float16"}, "weight_dtype must be float32 or bfloat16 without lora"),
    ({"grad_accum": 0}, "grad_accum must be an integer >= 1, got 0"),
    ({"lora": {"rank": 4}}, "lora keys ['rank'] are unknown; allowed: r, alpha, dropout, target_modules"),
    ({"lora": {"r": 0}}, "lora r must be an integer >= 1, got 0"),
    ({"lora": {"dropout": 1.0}}, "lora dropout must be a number in [0, 1), got 1.0"),
    ({"lora": {"target_modules": "query"}}, "lora target_modules must be null or a non-empty list"),
    ({"lora": 4}, "lora must be null or a mapping of r, alpha, dropout, target_modules, got 4"),
])
def test_bad_memory_options_raise_naming_the_value(overrides, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**overrides)
    assert message in str(err.value)


def test_two_accumulated_micro_batches_make_the_step_of_one_batch_twice_their_size(world, tmp_path):
    # 32 rows in batches of 12, 12 and 8: the last splits into micro-batches of 6 and 2, weighted 3:1
    big = train(config(world, batch_size=12), runs_root=tmp_path / "big")
    micro = train(config(world, batch_size=6, grad_accum=2), runs_root=tmp_path / "micro")
    m_big, m_micro = (json.loads((f / "metrics.json").read_text()) for f in (big, micro))
    assert m_big["steps"] == m_micro["steps"] == 3 and m_micro["train_examples"] == 32
    a, b = load_file(big / "model.safetensors"), load_file(micro / "model.safetensors")
    assert a.keys() == b.keys()
    first = [json.loads((f / "metrics.json").read_text())["train_loss"][0] for f in (big, micro)]
    assert first[0]["loss"] == pytest.approx(first[1]["loss"], rel=1e-5)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def test_the_schedule_steps_once_per_optimizer_step(world, tmp_path):
    folder = train(config(world, batch_size=4, grad_accum=2, epochs=2), runs_root=tmp_path)
    m = json.loads((folder / "metrics.json").read_text())
    assert m["steps"] == 8  # 32 rows / (4 × 2) per epoch, two epochs
    lrs = {entry["step"]: entry["lr"] for entry in m["train_loss"]}
    assert lrs[4] == pytest.approx(3e-3 * 0.5) and lrs[8] == pytest.approx(0.0)


def test_lora_trains_only_adapters_and_head_and_its_run_loads(world, tmp_path):
    cfg = config(world, lora={"r": 4, "alpha": 8, "target_modules": ["query", "value"]}, epochs=2)
    folder = train(cfg, runs_root=tmp_path)
    trained, base = load_file(folder / "model.safetensors"), load_file(world.backbone / "model.safetensors")
    adapters = [k for k in trained if "lora_" in k]
    assert len(adapters) == 4 and all(trained[k].dtype == torch.float32 for k in adapters)
    assert any(trained[k].abs().sum() > 0 for k in adapters if "lora_B" in k)  # B starts at zero
    for key, value in base.items():  # every weight of the backbone itself is as loaded
        torch.testing.assert_close(trained["backbone." + key.replace("query.", "query.base_layer.")
                                           .replace("value.", "value.base_layer.")], value, rtol=0, atol=0)
    set_seed(cfg.seed)
    fresh, _ = models.SequenceClassifier.from_pretrained(cfg.model, 2, dropout=0.0)
    assert all(not torch.equal(trained["head." + k], v) for k, v in fresh.head.state_dict().items())
    m = json.loads((folder / "metrics.json").read_text())
    assert m["trainable_parameters"] == sum(trained[k].numel() for k in trained if "lora_" in k or k.startswith("head."))
    model, tokenizer, loaded = training.load_run(folder)
    assert loaded == cfg
    probs = inference.predict(model, tokenizer, data.load("sst2", "validation"), ("sentence",), cfg.max_length)
    np.testing.assert_allclose(probs, np.load(folder / "val_probs.npy"), atol=1e-5)


@pytest.mark.parametrize("lora", [None, {"r": 4, "target_modules": ["query", "value"]}])
def test_bfloat16_backbone_weights_train_and_load(world, tmp_path, lora):
    folder = train(config(world, weight_dtype="bfloat16", lora=lora), runs_root=tmp_path)
    saved = load_file(folder / "model.safetensors")
    own = [k for k in saved if k.startswith("backbone.") and "lora_" not in k]
    assert all(saved[k].dtype == torch.bfloat16 for k in own)
    assert all(saved[k].dtype == torch.float32 for k in saved if k.startswith("head.") or "lora_" in k)
    m = json.loads((folder / "metrics.json").read_text())
    assert all(np.isfinite(entry["loss"]) for entry in m["train_loss"])
    model, tokenizer, _ = training.load_run(folder)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    probs = inference.predict(model, tokenizer, data.load("sst2", "validation"), ("sentence",), 32)
    np.testing.assert_allclose(probs, np.load(folder / "val_probs.npy"), atol=0.05)  # validated under bf16 autocast


def test_paper_profile_takes_only_the_papers_backbones():
    with pytest.raises(ValueError, match="model must be one of the papers' backbones at profile 'paper'"):
        TrainConfig(profile="paper")
    assert TrainConfig(model="google/electra-small-discriminator", dataset="snli", profile="paper").profile == "paper"


def test_accumulation_and_lora_under_accelerate_launch_with_two_cpu_processes(world, tmp_path):
    """DDP: micro-batches but the last skip the gradient sync, frozen backbone weights take no part in it."""
    cfg = config(world, batch_size=4, grad_accum=2, epochs=2, lora={"r": 2, "target_modules": ["query", "value"]})
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(port), "-m", "compnb.cli", "train", "--config", "config.json", "--runs-root", str(tmp_path / "runs")]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads((run_cache.run_dir(cfg, tmp_path / "runs") / "metrics.json").read_text())
    assert m["num_processes"] == 2 and m["steps"] == 4  # per epoch 32 rows / (4 per micro-batch × 2 × 2 processes)
