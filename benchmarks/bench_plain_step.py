"""Where an OPT-1.3B plain training step spends its time, and what raises its model FLOPs utilisation (MFU).

    python benchmarks/bench_plain_step.py [--json results/full/paper-scale/plain-step.json] [--steps 10]

One random-initialised OPT-1.3B classifier (`bench_paper_scale.opt_1_3b`), batch × 128 random real tokens, the
plain cross-entropy step of `bench_paper_scale` (forward and backward under bf16 autocast, gradient clipping
at 1.0, AdamW, zero_grad), in these variants, each measured in this one run on one card:

- `fp32, foreach AdamW`: float32 weights, torch's default (multi-tensor) AdamW: what the library did;
- `fp32, fused AdamW`: the same with `fused=True` (one kernel for the whole update);
- `fp32, fused AdamW, compiled`: the model under `torch.compile` (default mode);
- `bf16 weights, fused AdamW`: bfloat16 weights and moments (`TrainConfig(weight_dtype="bfloat16")`; the
  head stays float32, so autocast stays on);
- `bf16 weights, fused AdamW, compiled`;
- the fp32 fused variant at batch 32 and 64 (tokens per step).

Per variant: the median step in ms, split by synchronisations into forward+backward and the rest (clipping,
AdamW, zero_grad), peak GiB, and MFU = model FLOPs (6·N·T plus attention, `bench_paper_scale.model_flops`) /
step time / the card's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from bench_paper_scale import (BACKBONES, GIB, build, free, model_flops, peak_tflops, random_batch,  # noqa: E402
                               write_json)

from compnb import penalties  # noqa: E402
from compnb.provenance import git_state  # noqa: E402

VARIANTS = (("fp32, foreach AdamW", "fp32", False, False, 16), ("fp32, fused AdamW", "fp32", True, False, 16),
            ("fp32, fused AdamW, compiled", "fp32", True, True, 16),
            ("bf16 weights, fused AdamW", "bf16", True, False, 16),
            ("bf16 weights, fused AdamW, compiled", "bf16", True, True, 16),
            ("fp32, fused AdamW, batch 32", "fp32", True, False, 32),
            ("fp32, fused AdamW, batch 64", "fp32", True, False, 64))


def measure(label: str, variant: str, fused: bool, compiled: bool, batch_size: int, args, device) -> dict:
    model = build(BACKBONES["opt-1.3b"], variant, False, device)
    flops = model_flops(model, "plain", batch_size, args.length, 10)
    batch = random_batch(model, batch_size, args.length, device)
    optimizer = torch.optim.AdamW([{"params": [p for p in model.parameters() if p.ndim >= 2], "weight_decay": 0.01},
                                   {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0}],
                                  lr=1e-5, fused=True if fused else None)
    forward = torch.compile(model) if compiled else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)  # as the library: the float32 head meets bf16 too
    inputs = penalties.model_inputs(batch)
    splits: list[tuple[float, float]] = []

    def step(timed: bool) -> None:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            loss = F.cross_entropy(forward(**inputs).float(), batch["labels"])
        loss.backward()
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if timed:
            splits.append((t1 - t0, time.perf_counter() - t1))

    start = time.perf_counter()
    for _ in range(args.warmup + (2 if compiled else 0)):
        step(False)
    warm_s = time.perf_counter() - start
    torch.cuda.reset_peak_memory_stats()
    for _ in range(args.steps):
        step(True)
    total = [a + b for a, b in splits]
    ms = 1000 * statistics.median(total)
    row = {"variant": label, "weights": variant, "fused_adamw": fused, "compiled": compiled, "batch": batch_size,
           "length": args.length, "ms_per_step": round(ms, 2),
           "ms_forward_backward": round(1000 * statistics.median(a for a, _ in splits), 2),
           "ms_clip_adamw": round(1000 * statistics.median(b for _, b in splits), 2),
           "peak_gib": round(torch.cuda.max_memory_allocated() / GIB, 2), "warmup_s": round(warm_s, 1),
           "model_tflop": flops / 1e12, "mfu": round(flops / (ms / 1000) / (args.peak * 1e12), 4)}
    del model, optimizer, forward, batch, inputs
    free(device)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default="", help="comma-separated indices into the list (default: all)")
    args = parser.parse_args()
    device = torch.device("cuda")
    args.peak = peak_tflops(device, None)
    chosen = [VARIANTS[int(i)] for i in args.variants.split(",") if i] or list(VARIANTS)
    record = {"benchmark": "plain-step", "device": torch.cuda.get_device_name(), "peak_bf16_tflops": args.peak,
              "torch": torch.__version__, "transformers": transformers.__version__,
              "python": platform.python_version(), "git": git_state(ROOT.parent),
              "settings": {"model": "opt-1.3b", "length": args.length, "steps": args.steps, "warmup": args.warmup,
                           "grad_clip": 1.0, "lr": 1e-5, "autocast": "bf16"}, "rows": []}
    for label, variant, fused, compiled, batch_size in chosen:
        try:
            row = measure(label, variant, fused, compiled, batch_size, args, device)
        except Exception as err:  # a variant that fails (compile on this stack, memory) is recorded, not fatal
            row = {"variant": label, "status": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
            free(device)
        record["rows"].append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            write_json(args.json, record)


if __name__ == "__main__":
    main()
