"""The training loop on a tiny BERT and a keyword rule: learning, determinism, run cache, resume, config checks,
dynamic padding, early stopping, a registered loss, `accelerate launch` with two CPU processes, and the CLI."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, BertConfig, BertModel

from compnb import batching, cli, data, inference, models, preemption, run_cache, training
from compnb.batching import LengthBucketSampler, PadCollator, encode
from compnb.chapters import faults
from compnb.run_cache import run_dir
from compnb.training import TrainConfig, train



@training.register_loss("test_scaled_ce", params=("scale",))
def scaled_ce(model, batch, params):
    logits = model(**training.model_inputs(batch))
    loss = params.get("scale", 1.0) * F.cross_entropy(logits, batch["labels"])
    return loss, logits, {"scaled": loss.detach()}


def _sentences(n: int, seed: int) -> pd.DataFrame:
    """Label 1 iff the sentence says 'great' (else 'awful'), among 2-10 random filler words."""
    return faults.sentences(n, seed, most_words=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))
    backbone = root / "tiny-bert"
    torch.manual_seed(0)  # torch seeds each process at random: unseeded, every session trained another backbone
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    data_dir = root / "data"
    (data_dir / "sst2").mkdir(parents=True)
    (data_dir / "adv_glue").mkdir()
    _sentences(192, 0).to_parquet(data_dir / "sst2" / "train.parquet")
    _sentences(64, 1).to_parquet(data_dir / "sst2" / "validation.parquet")
    _sentences(32, 2).to_parquet(data_dir / "adv_glue" / "adv_sst2.parquet")
    return SimpleNamespace(root=root, backbone=backbone, data=data_dir, tokenizer=tokenizer)


@pytest.fixture(autouse=True)
def _data_env(world, monkeypatch):
    monkeypatch.setenv("COMPNB_DATA_DIR", str(world.data))


def config(world, **overrides) -> TrainConfig:
    """12 steps per epoch; evaluation every 5 steps and at epoch ends, checkpoints every 5 steps."""
    values = dict(model=str(world.backbone), epochs=4, batch_size=16, lr=3e-3, max_length=32, log_every=4,
                  eval_every=5, checkpoint_every=5, patience=None, profile="smoke")
    return TrainConfig(**(values | overrides))


@pytest.fixture(scope="module")
def reference(world) -> Path:
    """One uninterrupted run that several tests compare against."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMPNB_DATA_DIR", str(world.data))
        return train(config(world), runs_root=world.root / "reference")


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def same_results(a: Path, b: Path) -> None:
    ma, mb = metrics(a), metrics(b)
    for key in ("validation", "train_loss", "val_accuracy", "best_step", "best_epoch", "steps"):
        assert json.dumps(ma[key]) == json.dumps(mb[key]), key
    np.testing.assert_array_equal(np.load(a / "val_probs.npy"), np.load(b / "val_probs.npy"))


class Interrupt(Exception):
    pass


def stop_at(step: int):
    def callback(state):
        if state.step == step:
            raise Interrupt(step)
    return callback


def fake_project(tmp_path: Path) -> Path:
    """A folder that `paths.project_root` takes for the repository, so default run folders land in tmp."""
    root = tmp_path / "project"
    (root / "src" / "compnb").mkdir(parents=True)
    (root / "_config.yml").write_text("title: test\n")
    return root


def test_training_learns_the_rule_and_writes_the_run_folder(world, reference):
    cfg = config(world)
    assert reference == run_dir(cfg, world.root / "reference")
    assert reference.name == f"sst2-ce-{cfg.run_id()}"
    assert sorted(os.listdir(reference)) == ["backbone", "config.json", "metrics.json", "model.safetensors",
                                             "run.json", "val_probs.npy"]
    m = metrics(reference)
    assert m["validation"]["accuracy"] >= 0.85 and m["validation"]["n"] == 64
    assert m["steps"] == 48 and m["train_examples"] == 192 and m["num_processes"] == 1
    assert m["engine"] == "eager" and "engine" not in cfg.to_dict()  # a CPU trains eagerly; the hash ignores it
    assert m["train_loss"][-1]["loss"] < m["train_loss"][0]["loss"]
    assert [e["step"] for e in m["val_accuracy"]][:4] == [5, 10, 12, 15]
    assert max(e["accuracy"] for e in m["val_accuracy"]) == m["validation"]["accuracy"]
    assert m["train_examples_per_s"] > 0 and m["eval_examples_per_s"] > 0 and m["peak_memory_mb"] > 0
    probs = np.load(reference / "val_probs.npy")
    labels = pd.read_parquet(world.data / "sst2" / "validation.parquet")["label"].to_numpy()
    assert probs.shape == (64, 2) and (probs.argmax(1) == labels).mean() == m["validation"]["accuracy"]
    record = json.loads((reference / "run.json").read_text())
    assert record["params"] == cfg.to_dict() and record["seed"] == 0
    assert all(s["location"].startswith(str(world.data)) for s in record["data_sources"])
    assert TrainConfig.from_json(reference / "config.json") == cfg
    model, tokenizer, loaded = training.load_run(reference)
    again = inference.predict(model, tokenizer, datasets.Dataset.from_pandas(
        pd.read_parquet(world.data / "sst2" / "validation.parquet")), ("sentence",), cfg.max_length, batch_size=7)
    assert loaded == cfg
    np.testing.assert_allclose(again, probs, atol=1e-5)


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(world, reference, tmp_path):
    same_results(reference, train(config(world), runs_root=tmp_path))
    other = train(config(world, seed=1), runs_root=tmp_path)
    assert other.name != reference.name
    assert not np.array_equal(np.load(other / "val_probs.npy"), np.load(reference / "val_probs.npy"))


def test_finished_run_is_returned_from_the_cache_and_force_retrains(world, reference, tmp_path):
    stamp, calls = (reference / "metrics.json").stat().st_mtime_ns, []
    assert train(config(world), runs_root=world.root / "reference", callback=calls.append) == reference
    assert calls == [] and (reference / "metrics.json").stat().st_mtime_ns == stamp
    copy = tmp_path / reference.name
    shutil.copytree(reference, copy)
    assert train(config(world), runs_root=tmp_path, force=True, callback=calls.append) == copy
    assert len(calls) == 48
    same_results(reference, copy)


@pytest.mark.parametrize("interrupt_at, checkpoint_step", [(7, 5), (29, 25)])
def test_interrupted_run_resumes_to_the_same_metrics(world, reference, tmp_path, interrupt_at, checkpoint_step):
    cfg = config(world)
    with pytest.raises(Interrupt):
        train(cfg, runs_root=tmp_path, callback=stop_at(interrupt_at))
    folder = run_dir(cfg, tmp_path)
    saved = json.loads((folder / "checkpoint" / "trainer_state.json").read_text())
    assert saved["step"] == checkpoint_step and not (folder / "metrics.json").exists()
    assert saved["batches_done"] == checkpoint_step % 12  # mid-epoch: skip_first_batches is exercised
    steps = []
    assert train(cfg, runs_root=tmp_path, callback=lambda state: steps.append(state.step)) == folder
    assert steps == list(range(checkpoint_step + 1, 49))
    same_results(reference, folder)
    assert not (folder / "checkpoint").exists() and not list(folder.glob("best-*"))


# at step 7, between checkpoints (every 5 steps); at 12, an epoch's last step, before its validation
@pytest.mark.parametrize("at", [7, 12])
def test_sigterm_checkpoints_that_step_and_the_run_resumes_to_the_same_results(world, reference, tmp_path, at):
    cfg, handler = config(world), signal.getsignal(signal.SIGTERM)

    def terminate(state):  # as a batch queue's time limit would
        if state.step == at:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(preemption.Preempted, match=f"after step {at};"):
        train(cfg, runs_root=tmp_path, callback=terminate)
    assert signal.getsignal(signal.SIGTERM) is handler and not preemption.requested()
    folder = run_dir(cfg, tmp_path)
    assert json.loads((folder / "checkpoint" / "trainer_state.json").read_text())["step"] == at
    steps = []
    train(cfg, runs_root=tmp_path, callback=lambda state: steps.append(state.step))
    assert steps == list(range(at + 1, 49))
    same_results(reference, folder)


def test_a_preempted_cli_run_ends_with_one_line_and_the_sigterm_status(monkeypatch, capsys):
    def preempted(args):
        raise preemption.Preempted("run r stopped by SIGTERM after step 3")

    parsed = cli.parser().parse_args(["train", "--config", "x.json"])
    parsed.handler = preempted  # the run's training, stopped by SIGTERM
    monkeypatch.setattr(cli, "parser", lambda: SimpleNamespace(parse_args=lambda argv: parsed))
    assert cli.main(["train", "--config", "x.json"]) == 143 == preemption.EXIT_CODE
    assert capsys.readouterr().err == "compnb train: run r stopped by SIGTERM after step 3\n"


def test_checkpoint_of_another_config_is_refused(world, tmp_path):
    first, second = config(world, seed=1, epochs=1), config(world, seed=2, epochs=1)
    with pytest.raises(Interrupt):
        train(first, runs_root=tmp_path, callback=stop_at(6))
    target = run_dir(second, tmp_path)
    shutil.copytree(run_dir(first, tmp_path) / "checkpoint", target / "checkpoint")
    with pytest.raises(ValueError, match=f"belongs to run {first.run_id()}, not to this config's run "
                                         f"{second.run_id()}"):
        train(second, runs_root=tmp_path)


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"lr": 0}, "lr must be a number > 0, got 0"),
    ({"lr": "fast"}, "lr must be a number > 0, got 'fast'"),
    ({"max_length": 4}, "max_length must be an integer >= 8, got 4"),
    ({"warmup_ratio": 1.5}, "warmup_ratio must be a number in [0, 1), got 1.5"),
    ({"weight_decay": -0.1}, "weight_decay must be a number >= 0, got -0.1"),
    ({"max_train_examples": 0}, "max_train_examples must be an integer >= 1 or null, got 0"),
    ({"patience": 2.5}, "patience must be an integer >= 1 or null, got 2.5"),
    ({"dataset": "imdb"}, "dataset must be one of sst2, snli, got 'imdb'"),
    ({"loss": "focal"}, "loss must be a registered loss (ce, "),
    ({"profile": "huge"}, "unknown profile 'huge'"),
    ({"pooling": "max"}, "pooling must be null or one of cls, mean, last, got 'max'"),
    ({"model": ""}, "model must be a non-empty string"),
    ({"loss_params": {"gamma": 2}}, "loss_params ['gamma'] are not accepted by loss 'ce'; allowed: none"),
])
def test_bad_config_values_raise_naming_the_value(overrides, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**overrides)
    assert message in str(err.value)


def test_config_round_trips_hashes_and_ids(tmp_path):
    cfg = TrainConfig(loss="test_scaled_ce", loss_params={"scale": 0.5}, lr=1)
    assert cfg.loss_params == (("scale", 0.5),) and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert hash(cfg) == hash(TrainConfig(loss="test_scaled_ce", loss_params=[("scale", 0.5)], lr=1.0))
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_json(path) == cfg and TrainConfig.from_json(path).run_id() == cfg.run_id()
    assert len(cfg.run_id()) == 12 and cfg.run_id() != TrainConfig(loss="test_scaled_ce", seed=1).run_id()
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        TrainConfig.from_json(path)


def test_registered_loss_plugs_into_the_loop(world, tmp_path):
    folder = train(config(world, loss="test_scaled_ce", loss_params={"scale": 0.5}, epochs=1), runs_root=tmp_path)
    curve = metrics(folder)["train_loss"]
    assert folder.name.startswith("sst2-test_scaled_ce-") and [e["step"] for e in curve] == [4, 8, 12]
    assert all(e["scaled"] == pytest.approx(e["loss"]) for e in curve)


def test_early_stopping_keeps_the_best_evaluation(world, tmp_path):
    folder = train(config(world, lr=1e-12, eval_every=None, checkpoint_every=None, patience=1), runs_root=tmp_path)
    m = metrics(folder)
    assert m["stopped_early"] and m["steps"] == 24 and m["best_step"] == 12 and m["best_epoch"] == 1.0
    assert [e["step"] for e in m["val_accuracy"]] == [12, 24]


def test_dynamic_padding_pads_only_to_the_batch_max(world):
    ds = datasets.Dataset.from_dict({"premise": ["a", "a b c d e f g h i j k l", "a b"],
                                     "hypothesis": ["x", "y", "z z"], "label": [0, 1, 2]})
    single = encode(world.tokenizer, ds, ("premise",), max_length=8)
    assert single.lengths.tolist() == [3, 8, 4]  # [CLS] ... [SEP], the long one truncated to max_length
    batch = PadCollator(world.tokenizer.pad_token_id)([single[0], single[2]])
    assert batch["input_ids"].shape == (2, 4) and batch["attention_mask"].sum(1).tolist() == [3, 4]
    assert batch["input_ids"][0, 3] == world.tokenizer.pad_token_id
    assert batch["labels"].tolist() == [0, 2] and batch["index"].tolist() == [0, 2]
    left = PadCollator(world.tokenizer.pad_token_id, "left")([single[0], single[2]])
    assert left["attention_mask"][0].tolist() == [0, 1, 1, 1]
    pairs = encode(world.tokenizer, ds, ("premise", "hypothesis"), max_length=32)
    assert pairs[2]["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]  # [CLS] a b [SEP] z z [SEP]
    lengths = np.random.default_rng(0).integers(3, 40, size=500)
    fake = batching.Encoded({"input_ids": [[5] * n for n in lengths]}, [0] * 500)
    for rows in LengthBucketSampler(lengths, 16, seed=0):
        assert PadCollator(0)([fake[i] for i in rows])["input_ids"].shape == (len(rows), lengths[rows].max())


def test_length_bucket_sampler_is_seeded_complete_and_groups_lengths():
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    sampler = LengthBucketSampler(lengths, 8, seed=3, bucket=5)
    epoch0 = list(sampler)
    assert len(epoch0) == len(sampler) == 125 and sorted(i for b in epoch0 for i in b) == list(range(1000))
    assert list(sampler) == epoch0
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    spread = np.mean([np.ptp(lengths[b]) for b in epoch0])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.random.default_rng(0).permutation(1000).reshape(-1, 8)])
    assert spread < random_spread / 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accelerate_launch_runs_two_cpu_processes(world, tmp_path):
    root = fake_project(tmp_path)
    cfg = config(world, epochs=2, checkpoint_every=None, eval_every=None)
    (root / "config.json").write_text(json.dumps(cfg.to_dict()))
    # `--cpu` alone starts one process (several need mpirun); `--multi_gpu` starts them through torchrun and
    # ACCELERATE_USE_CPU=1 makes each a gloo CPU process (DistributedType.MULTI_CPU).
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "compnb.cli", "train", "--config", "config.json"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=240,
                          env=os.environ | {"OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    folder = run_dir(cfg, root / "results" / "smoke" / "runs")
    assert done.stdout.split() == [str(folder)]
    m = metrics(folder)
    assert m["num_processes"] == 2 and m["steps"] == 12 and m["validation"]["n"] == 64
    assert m["train_examples"] == 192 and m["validation"]["accuracy"] > 0.5


def test_cli_train_and_evaluate_end_to_end(world, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(fake_project(tmp_path))
    Path("c.json").write_text(json.dumps(config(world, epochs=2).to_dict()))
    assert cli.main(["train", "--config", "c.json"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == run_dir(config(world, epochs=2), tmp_path / "project" / "results" / "smoke" / "runs")
    assert (folder / "metrics.json").is_file()
    assert cli.main(["evaluate", "--run", str(folder), "--dataset", "adv_sst2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((folder / "eval-adv_sst2-validation.json").read_text())
    assert printed == written and written["n"] == 32 and written["dataset"] == "adv_sst2"
    assert written["run_id"] == folder.name.rsplit("-", 1)[1]


@pytest.mark.parametrize("argv, config_values, message", [
    (["train", "--config", "c.json"], {"lr": -1}, "lr must be a number > 0, got -1"),
    (["train", "--config", "c.json"], {"dataset": "imdb"}, "dataset must be one of sst2, snli, got 'imdb'"),
    (["train", "--config", "c.json"], {"learning_rate": 0.1}, "unknown config key(s) ['learning_rate']"),
    (["train", "--config", "c.json"], {"model": "/no/such/model"}, "cannot load model '/no/such/model'"),
    (["train", "--config", "missing.json"], {}, "missing.json"),
    (["evaluate", "--run", "RUN", "--dataset", "snli"], {}, "dataset 'snli' has labels ['entailment'"),
    (["evaluate", "--run", "RUN", "--dataset", "imdb"], {}, "unknown dataset 'imdb'"),
    (["evaluate", "--run", "RUN", "--dataset", "sst2", "--split", "dev"], {}, "unknown split 'dev'"),
    (["evaluate", "--run", "nowhere", "--dataset", "sst2"], {}, "'nowhere' is not a finished training run"),
])
def test_cli_bad_input_exits_2_clearly_and_writes_nothing(world, reference, tmp_path, monkeypatch, capsys,
                                                           argv, config_values, message):
    root = fake_project(tmp_path)
    monkeypatch.chdir(root)
    run = shutil.copytree(reference, tmp_path / "run")
    Path("c.json").write_text(json.dumps({"model": str(world.backbone), "profile": "smoke"} | config_values))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert cli.main([str(run) if a == "RUN" else a for a in argv]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_empty_text_and_over_long_max_length_are_clear_errors(world):
    ds = datasets.Dataset.from_dict({"sentence": ["fine", "  ", "also fine"], "label": [0, 1, 0]})
    with pytest.raises(ValueError, match=r"'sentence' of row 1 is empty \('  '\)"):
        encode(world.tokenizer, ds, ("sentence",), max_length=16)
    with pytest.raises(ValueError, match=r"max_length 4096 exceeds what the model takes \(512 tokens\); allowed: 8..512"):
        encode(world.tokenizer, ds.select([0]), ("sentence",), max_length=4096)


def test_competency_loss_at_lambda_zero_is_plain_cross_entropy_bit_for_bit(world, tmp_path):
    plain = train(config(world, epochs=1, eval_every=None, checkpoint_every=None), runs_root=tmp_path)
    zero = train(config(world, epochs=1, eval_every=None, checkpoint_every=None, loss="competency",
                        loss_params={"lam": 0.0, "form": "inverse"}), runs_root=tmp_path)
    assert zero.name.startswith("sst2-competency-")
    same_results(plain, zero)


@pytest.mark.parametrize("method", ["gradient", "mask"])
def test_competency_loss_trains_through_the_loop_and_logs_its_entropy(world, tmp_path, method):
    folder = train(config(world, epochs=1, eval_every=None, checkpoint_every=None, loss="competency",
                          loss_params={"lam": 0.5, "form": "subtract", "method": method}), runs_root=tmp_path)
    curve = metrics(folder)["train_loss"]
    assert all(0 <= e["H_topk"] <= np.log(5) + 1e-6 for e in curve)
    assert all(e["loss"] == pytest.approx(e["ce"] - 0.5 * e["H_topk"], abs=1e-5) for e in curve)


def test_extra_training_rows_join_the_run_and_pin_their_content(world, tmp_path):
    extra = tmp_path / "extra.parquet"
    _sentences(40, 7).to_parquet(extra)
    plain = config(world, epochs=1)
    more = config(world, epochs=1, extra_train=str(extra))
    assert "extra_train" not in plain.to_dict() and more.extra_train_sha256 and more.run_id() != plain.run_id()
    assert TrainConfig.from_dict(more.to_dict()) == more
    folder = train(more, runs_root=tmp_path / "runs")
    assert metrics(folder)["train_examples"] == 192 + 40
    assert [s["split"] for s in json.loads((folder / "run.json").read_text())["data_sources"]] == \
        ["train", "extra", "validation"]
    saved = more.to_dict()
    _sentences(41, 7).to_parquet(extra)  # the file changes: the saved config no longer matches it
    with pytest.raises(ValueError, match="has changed since this config was made"):
        TrainConfig.from_dict(saved)
    with pytest.raises(ValueError, match="extra_train must be a Parquet file"):
        config(world, extra_train=str(tmp_path / "missing.parquet"))
    with pytest.raises(ValueError, match="extra_train_sha256 must be null when extra_train is"):
        config(world, extra_train_sha256="abc")


def _copy_world_data(world, target: Path) -> Path:
    shutil.copytree(world.data, target)
    return target


def test_a_cached_run_is_not_reused_when_its_data_changed_under_the_same_name(world, tmp_path, monkeypatch):
    """The issue's case: a run trained on a modified sst2/train.parquet, then the same config on the normal
    data, must not hand back the first run's folder."""
    modified = _copy_world_data(world, tmp_path / "modified")
    frame = pd.read_parquet(modified / "sst2" / "train.parquet")
    frame.assign(label=1 - frame["label"]).to_parquet(modified / "sst2" / "train.parquet")  # same rows, other labels
    cfg = config(world, epochs=1, eval_every=None, checkpoint_every=None, max_train_examples=8, max_eval_examples=8)
    monkeypatch.setenv("COMPNB_DATA_DIR", str(modified))
    folder = train(cfg, runs_root=tmp_path / "runs")
    sources = json.loads((folder / "run.json").read_text())["data_sources"]
    assert all(len(s["sha256"]) == 64 for s in sources) and json.loads((folder / "run.json").read_text())["weights"]
    assert train(cfg, runs_root=tmp_path / "runs") == folder  # same data: reused
    monkeypatch.setenv("COMPNB_DATA_DIR", str(world.data))
    with pytest.raises(run_cache.StaleRunError, match="now holds other content") as err:
        train(cfg, runs_root=tmp_path / "runs")
    assert str(modified / "sst2" / "train.parquet") in str(err.value)
    assert str(world.data / "sst2" / "train.parquet") in str(err.value) and "force=True" in str(err.value)
    assert train(cfg, runs_root=tmp_path / "runs", force=True) == folder  # retrains on the data named now
    assert run_cache.reuse_problem(folder, cfg) is None


def test_a_cached_run_is_not_reused_when_the_weights_changed_under_the_same_name(world, tmp_path):
    backbone = tmp_path / "backbone"
    shutil.copytree(world.backbone, backbone)
    cfg = config(world, model=str(backbone), epochs=1, eval_every=None, checkpoint_every=None, max_train_examples=8,
                 max_eval_examples=8)
    folder = train(cfg, runs_root=tmp_path / "runs")
    weights = next(backbone.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes() + b" ")  # any change of content
    with pytest.raises(run_cache.StaleRunError, match="now resolves to sha256:"):
        train(cfg, runs_root=tmp_path / "runs")


def test_a_cached_run_from_the_hub_is_checked_against_what_the_hub_serves_now(tmp_path, monkeypatch):
    """A split read from the hub has no file to hash: the run records the rows' hash and is not reused when the
    hub serves other rows, when the split now resolves to a local copy, or when the hub cannot be reached."""
    rows = {"sentence": ["a fine film", "a dull film"], "label": [1, 0], "idx": [0, 1]}

    class Served:
        def __init__(self, frame):
            self.frame = frame

        def to_pandas(self):
            return self.frame.copy()

    served = {"frame": pd.DataFrame(rows)}
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *a, **k: Served(served["frame"]))
    monkeypatch.setattr(data, "data_search_paths", lambda: [tmp_path / "no-local-copy"])
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("COMPNB_OFFLINE", raising=False)
    source = data.source_of(data.load("sst2", "train"))
    assert source["origin"] == "hub" and source["sha256"].startswith("rows:")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"data_sources": [source]}))
    cfg = TrainConfig(dataset="sst2", profile="smoke")

    def problem():
        data.current_source.cache_clear()
        return run_cache.reuse_problem(folder, cfg)

    assert problem() is None
    served["frame"] = pd.DataFrame(rows | {"label": [0, 1]})  # the hub changed the labels
    assert "the hub now serves other rows" in problem()
    local = tmp_path / "local" / "sst2"
    local.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(local / "train.parquet")
    monkeypatch.setattr(data, "data_search_paths", lambda: [tmp_path / "local"])
    assert "now resolves to the local" in problem()
    monkeypatch.setattr(data, "data_search_paths", lambda: [tmp_path / "no-local-copy"])
    monkeypatch.setenv("COMPNB_OFFLINE", "1")
    assert "cannot be reached now" in problem()


def test_cached_measurements_are_not_reused_once_what_they_read_changed(world, tmp_path, monkeypatch):
    """AdvGLUE scores are scored again when the set changed since; a measurement recorded with
    `measurements.record` is stale when its source changed; a changed validation file makes the run itself
    refuse reuse."""
    from compnb import advglue, measurements

    copy = _copy_world_data(world, tmp_path / "data")
    monkeypatch.setenv("COMPNB_DATA_DIR", str(copy))
    data.current_source.cache_clear()
    cfg = config(world, epochs=1, eval_every=None, checkpoint_every=None, max_train_examples=16, max_eval_examples=16)
    folder = train(cfg, runs_root=tmp_path / "runs")
    first = advglue.evaluate_run(folder)[0]
    assert advglue.evaluated(folder, "sst2") and len(first["source"]["sha256"]) == 64
    measurements.record(folder, "probe", [data.source_of(training.validation_set(cfg))])
    assert measurements.stale(folder, "probe") is None
    run_cache.require_reusable(folder, cfg)

    adv = pd.read_parquet(copy / "adv_glue" / "adv_sst2.parquet")
    adv.assign(label=1 - adv["label"]).to_parquet(copy / "adv_glue" / "adv_sst2.parquet")
    data.current_source.cache_clear()
    assert not advglue.evaluated(folder, "sst2")
    again = advglue.evaluate_run(folder)[0]
    assert again["source"]["sha256"] != first["source"]["sha256"] and advglue.evaluated(folder, "sst2")

    val = pd.read_parquet(copy / "sst2" / "validation.parquet")
    val.assign(label=1 - val["label"]).to_parquet(copy / "sst2" / "validation.parquet")
    data.current_source.cache_clear()
    assert "sst2/validation was" in measurements.stale(folder, "probe")
    with pytest.raises(run_cache.StaleRunError, match="now holds other content"):
        run_cache.require_reusable(folder, cfg)


def test_a_measurement_recorded_before_fingerprints_is_compared_by_its_row_count():
    from compnb import measurements

    old = {"dataset": "adv_sst2", "split": "validation", "location": "old-copy/adv_sst2.parquet", "rows": 148}
    now = {"dataset": "adv_sst2", "split": "validation", "location": "data/adv_glue/adv_sst2.parquet", "rows": 148,
           "sha256": "ab" * 32}
    assert measurements.changed(old, now) is None
    assert "was old-copy/adv_sst2.parquet (sha256 unknown)" in measurements.changed(old | {"rows": 147}, now)
    assert "(sha256 unknown)" in measurements.changed(old | {"rows": 147, "sha256": None}, now)  # a record written later
    assert measurements.changed(now, now) is None
    assert measurements.changed(now | {"sha256": "cd" * 32}, now) is not None
