"""Benchmark: one training step of every registered loss, eager against captured as one CUDA graph
(`compnb.captured.CapturedStep`), on randomly initialised MiniLM-L6 and ELECTRA-small backbones, all in one run.

    python benchmarks/bench_train_step.py [--iters 30] [--losses ce competency-mask] \
        [--backbones electra-small] [--json results/full/paper-scale/train-step-benchmark.json]

For each (backbone, batch × tokens, loss): ms per step eager (the same step body, autocast's cast cache on,
fused AdamW as training uses it) and captured (replays of the graph; the capture itself is left out), examples
per second, peak GiB; the milliseconds per step in which the GPU ran a kernel or a copy (the union of the
profiler's device intervals, `torch.profiler` with CUDA activity only), for both engines, and from them the
eager step's GPU-busy share and the largest speed-up that removing idle time alone can give (eager ms / eager
busy ms: a replay launches the same kernels, so a step that keeps the GPU busy cannot gain from capture); and
an equivalence check: from the same initial state, dropout off, `--check` eager steps
and as many replays on the same batches, with the largest absolute difference of any weight (0 when
bit-identical), beside the difference between two eager runs (the noise floor of kernels that add in a varying
order, which Adam's normalisation can lift to the size of a learning rate per step). A loss that cannot be captured is recorded with PyTorch's reason. bf16 autocast, gradient
clipping at 1.0. Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import traceback
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from transformers import AutoConfig, ElectraConfig

from compnb import atomicio, captured, models, training
from compnb.penalties import COMPETENCY_DEFAULTS, IG_DEFAULTS
from compnb.provenance import git_state

BACKBONES = {
    "all-MiniLM-L6-v2": lambda: AutoConfig.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE)),
    # google/electra-small-discriminator's published config (no download: the model is random-initialised)
    "electra-small": lambda: ElectraConfig(vocab_size=30522, embedding_size=128, hidden_size=256,
                                           num_hidden_layers=12, num_attention_heads=4, intermediate_size=1024),
}
SHAPES = ((32, 64), (16, 128))
LOSSES = {
    "ce": ("ce", {}),
    "competency-gradient": ("competency", COMPETENCY_DEFAULTS | {"method": "gradient", "lam": 0.5}),
    "competency-mask": ("competency", COMPETENCY_DEFAULTS | {"method": "mask", "lam": 0.5}),
    "ig-detached": ("ig_variance", IG_DEFAULTS | {"variant": "detached"}),
    "ig-differentiable": ("ig_variance", IG_DEFAULTS | {"variant": "differentiable"}),
}


def make_batch(config, rows: int, tokens: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random token ids with real lengths between half and all of `tokens` (right padding), 2 classes."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(tokens // 2, tokens + 1, (rows,), generator=g)
    ids = torch.randint(1000, config.vocab_size, (rows, tokens), generator=g)
    mask = (torch.arange(tokens)[None, :] < lengths[:, None]).long()
    return {"input_ids": (ids * mask).to(device), "attention_mask": mask.to(device),
            "labels": torch.randint(0, 2, (rows,), generator=g).to(device)}


def build(config, seed: int, device: torch.device) -> models.SequenceClassifier:
    torch.manual_seed(seed)
    return models.SequenceClassifier.from_config(config, num_labels=2).to(device)


def groups(model: torch.nn.Module) -> list[dict]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.01},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def eager_step(model, batch, loss, params):
    """One eager training step as training runs it (fused AdamW, autocast's cast cache on), as a callable."""
    optimizer = torch.optim.AdamW(groups(model), lr=1e-4, fused=True)
    fn = training.LOSSES[loss]

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            value, _, _ = fn(model, batch, params)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return step


def captured_step(model, batch, loss, params):
    """The same step captured as one CUDA graph (captured here, by its first call) and replayed, as a callable."""
    step = captured.CapturedStep(model, captured.capturable_adamw(groups(model), 1e-4, batch["labels"].device),
                                 training.LOSSES[loss], params, max_grad_norm=1.0)
    step(batch)  # captures
    return lambda: step(batch)


def busy_ms(step, iters: int) -> float:
    """Milliseconds per step in which the GPU ran a kernel or a copy: the union of the device intervals that
    `torch.profiler` (CUDA activity only) records over `iters` steps, after 3 unrecorded ones."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            step()
        torch.cuda.synchronize()
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events() if e.device_type == DeviceType.CUDA)
    busy, reached = 0.0, float("-inf")
    for start, end in spans:  # µs
        if end > reached:
            busy, reached = busy + end - max(start, reached), end
    return busy / iters / 1000


def _time(step, iters: int) -> float:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters * 1000


def equivalence(model, batches, loss, params) -> dict:
    """Max |Δ weight| after len(batches) eager steps and as many replays, from one state, dropout off; both
    through `CapturedStep`'s own step body and the same capturable optimizer, so only capture differs."""
    eager_model, graph_model = copy.deepcopy(model).eval(), copy.deepcopy(model).eval()
    device = batches[0]["labels"].device
    eager = captured.CapturedStep(eager_model, captured.capturable_adamw(groups(eager_model), 1e-4, device),
                                  training.LOSSES[loss], params, max_grad_norm=1.0)
    for batch in batches:
        eager._body(batch)
    again_model = copy.deepcopy(model).eval()  # a second eager run: the noise floor of the GPU's own kernels
    again = captured.CapturedStep(again_model, captured.capturable_adamw(groups(again_model), 1e-4, device),
                                  training.LOSSES[loss], params, max_grad_norm=1.0)
    for batch in batches:
        again._body(batch)
    step = captured.CapturedStep(graph_model, captured.capturable_adamw(groups(graph_model), 1e-4, device),
                                 training.LOSSES[loss], params, max_grad_norm=1.0)
    for batch in batches:
        step(batch)
    torch.cuda.synchronize()
    def largest(x: torch.nn.Module, y: torch.nn.Module) -> float:
        return max(float((a - b).detach().abs().max()) for a, b in zip(x.parameters(), y.parameters()))
    diff = largest(eager_model, graph_model)
    return {"steps": len(batches), "max_abs_weight_diff": diff, "bit_identical": diff == 0.0,
            "eager_vs_eager_max_abs_diff": largest(eager_model, again_model)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--check", type=int, default=5, help="steps of the equivalence check")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--busy-iters", type=int, default=5, help="profiled steps per engine (the profiler is slow)")
    parser.add_argument("--losses", nargs="+", choices=sorted(LOSSES), default=list(LOSSES), help="default: all")
    parser.add_argument("--backbones", nargs="+", choices=list(BACKBONES), default=list(BACKBONES),
                        help="default: all")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_train_step needs a CUDA GPU; captured steps do not run on a CPU")
    training._register_builtin_losses()
    device = torch.device("cuda")
    rows = []
    record = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "git": git_state(),
              "iters": args.iters, "busy_iters": args.busy_iters, "complete": False, "rows": rows}
    for backbone in args.backbones:
        config = BACKBONES[backbone]()
        for (n, t), (name, (loss, params)) in ((s, item) for s in SHAPES for item in LOSSES.items() if item[0] in args.losses):
            batch = make_batch(config, n, t, 0, device)
            row = {"backbone": backbone, "batch": n, "tokens": t, "loss": name}
            try:
                torch.cuda.reset_peak_memory_stats()
                step = eager_step(build(config, 0, device).train(), batch, loss, params)
                row["eager ms"] = _time(step, args.iters)
                row["eager peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
                row["eager GPU-busy ms"] = busy_ms(step, args.busy_iters)
                torch.cuda.reset_peak_memory_stats()
                step = captured_step(build(config, 0, device).train(), batch, loss, params)
                row["captured ms"] = _time(step, args.iters)
                row["captured peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
                row["captured GPU-busy ms"] = busy_ms(step, args.busy_iters)
                row["eager GPU-busy share"] = row["eager GPU-busy ms"] / row["eager ms"]
                row["speed-up bound"] = row["eager ms"] / row["eager GPU-busy ms"]
                row["speed-up"] = row["eager ms"] / row["captured ms"]
                row["examples/s eager"], row["examples/s captured"] = (n / row["eager ms"] * 1000,
                                                                       n / row["captured ms"] * 1000)
                batches = [make_batch(config, n, t, s, device) for s in range(args.check)]
                row["equivalence"] = equivalence(build(config, 0, device), batches, loss, params)
            except Exception as error:  # noqa: BLE001 - recorded: which losses cannot be captured, and why
                row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                row["where"] = traceback.format_exc().strip().splitlines()[-3][:300]
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:  # after every row, so that a run cut short keeps what it measured ("complete": false)
                atomicio.write_json(args.json, record)
    record["complete"] = True
    if args.json:
        atomicio.write_json(args.json, record)


if __name__ == "__main__":
    main()
