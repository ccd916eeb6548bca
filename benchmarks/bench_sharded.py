"""Several GPUs of one host: data parallel (DDP) and sharded (FSDP2) training steps through accelerate, for the
plain loss and chapter 3's competency loss with gradient saliency (the first paper's Table 2 and 4 rows), on
random-initialised real-size backbones. One process per GPU:

    torchrun --nproc_per_node 4 benchmarks/bench_sharded.py --strategy ddp --check --models opt-1.3b --json J
    torchrun --nproc_per_node 4 benchmarks/bench_sharded.py --strategy fsdp2 --check --models llama-2-7b \
        --json J --merge J          (J: results/full/paper-scale/sharded.json)

`--check` (a correctness test on real GPUs, before any timing): a 2-layer Llama-architecture model in float32
without autocast; every rank holds an unsharded copy and computes the gradient of the subtract-form
competency loss (λ 0.5, gradient saliency) on the whole batch (`--batch` rows per rank × ranks); the DDP and
the FSDP2 model (accelerate's FSDP2 plugin, every decoder layer its own unit) each take their rank's rows.
Recorded: the largest absolute difference of any weight gradient (FSDP2's gathered with `full_tensor`),
relative to the largest gradient.

Timing (`--strategy ddp` or `fsdp2`, one per invocation: accelerate keeps one state per process): each backbone of `bench_paper_scale.py` built on every rank from one seed,
float32 weights, accelerate's bf16 mixed precision (FSDP2: bf16 compute copies of the gathered weights,
gradients reduced in float32, AdamW on each rank's float32 shard), `--batch` rows × `--length` tokens per
rank; warm-up step(s), then timed steps (median ms, the slowest rank's), peak GiB (the largest rank's
`max_memory_allocated`), and model FLOPs utilisation over all ranks against the card's bf16 peak
(`bench_paper_scale.model_flops`). An out-of-memory error on any rank is recorded as such for the cell.
The JSON holds the device, the number of GPUs, torch, accelerate and transformers versions, the git commit
and one row per (strategy, backbone, method), written after every cell.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # bench_paper_scale
sys.path.insert(0, str(ROOT.parent / "src"))

import accelerate  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from accelerate import Accelerator, DistributedDataParallelKwargs, FullyShardedDataParallelPlugin  # noqa: E402
from bench_paper_scale import BACKBONES, GIB, OOM, is_oom, model_flops, peak_tflops, random_batch, write_json  # noqa: E402
from transformers import AutoModel, LlamaConfig  # noqa: E402

from compnb import penalties, sharding  # noqa: E402
from compnb.models import SequenceClassifier  # noqa: E402
from compnb.provenance import git_state  # noqa: E402

METHODS = ("plain", "competency-gradient")
LAYER_CLASSES = {"llama-2-7b": "LlamaDecoderLayer", "opt-1.3b": "OPTDecoderLayer", "electra-small": "ElectraLayer",
                 "check": "LlamaDecoderLayer"}
CHECK_PARAMS = {"method": "gradient", "form": "subtract", "lam": 0.5}


def accelerator_for(strategy: str, model_name: str, mixed_precision: str) -> Accelerator:
    """An Accelerator for `strategy`: DDP, or FSDP2 with every transformer layer a unit."""
    if strategy == "ddp":
        return Accelerator(mixed_precision=mixed_precision,
                           kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                                            transformer_cls_names_to_wrap=[LAYER_CLASSES[model_name]],
                                            reshard_after_forward=True, state_dict_type="FULL_STATE_DICT")
    return Accelerator(mixed_precision=mixed_precision, fsdp_plugin=plugin)


def loss_of(method: str, params: dict | None = None):
    if method == "plain":
        return lambda model, batch: F.cross_entropy(model(**penalties.model_inputs(batch)).float(), batch["labels"])
    return lambda model, batch: penalties.competency_terms(model, batch, params or {"method": "gradient"})[0]


def check(args, record: dict) -> None:
    """Gradients of DDP and FSDP2 against one unsharded model on the whole batch (see the docstring)."""
    config = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, pad_token_id=2)
    for strategy in [args.strategy]:
        accelerator = accelerator_for(strategy, "check", "no")
        rank, ranks, device = accelerator.process_index, accelerator.num_processes, accelerator.device
        torch.manual_seed(0)
        with torch.device(device):
            model = SequenceClassifier(AutoModel.from_config(config, attn_implementation="sdpa"), num_labels=3).eval()
            reference = SequenceClassifier(AutoModel.from_config(config, attn_implementation="sdpa"), num_labels=3)
        reference.load_state_dict(model.state_dict())
        reference.eval()
        whole = random_batch(model, args.batch * ranks, 32, device)
        whole["labels"] = whole["labels"] % 3
        mine = {k: v[rank * args.batch:(rank + 1) * args.batch] for k, v in whole.items()}
        loss_of("competency-gradient", CHECK_PARAMS)(reference, whole).backward()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model, optimizer = accelerator.prepare(model, optimizer)
        accelerator.backward(loss_of("competency-gradient", CHECK_PARAMS)(model, mine))
        wanted = dict(reference.named_parameters())
        inner = accelerator.unwrap_model(model)
        diffs, scale = [], max(float(p.grad.abs().max()) for p in reference.parameters())
        for name, p in inner.named_parameters():
            grad = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
            diffs.append(float((grad - wanted[name].grad).abs().max()))
        row = {"strategy": strategy, "check": "gradient vs one unsharded model on the whole batch",
               "ranks": ranks, "sharded": sharding.is_sharded(inner), "max_abs_diff": max(diffs),
               "relative": max(diffs) / scale, "distributed_type": str(accelerator.distributed_type)}
        record["checks"].append(row)
        if accelerator.is_main_process:
            print(row, flush=True)
        del model, optimizer, reference


def time_cell(accelerator: Accelerator, model, optimizer, batch: dict, method: str, args) -> dict:
    compute = loss_of(method)

    def step() -> None:
        with accelerator.autocast():
            loss = compute(model, batch)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    device = accelerator.device
    try:
        for _ in range(args.warmup):
            step()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.steps):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        mine = torch.tensor([1000 * statistics.median(times), torch.cuda.max_memory_allocated(device) / GIB, 0.0],
                            device=device)
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not is_oom(err):
            raise
        mine = torch.tensor([0.0, 0.0, 1.0], device=device)
    optimizer.zero_grad(set_to_none=True)
    worst = accelerator.reduce(mine, "max").tolist()
    if worst[2]:
        return {"status": OOM}
    return {"status": "ok", "ms_per_step": round(worst[0], 3), "peak_gib": round(worst[1], 3)}


def bench(args, record: dict, name: str) -> None:
    strategy = args.strategy
    accelerator = accelerator_for(strategy, name, "bf16")
    device, ranks = accelerator.device, accelerator.num_processes
    torch.manual_seed(0)
    with torch.device(device):
        model = SequenceClassifier(AutoModel.from_config(BACKBONES[name].config(False), dtype=torch.float32,
                                                         attn_implementation="sdpa"), num_labels=2).train()
    batch = random_batch(model, args.batch, args.length, device)
    params = sum(p.numel() for p in model.parameters())
    flops = {m: model_flops(model, m, args.batch, args.length, 10) for m in METHODS}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    model, optimizer = accelerator.prepare(model, optimizer)
    peak = peak_tflops(device, None)
    plain_ms = None
    for method in METHODS:
        row = {"strategy": strategy, "model": name, "method": method, "ranks": ranks, "params": params,
               "batch_per_rank": args.batch, "length": args.length,
               "sharded": sharding.is_sharded(accelerator.unwrap_model(model)),
               **time_cell(accelerator, model, optimizer, batch, method, args)}
        if row["status"] == "ok":
            plain_ms = row["ms_per_step"] if method == "plain" else plain_ms
            row["ratio_to_plain"] = round(row["ms_per_step"] / plain_ms, 3) if plain_ms else None
            row["mfu"] = round(ranks * flops[method] / (row["ms_per_step"] / 1000) / (peak * 1e12), 4) if peak else None
        record["rows"].append(row)
        if accelerator.is_main_process:
            print(row, flush=True)
            if args.json:
                write_json(args.json, record)
    del model, optimizer, batch
    accelerator.free_memory()
    torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--merge", type=Path, default=None, help="keep this earlier JSON's rows for other cells")
    parser.add_argument("--check", action="store_true", help="the gradient check first")
    parser.add_argument("--strategy", required=True, choices=("ddp", "fsdp2"), help="one per invocation")
    parser.add_argument("--no-bench", action="store_true", help="only --check")
    parser.add_argument("--models", default="opt-1.3b,llama-2-7b", help=f"of {', '.join(BACKBONES)}")
    parser.add_argument("--batch", type=int, default=4, help="rows per rank")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    models = [] if args.no_bench else [m for m in args.models.split(",") if m]
    if set(models) - set(BACKBONES):
        parser.error(f"unknown {', '.join(sorted(set(models) - set(BACKBONES)))}; allowed: {', '.join(BACKBONES)}")
    record = {"benchmark": "sharded", "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
              "gpus": int(os.environ.get("WORLD_SIZE", 1)),
              "torch": torch.__version__, "accelerate": accelerate.__version__,
              "transformers": transformers.__version__, "git": git_state(ROOT.parent),
              "settings": {"batch_per_rank": args.batch, "length": args.length, "steps": args.steps,
                           "warmup": args.warmup, "optimizer": "AdamW (foreach), float32 states", "grad_clip": 1.0,
                           "mixed_precision": "bf16", "competency": penalties.COMPETENCY_DEFAULTS},
              "checks": [], "rows": []}
    if args.merge is not None and args.merge.is_file():
        old = json.loads(args.merge.read_text())
        record["checks"] = [c for c in old.get("checks", []) if not (args.check and c["strategy"] == args.strategy)]
        record["rows"] = [r for r in old.get("rows", []) if (r["strategy"], r["model"]) not in
                          {(args.strategy, m) for m in models}]
    if args.check:
        check(args, record)
    for name in models:
        bench(args, record, name)
    if args.json and int(os.environ.get("RANK", 0)) == 0:
        write_json(args.json, record)


if __name__ == "__main__":
    main()
