"""Benchmark: the cost of a training step that backpropagates through gradient saliency, relative to a
plain cross-entropy step, all variants measured in one run on the same batch and model.

    python benchmarks/bench_saliency_step.py [--dataset sst2|snli] [--batch 64] [--length 64] [--iters 30]
        [--epoch] [--json results/full/03-modified-loss/step-benchmark-sst2.json]

- plain:  forward, CE, backward, AdamW step;
- naive:  plain forward for CE plus a second, eval-mode forward inside `GradientSaliency.attribute(
          differentiable=True)` for S; loss CE − λ·H(top-k S); backward through both graphs;
- fused:  one forward from input embeddings; ∂CE/∂embeddings with create_graph on that same graph; the
          same loss; one backward (S then sees the training forward, dropout included);
- shared: as fused, but ∂CE/∂parameters comes out of the same create_graph backward as ∂CE/∂embeddings,
          so the final backward runs through the penalty alone;
- loss:gradient, loss:mask: chapter 3's registered competency loss (`compnb.losses`, subtract form, λ 0.5,
          k 5) with each saliency method, as the training loop calls it (mask: one batched forward of the
          batch and one masked copy per real token).
On CUDA steps run under bf16 autocast; the double-backward variants use the MATH SDPA kernel where needed.
With `--epoch`, the same run also times one epoch of all of SST-2 train through `compnb.training.train`
(batch 32, at most 128 tokens, the chapter-2 settings) and prints its wall time and examples/s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from compnb import atomicio, data, losses, training
from compnb.models import SequenceClassifier
from compnb.provenance import git_state
from compnb.saliency import GradientSaliency, masked_softmax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--dataset", choices=("sst2", "snli"), default="sst2",
                        help="the text of the batch: SST-2 sentences or SNLI premise/hypothesis pairs")
    parser.add_argument("--epoch", action="store_true", help="also time one epoch of SST-2 train")
    parser.add_argument("--json", type=Path, default=None, help="also write the timings to this JSON file")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = data.spec(args.dataset)
    model, tok = SequenceClassifier.from_pretrained(num_labels=len(spec.label_names))
    model.to(device).train()
    ds = data.load(args.dataset, "train")
    texts = [data.column(ds, f)[: args.batch] for f in spec.text_fields]
    enc = tok(*texts, truncation=True, max_length=args.length, padding="longest", return_tensors="pt")
    ids, mask = enc["input_ids"][: args.batch].to(device), enc["attention_mask"][: args.batch].to(device)
    labels = torch.as_tensor(data.column(ds, "label")[: args.batch], device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    lam, k = 0.5, 5

    def plain() -> None:
        with autocast:
            loss = F.cross_entropy(model(input_ids=ids, attention_mask=mask), labels)
        loss.backward()

    def naive() -> None:
        with autocast:
            ce = F.cross_entropy(model(input_ids=ids, attention_mask=mask), labels)
            s = GradientSaliency(model).attribute(ids, mask, labels, differentiable=True)
            loss = ce - lam * losses.topk_entropy(s, k).mean()
        loss.backward()

    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def fused() -> None:  # S from the training forward's own graph (`compnb.losses.gradient_s`)
        with autocast:
            logits, s = losses.gradient_s(model, batch)
            loss = F.cross_entropy(logits.float(), labels) - lam * losses.topk_entropy(s, k).mean()
        loss.backward()

    def shared() -> None:
        # fused, but ∂CE/∂θ comes from the same create_graph backward that gives ∂CE/∂embeddings, so only
        # the penalty is backpropagated afterwards (one backward pass fewer)
        with autocast, sdpa_kernel(SDPBackend.MATH):
            embeds = model.embeddings(ids)
            logits = model(inputs_embeds=embeds, attention_mask=mask)
            per_example = F.cross_entropy(logits, labels, reduction="none")
            grads = torch.autograd.grad(per_example.mean(), [embeds, *params], create_graph=True,
                                        allow_unused=True)
            norms = torch.linalg.vector_norm(grads[0].float(), dim=-1).masked_fill(~mask.bool(), 0.0)
            penalty = -lam * losses.topk_entropy(masked_softmax(norms * len(ids), mask), k).mean()
        penalty.backward()
        for p, g in zip(params, grads[1:]):
            if g is not None:
                p.grad = g.detach() if p.grad is None else p.grad.add_(g.detach())

    def competency(method: str):
        def step() -> None:  # the registered loss, as the training loop calls it
            with autocast:
                loss, _, _ = losses.competency_loss(model, batch, {"lam": lam, "form": "subtract", "method": method,
                                                                   "k": k})
            loss.backward()
        return step

    def timed(step) -> float:
        for _ in range(5):
            step(); opt.step(); opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.iters):
            step(); opt.step(); opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / args.iters * 1e3

    times = {name: timed(fn) for name, fn in (("plain", plain), ("naive", naive), ("fused", fused),
                                                         ("shared", shared), ("loss:gradient", competency("gradient")),
                                                         ("loss:mask", competency("mask")))}
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    shape = f"{args.dataset} batch {args.batch} × {ids.shape[1]} tokens ({int(mask.sum())} real)"
    print(f"{name}, MiniLM-L6, {shape}, {args.iters} timed steps")
    for key, ms in times.items():
        print(f"  {key:13s} {ms:8.2f} ms/step   ×{ms / times['plain']:.2f} of plain")
    if args.json is not None:
        atomicio.write_json(args.json, {"device": name, "dataset": args.dataset, "batch": args.batch,
                                        "tokens": ids.shape[1], "real_tokens": int(mask.sum()), "iters": args.iters,
                                        "ms_per_step": times, "ratio": {k: v / times["plain"] for k, v in times.items()},
                                        "git": git_state()})
    if args.epoch:
        print(one_epoch())


def one_epoch() -> str:
    """Train one epoch of SST-2 (67,349 examples) with the chapter-2 settings; its wall time and speed."""
    config = training.TrainConfig(dataset="sst2", epochs=1, batch_size=32, lr=5e-5, max_length=128,
                                  patience=None, profile="full")
    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        metrics = json.loads((training.train(config, runs_root=runs) / "metrics.json").read_text())
        wall = time.perf_counter() - start
    return (f"one SST-2 epoch: {metrics['train_time_s']:.1f} s training ({metrics['train_examples_per_s']:.0f} "
            f"examples/s), {wall:.1f} s wall with loading and validation; val accuracy "
            f"{metrics['validation']['accuracy']:.4f}")


if __name__ == "__main__":
    main()
