"""Benchmark: every training method of chapters 3 and 5 on the papers' own backbones, at their real sizes.

    python benchmarks/bench_paper_scale.py [--json results/full/paper-scale/bench.json] [--merge OLD.json]
        [--models electra-small,opt-1.3b,llama-2-7b] [--llama-variants lora,bf16] [--methods ...]
        [--batch 16] [--length 128] [--steps 5] [--warmup 1] [--cell-seconds 60] [--peak-tflops X]
    python benchmarks/bench_paper_scale.py --quick      # CPU smoke check: tiny configs, one step each

Backbones are random-initialised from configs written here (no download): ELECTRA-small
(google/electra-small-discriminator: hidden 256, embeddings 128, 12 layers, 4 heads, MLP 1024, vocabulary
30522), OPT-1.3B (hidden 2048, 24 layers, 32 heads, MLP 8192, vocabulary 50272) and Llama-2-7B (hidden 4096,
32 layers, 32 heads, MLP 11008, vocabulary 32000), each wrapped in `compnb.models.SequenceClassifier` (the
papers' head, pooling 'mean' for the encoder and 'last' for the decoders) as the library does. The batch is
`--batch` rows of `--length` random real tokens (no padding: the mask method scores every token), two labels.

Variants: `fp32` (ELECTRA, OPT): float32 weights, AdamW in float32 (fused, one kernel per update, unless
`--foreach-adamw`), bf16 autocast, what the library's training does by default on a GPU. Llama-2-7B in float32 does not fit 80 GB (weights, gradients and AdamW's
moments alone take 108 GB), so: `bf16`, bfloat16 weights, full fine-tuning, AdamW's moments in bfloat16
(`TrainConfig(weight_dtype="bfloat16")`); `lora`, bfloat16 weights frozen, LoRA adapters (r 8, alpha 8, on
q_proj and v_proj: peft's defaults, as `TrainConfig(lora={})`; built here so that peft is not needed) in
float32 and the head trainable. With LoRA the word embeddings are frozen, so the detached IG-variance
penalty, which reaches only them, trains nothing there (the step still computes it).

Methods, each a whole training step as `compnb.training` runs it (loss under autocast, backward, gradient
clipping at 1.0, AdamW step, zero_grad), the losses called through `compnb.penalties` (the code the
registered losses run, importable without `datasets`):

- `plain`: cross-entropy;
- `competency-gradient`, `competency-mask`: chapter 3's loss (subtract form, λ 0.1, k 5) with gradient or
  mask saliency;
- `ig-differentiable`, `ig-detached`: chapter 5's loss (10-step right-Riemann IG, α 10, λ 0.1).

Per cell: ms/step (median of the timed steps after `--warmup` untimed ones, each bracketed by
`torch.cuda.synchronize()`; timing stops early once `--cell-seconds` is spent, after at least one step), peak
GiB (`torch.cuda.max_memory_allocated` over the timed steps, counted from a reset after the warm-up, so
weights, gradients and AdamW's state are in it), the ratio to the plain step of the same model and variant,
and model FLOPs utilisation. An out-of-memory error is recorded as "out of memory" for its cell and the next
cell starts from a clean allocator.

Model FLOPs (MFU counts what the method needs, not what checkpointing recomputes). Per row of T tokens, N the
parameters outside embedding tables (lookups cost no FLOPs), N_t the trainable ones among them, L layers,
d the attention width (heads × head size):

    forward                F    = 2·N·T + 4·L·T²·d          (matmuls, plus QKᵀ and AV)
    backward, activations  B_a  = 2·N·T + 8·L·T²·d          (both operands of QKᵀ and AV get gradients)
    backward, weights      B_w  = 2·N_t·T
    second order           S    = 2·N·T + 2·N_t·T + 16·L·T²·d  (backpropagating through a backward taken
                                                           with create_graph: each matmul of B_a again,
                                                           towards both of its operands)
    plain step             P    = F + B_a + B_w            (= 6·N·T + 12·L·T²·d for full fine-tuning)
    double-backward step   D    = F + B_a + (B_a + B_w) + S

per step, with B rows, R = B·T masked copies (one per real token) and n = 10 path points:
plain B·P; competency-gradient B·D; competency-mask B·P + (B + R)·P; ig-differentiable B·P + n·B·D;
ig-detached B·P + n·B·(F + B_a). Elementwise work (norms, softmax, GELU) and the optimizer are not counted.
MFU = model FLOPs / step time / the card's dense bf16 peak (H100 SXM and H200: 989 TFLOP/s; H100 PCIe 756;
H100 NVL 835; A100 312; others: give `--peak-tflops`). `flop_ratio` is a method's model FLOPs over plain's.

Memory: the mask method's copies and IG's path points go through the model in chunks sized by
`compnb.saliency`'s memory budget (half the free GPU memory by default; `COMPNB_MEMORY_BUDGET` overrides it,
e.g. `COMPNB_MEMORY_BUDGET=20GiB`); the JSON records the setting.

The JSON (`--json`) holds the device, torch and transformers versions, the git commit, the settings and one
row per cell, written again after every cell (a run cut short keeps what it measured). `--merge OLD.json`
copies in the rows of OLD.json (another invocation's `--json`, same device and settings required) for the
models and variants this run does not measure, so the backbones can be measured in separate invocations
(OLD.json may be the `--json` path itself).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # a copied work tree needs no install

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from torch import nn  # noqa: E402
from transformers import AutoModel, ElectraConfig, LlamaConfig, OPTConfig, PretrainedConfig  # noqa: E402

from compnb import penalties  # noqa: E402  (torch + transformers only; compnb.training would need datasets)
from compnb.models import SequenceClassifier  # noqa: E402
from compnb.provenance import git_state  # noqa: E402
from compnb.saliency import MEMORY_BUDGET_ENV  # noqa: E402

METHODS = ("plain", "competency-gradient", "competency-mask", "ig-differentiable", "ig-detached")
OOM = "out of memory"
GIB = 2**30
LORA = {"r": 8, "alpha": 8.0, "target_modules": ("q_proj", "v_proj")}  # compnb.training.LORA_DEFAULTS via peft
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.4), ("H200", 989.4),
                    ("H100", 989.4), ("A100", 312.0))  # dense; first match wins


def electra_small(quick: bool) -> PretrainedConfig:
    if quick:
        return ElectraConfig(vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    return ElectraConfig(vocab_size=30522, embedding_size=128, hidden_size=256, num_hidden_layers=12,
                         num_attention_heads=4, intermediate_size=1024, max_position_embeddings=512,
                         type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0.1,
                         attention_probs_dropout_prob=0.1, pad_token_id=0)


def opt_1_3b(quick: bool) -> PretrainedConfig:
    size = (dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=2,
                 max_position_embeddings=64, word_embed_proj_dim=32) if quick else
            dict(vocab_size=50272, hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32,
                 max_position_embeddings=2048, word_embed_proj_dim=2048))
    return OPTConfig(**size, do_layer_norm_before=True, activation_function="relu", dropout=0.1,
                     attention_dropout=0.0, enable_bias=True, pad_token_id=1, bos_token_id=2, eos_token_id=2)


def llama_2_7b(quick: bool) -> PretrainedConfig:
    size = (dict(vocab_size=1000, hidden_size=32, intermediate_size=88, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2, max_position_embeddings=64) if quick else
            dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096))
    # pad_token_id: Llama-2 has none; the library pads with EOS (2) and records it, as here
    return LlamaConfig(**size, rms_norm_eps=1e-5, hidden_act="silu", rope_theta=10000.0, attention_bias=False,
                       tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=2)


@dataclass(frozen=True)
class Backbone:
    name: str
    config: Callable[[bool], PretrainedConfig]
    variants: tuple[str, ...]


BACKBONES = {b.name: b for b in (Backbone("electra-small", electra_small, ("fp32",)),
                                  Backbone("opt-1.3b", opt_1_3b, ("fp32",)),
                                  Backbone("llama-2-7b", llama_2_7b, ("lora", "bf16")))}


class LoRALinear(nn.Module):
    """y = W x + b + (alpha / r)·B A x, W and b frozen; A (r, in) Kaiming-uniform and B (out, r) zero in float32,
    as peft initialises them."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base, self.scale = base, alpha / r
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=base.weight.device, dtype=torch.float32)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=base.weight.device, dtype=torch.float32)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


def add_lora(model: SequenceClassifier) -> None:
    """LoRA on the backbone's q_proj and v_proj; every other backbone weight frozen, the head trainable."""
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    targets = [(name, module) for name, module in model.backbone.named_modules()
               if name.rsplit(".", 1)[-1] in LORA["target_modules"] and isinstance(module, nn.Linear)]
    for name, module in targets:
        parent, _, child = name.rpartition(".")
        setattr(model.backbone.get_submodule(parent) if parent else model.backbone, child,
                LoRALinear(module, LORA["r"], LORA["alpha"]))


def build(backbone: Backbone, variant: str, quick: bool, device: torch.device) -> SequenceClassifier:
    """The random-initialised classifier of `backbone` in `variant`, built directly on `device`."""
    config = backbone.config(quick)
    dtype = torch.float32 if variant == "fp32" else torch.bfloat16
    torch.manual_seed(0)
    with torch.device(device):
        model = SequenceClassifier(AutoModel.from_config(config, dtype=dtype, attn_implementation="sdpa"),
                                   num_labels=2)  # the head in float32, as from_pretrained(dtype=...) gives it
    if variant == "lora":
        add_lora(model)
    return model.train()


def random_batch(model: SequenceClassifier, batch: int, length: int, device: torch.device) -> dict[str, torch.Tensor]:
    """`batch` rows of `length` random non-special token ids, all real, random labels; segment ids (all 0) for
    models that take them, as the tokenizer gives them."""
    generator = torch.Generator().manual_seed(1)
    vocab = model.backbone.config.vocab_size
    out = {"input_ids": torch.randint(3, vocab, (batch, length), generator=generator),
           "attention_mask": torch.ones(batch, length, dtype=torch.long),
           "labels": torch.randint(0, 2, (batch,), generator=generator)}
    if model.backbone.config.model_type in ("electra", "bert"):
        out["token_type_ids"] = torch.zeros(batch, length, dtype=torch.long)
    return {k: v.to(device) for k, v in out.items()}


def loss_fn(method: str) -> Callable:
    """(model, batch) -> loss, through the functions the registered losses call."""
    if method == "plain":
        return lambda model, batch: F.cross_entropy(model(**penalties.model_inputs(batch)).float(), batch["labels"])
    if method.startswith("competency-"):
        params = penalties.check_competency_params({"method": method.split("-", 1)[1]})
        return lambda model, batch: penalties.competency_terms(model, batch, params)[0]
    params = penalties.check_ig_params({"variant": method.split("-", 1)[1]})
    return lambda model, batch: penalties.ig_variance_terms(model, batch, params)[0]


def model_flops(model: SequenceClassifier, method: str, batch: int, tokens: int, n_steps: int) -> float:
    """Model FLOPs of one training step of `method` (see the module docstring)."""
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    counted = [p for p in model.parameters() if id(p) not in embedding]
    n = sum(p.numel() for p in counted)
    n_train = sum(p.numel() for p in counted if p.requires_grad)
    config = model.backbone.config
    layers, width, t = config.num_hidden_layers, config.hidden_size, tokens
    forward = 2 * n * t + 4 * layers * t * t * width
    back_act = 2 * n * t + 8 * layers * t * t * width
    back_w = 2 * n_train * t
    second = 2 * n * t + 2 * n_train * t + 16 * layers * t * t * width
    plain = forward + back_act + back_w
    double = forward + back_act + (back_act + back_w) + second
    copies = batch * tokens
    return {"plain": batch * plain, "competency-gradient": batch * double,
            "competency-mask": batch * plain + (batch + copies) * plain,
            "ig-differentiable": batch * plain + n_steps * batch * double,
            "ig-detached": batch * plain + n_steps * batch * (forward + back_act)}[method]


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS if key in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (isinstance(err, RuntimeError) and "out of memory" in str(err))


def time_cell(model: SequenceClassifier, batch: dict, method: str, args, device: torch.device) -> dict:
    """Warm-up, then timed training steps of `method`: {ms_steps, peak_gib} or {status: out of memory}."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": 0.01},
                                   {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}],
                                  lr=1e-5, fused=None if args.foreach_adamw or device.type != "cuda" else True)
    compute = loss_fn(method)
    weights16 = next(model.backbone.parameters()).dtype != torch.float32
    # On a GPU bf16 autocast always (accelerate's mixed precision); on a CPU only over 16-bit weights (the
    # library's _cpu_autocast).
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else
                torch.autocast("cpu", dtype=torch.bfloat16) if weights16 else nullcontext())

    def step() -> None:
        with autocast:
            loss = compute(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    result: dict = {}
    try:
        for _ in range(args.warmup):
            step()
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times: list[float] = []
        while len(times) < args.steps and (not times or sum(times) < args.cell_seconds):
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times.append(time.perf_counter() - start)
        result = {"status": "ok", "ms_steps": [round(1000 * s, 3) for s in times],
                  "ms_per_step": round(1000 * statistics.median(times), 3)}
        if device.type == "cuda":
            result["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 3)
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not is_oom(err):
            raise
        result = {"status": OOM, "error": str(err).splitlines()[0][:300]}
    # outside the except block, so the traceback's frames (and the tensors they hold) are gone
    optimizer.zero_grad(set_to_none=True)
    del optimizer
    model.zero_grad(set_to_none=True)
    free(device)
    return result


def settings_of(args, device: torch.device) -> dict:
    return {"batch": args.batch, "length": args.length, "steps": args.steps, "warmup": args.warmup,
            "cell_seconds": args.cell_seconds, "quick": args.quick, "autocast": "bf16" if device.type == "cuda" else
            "bf16 over 16-bit weights only", "optimizer": "AdamW (foreach)" if args.foreach_adamw or device.type != "cuda" else "AdamW (fused)",
            "grad_clip": 1.0, "lr": 1e-5, "competency": penalties.COMPETENCY_DEFAULTS,
            "ig_variance": penalties.IG_DEFAULTS, "lora": {**LORA, "target_modules": list(LORA["target_modules"])},
            MEMORY_BUDGET_ENV: os.environ.get(MEMORY_BUDGET_ENV) or "default (half the free GPU memory)"}


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def table(rows: list[dict]) -> str:
    frame = pd.DataFrame([{"model": r["model"], "variant": r["variant"], "method": r["method"],
                           "ms/step": r.get("ms_per_step"), "x plain": r.get("ratio_to_plain"),
                           "peak GiB": r.get("peak_gib"), "FLOP ratio": r.get("flop_ratio"),
                           "MFU %": None if r.get("mfu") is None else round(100 * r["mfu"], 1),
                           "status": r["status"]} for r in rows])
    return frame.astype(object).where(frame.notna(), "-").to_string(index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    parser.add_argument("--merge", type=Path, default=None,
                        help="a JSON of an earlier invocation whose other models' rows go into this one's")
    parser.add_argument("--models", default=",".join(BACKBONES), help=f"comma-separated, of {', '.join(BACKBONES)}")
    parser.add_argument("--llama-variants", default="lora,bf16", help="of lora, bf16")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per cell (at most)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (AdamW's state, allocator)")
    parser.add_argument("--cell-seconds", type=float, default=60.0, help="stop timing a cell after this long")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak, if not known")
    parser.add_argument("--foreach-adamw", action="store_true",
                        help="torch's default multi-tensor AdamW (the library uses the fused one on a GPU)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--quick", action="store_true", help="tiny configs, batch 4 x 16, one step: a smoke check")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.quick:
        args.batch, args.length, args.steps, args.warmup = min(args.batch, 4), min(args.length, 16), 1, 1
    elif device.type != "cuda":
        parser.error("real sizes need a GPU; use --quick for a CPU smoke check")
    models = [m for m in args.models.split(",") if m]
    methods = [m for m in args.methods.split(",") if m]
    llama_variants = tuple(v for v in args.llama_variants.split(",") if v)
    for bad, allowed in ((set(models) - set(BACKBONES), BACKBONES), (set(methods) - set(METHODS), METHODS),
                         (set(llama_variants) - {"lora", "bf16"}, ("lora", "bf16"))):
        if bad:
            parser.error(f"unknown {', '.join(sorted(bad))}; allowed: {', '.join(allowed)}")
    if "plain" not in methods:
        methods.insert(0, "plain")  # the ratios need it

    peak = peak_tflops(device, args.peak_tflops)
    record = {"benchmark": "paper-scale", "device": torch.cuda.get_device_name(device) if device.type == "cuda"
              else f"CPU ({torch.get_num_threads()} threads)", "peak_bf16_tflops": peak,
              "torch": torch.__version__, "transformers": transformers.__version__,
              "python": platform.python_version(), "git": git_state(ROOT), "settings": settings_of(args, device),
              "rows": []}
    measured = {(m, v) for m in models for v in (llama_variants if m == "llama-2-7b" else BACKBONES[m].variants)}
    if args.merge is not None:
        old = json.loads(args.merge.read_text())
        if (old.get("device"), old.get("settings")) != (record["device"], record["settings"]):
            sys.exit(f"--merge: {args.merge} was measured on {old.get('device')} or with other settings "
                     f"({old.get('settings')}); nothing merged")
        record["rows"] = [r for r in old["rows"] if (r["model"], r["variant"]) not in measured]
    print(f"{record['device']}; torch {torch.__version__}, transformers {transformers.__version__}; "
          f"batch {args.batch} x {args.length}; peak {peak} TFLOP/s", flush=True)

    for name in models:
        backbone = BACKBONES[name]
        for variant in (llama_variants if name == "llama-2-7b" else backbone.variants):
            start = time.perf_counter()
            try:
                model = build(backbone, variant, args.quick, device)
            except (torch.OutOfMemoryError, RuntimeError) as err:
                if not is_oom(err):
                    raise
                model = None
            if model is None:
                free(device)
                for method in methods:
                    record["rows"].append({"model": name, "variant": variant, "method": method, "status": OOM})
                continue
            params = {"params": sum(p.numel() for p in model.parameters()),
                      "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
            print(f"{name} ({variant}): {params['params'] / 1e6:.1f} M parameters, {params['trainable'] / 1e6:.1f} M "
                  f"trainable, built in {time.perf_counter() - start:.1f} s", flush=True)
            batch = random_batch(model, args.batch, args.length, device)
            plain_ms = plain_flops = None
            for method in methods:
                flops = model_flops(model, method, args.batch, args.length, penalties.IG_DEFAULTS["n_steps"])
                row = {"model": name, "variant": variant, "method": method, **params, "model_tflop": flops / 1e12}
                row.update(time_cell(model, batch, method, args, device))
                if method == "plain":
                    plain_ms, plain_flops = row.get("ms_per_step"), flops
                row["flop_ratio"] = round(flops / plain_flops, 3) if plain_flops else None
                if row["status"] == "ok":
                    row["ratio_to_plain"] = round(row["ms_per_step"] / plain_ms, 3) if plain_ms else None
                    row["mfu"] = round(flops / (row["ms_per_step"] / 1000) / (peak * 1e12), 4) if peak else None
                record["rows"].append(row)
                print(f"  {method:20s} {row['status']:14s} {row.get('ms_per_step', '-')!s:>10} ms  "
                      f"x{row.get('ratio_to_plain', '-')!s:<7} {row.get('peak_gib', '-')!s:>7} GiB  "
                      f"MFU {row.get('mfu', '-')}", flush=True)
                if args.json is not None:
                    write_json(args.json, record)
            del model, batch
            free(device)
    print()
    print(table(record["rows"]))
    if args.json is not None:
        write_json(args.json, record)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
