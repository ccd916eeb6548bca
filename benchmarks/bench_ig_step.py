"""Benchmark: the cost of a training step with the IG-variance penalty, and the completeness gap of each
quadrature, relative to a plain cross-entropy step and to 10-step right-Riemann IG, all in one run.

    python benchmarks/bench_ig_step.py [--batch 16] [--length 128] [--iters 20] [--warm-steps 300]
        [--gap-examples 512] [--json results/full/05-ig-variance/ig-benchmark.json]

The model is MiniLM fine-tuned with plain cross-entropy for `--warm-steps` steps on SNLI first, so that the
gaps are those of a model that has learned something. Then, on one fixed batch of SNLI pairs:

- plain:  forward, CE, backward, AdamW step (bf16 autocast on CUDA);
- naive:  CE + λ·tanh(α·Var(IG)) with differentiable 10-step right-Riemann IG, one forward per path point,
          in float32 (what a straightforward implementation of the paper's loss does);
- the registered `ig_variance` loss (`compnb.ig_variance`: all path points in one batched forward), with
  right-Riemann or Gauss–Legendre nodes, differentiable or detached (Captum-style), float32 or bf16.

The completeness gap |Σ_t attributions − (F(x) − F(0))| (logits) of each (method, steps, precision) is
averaged over `--gap-examples` SNLI validation pairs, as a share of the mean |F(x) − F(0)|.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from compnb import atomicio, data, ig_variance, training
from compnb.models import SequenceClassifier
from compnb.provenance import git_state
from compnb.saliency import IntegratedGradients, analysis_mode

QUADRATURES = [("riemann_right", 10), ("gausslegendre", 2), ("gausslegendre", 3), ("gausslegendre", 4),
               ("gausslegendre", 5), ("gausslegendre", 6), ("gausslegendre", 10)]


def batches(tokenizer, split: str, size: int, length: int, count: int, device) -> list[dict]:
    """`count` batches of `size` SNLI pairs (in file order, shuffled by seed 0), padded to their longest."""
    ds = data.load("snli", split).shuffle(seed=0)
    out = []
    for i in range(count):
        rows = ds.select(range(i * size, (i + 1) * size))
        enc = tokenizer(data.column(rows, "premise"), data.column(rows, "hypothesis"), truncation=True,
                        max_length=length, padding="longest", return_tensors="pt")
        out.append({**{k: v.to(device) for k, v in enc.items()},
                    "labels": torch.as_tensor(data.column(rows, "label"), device=device)})
    return out


def naive_loss(model, batch: dict, lam: float = 0.1, alpha: float = 10.0, n_steps: int = 10) -> torch.Tensor:
    """CE + λ·tanh(α·Var(IG)), the IG path points one forward each, graph kept through every gradient."""
    ce = F.cross_entropy(model(**training.model_inputs(batch)), batch["labels"])
    with analysis_mode(model, True):
        x = model.embeddings(batch["input_ids"])
        total = torch.zeros_like(x)
        for step in range(1, n_steps + 1):
            point = x * (step / n_steps)
            logits = model(inputs_embeds=point, attention_mask=batch["attention_mask"],
                           token_type_ids=batch["token_type_ids"])
            target = logits.gather(1, batch["labels"][:, None]).sum()
            (grad,) = torch.autograd.grad(target, point, create_graph=True)
            total = total + grad / n_steps
        attributions = (x * total).sum(-1).masked_fill(~batch["attention_mask"].bool(), 0.0)
    variance = ig_variance.attribution_variance(attributions.float(), batch["attention_mask"]).mean()
    return ce + lam * torch.tanh(alpha * variance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warm-steps", type=int, default=300)
    parser.add_argument("--gap-examples", type=int, default=512)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = SequenceClassifier.from_pretrained(num_labels=3)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    bf16 = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext

    for batch in batches(tok, "train", args.batch, args.length, args.warm_steps, device):  # plain fine-tuning
        with bf16():
            F.cross_entropy(model(**training.model_inputs(batch)), batch["labels"]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step_batch = batches(tok, "validation", args.batch, args.length, 1, device)[0]

    def timed(loss_fn, precision) -> float:
        def step() -> None:
            with precision():
                loss = loss_fn(step_batch)
            loss.backward()
            opt.zero_grad(set_to_none=True)  # timed without optimizer updates, so every variant sees one model
        for _ in range(3):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.iters):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / args.iters * 1e3

    def registered(method: str, n: int, variant: str):
        params = {"lam": 0.1, "alpha": 10.0, "n_steps": n, "method": method, "variant": variant}
        return lambda b: ig_variance.ig_variance_loss(model, b, params)[0]

    fp32 = nullcontext
    rows = [{"variant": "plain", "method": "", "n_steps": 0, "precision": "bf16" if device.type == "cuda" else "fp32",
             "ms": timed(lambda b: F.cross_entropy(model(**training.model_inputs(b)), b["labels"]), bf16)},
            {"variant": "naive", "method": "riemann_right", "n_steps": 10, "precision": "fp32",
             "ms": timed(lambda b: naive_loss(model, b), fp32)}]
    precisions = [("fp32", fp32)] + ([("bf16", bf16)] if device.type == "cuda" else [])
    for (method, n), (precision, context) in ((q, p) for q in QUADRATURES for p in precisions):
        rows.append({"variant": "differentiable", "method": method, "n_steps": n, "precision": precision,
                     "ms": timed(registered(method, n, "differentiable"), context)})
    rows.append({"variant": "detached", "method": "riemann_right", "n_steps": 10, "precision": precisions[-1][0],
                 "ms": timed(registered("riemann_right", 10, "detached"), precisions[-1][1])})

    gap_batches = batches(tok, "validation", args.batch, args.length, max(1, args.gap_examples // args.batch), device)
    gaps = {}
    for (method, n), (precision, context) in ((q, p) for q in QUADRATURES for p in precisions):
        total_gap, total_delta = 0.0, 0.0
        for b in gap_batches:
            with context():
                _, gap = IntegratedGradients(model).attribute(
                    b["input_ids"], b["attention_mask"], b["labels"], n_steps=n, method=method,
                    return_completeness_gap=True, token_type_ids=b["token_type_ids"])
                with torch.no_grad(), analysis_mode(model, False):
                    x = model.embeddings(b["input_ids"])
                    ends = model(inputs_embeds=torch.cat([x, torch.zeros_like(x)]),
                                 attention_mask=b["attention_mask"].repeat(2, 1),
                                 token_type_ids=b["token_type_ids"].repeat(2, 1))
            at = ends.float().gather(1, b["labels"].repeat(2)[:, None]).view(2, -1)
            total_gap += float(gap.float().sum())
            total_delta += float((at[0] - at[1]).abs().sum())
        n_examples = len(gap_batches) * args.batch
        gaps[(method, n, precision)] = {"gap": total_gap / n_examples, "relative_gap": total_gap / total_delta}

    plain_ms = rows[0]["ms"]
    for row in rows:
        row["ratio"] = row["ms"] / plain_ms
        row.update(gaps.get((row["method"], row["n_steps"], row["precision"]), {"gap": None, "relative_gap": None}))
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    shape = (f"SNLI batch {args.batch} × {step_batch['input_ids'].shape[1]} tokens "
             f"({int(step_batch['attention_mask'].sum())} real)")
    print(f"{name}, MiniLM-L6 after {args.warm_steps} plain steps, {shape}, {args.iters} timed steps; "
          f"gaps over {len(gap_batches) * args.batch} validation pairs")
    for r in rows:
        gap = "" if r["gap"] is None else f"   gap {r['gap']:.4f} logits ({100 * r['relative_gap']:.2f}% of |ΔF|)"
        print(f"  {r['variant']:14s} {r['method']:13s} {r['n_steps']:2d} {r['precision']:4s} {r['ms']:8.2f} ms"
              f"  ×{r['ratio']:5.2f}{gap}")
    if args.json is not None:
        atomicio.write_json(args.json, {"device": name, "batch": args.batch, "tokens": step_batch["input_ids"].shape[1],
                                        "real_tokens": int(step_batch["attention_mask"].sum()), "iters": args.iters,
                                        "warm_steps": args.warm_steps, "gap_examples": len(gap_batches) * args.batch,
                                        "rows": rows, "torch": torch.__version__, "git": git_state()})


if __name__ == "__main__":
    main()
