"""One rank of `tests/test_sharding.py`, on a gloo CPU process group, float64, every twin in eval mode (no dropout:
the sides compared must draw nothing at random). Usage, under `torchrun --nproc_per_node 2`:

    python tests/sharded_worker.py OUT_DIR MODEL_NAME [MODEL_NAME ...]

Per twin, against one unsharded model on the whole 4-pair batch:

- `fsdp`: the twin sharded with FSDP2 (`fully_shard` on every transformer layer and on the root, as accelerate's
  FSDP2 plugin wraps a model), two AdamW steps on this rank's half of the batch, for cross-entropy and the
  competency loss (`FSDP_CASES`: gradient saliency with each form, mask saliency with exp_subtract; inside
  `batch_stats.part` as the training step runs it): the largest absolute difference of any weight gradient
  (first step) and any weight (after the second step);
- `fsdp_accum`: the sharded twin's gradient when this rank's half is two micro-batches of one row
  (`batch_stats.measure`, then each part; `FSDP_ACCUM_CASES`): relative difference (max |Δ| over the largest
  entry);
- `split`: data parallel, as DDP runs it (each rank a full copy, the ranks' gradients averaged), for every
  competency form × saliency method and the IG-variance loss in both variants (`SPLIT_CASES`), in three
  layouts (`LAYOUTS`): halves, halves as two micro-batches each, and 1 + 3 rows; the relative difference of
  the step that `training._Run._eager_step` runs (`exact`) and, for halves and 1 + 3 rows, of the step without
  `batch_stats`, each part's loss at its own means, as before it existed (`naive`);
- whether loading other unsharded weights into the sharded model (`sharding.load_full_state_dict`) makes them
  equal, and whether the IG-variance loss refuses sharding.

Writes OUT_DIR/rank-R.json: {model: {...}}."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

sys.path.insert(0, str(Path(__file__).parent))
from test_twins import pair_batch  # noqa: E402

from compnb import batch_stats, ig_variance, losses, models, penalties, sharding  # noqa: E402

FORMS, METHODS = ("inverse", "exp_subtract", "subtract"), ("gradient", "mask")
COMPETENCY = {f"competency-{method}-{form}": {"method": method, "form": form, "lam": 0.5}
              for method in METHODS for form in FORMS}
FSDP_CASES = ["ce", "competency-gradient-inverse", "competency-gradient-exp_subtract", "competency-gradient-subtract",
              "competency-mask-exp_subtract"]
FSDP_ACCUM_CASES = ["competency-gradient-inverse", "competency-gradient-exp_subtract", "competency-mask-subtract"]
IG = {f"ig-{variant}": {"variant": variant, "n_steps": 3} for variant in ("differentiable", "detached")}
SPLIT_CASES = [*COMPETENCY, *IG]
# α·Var_attr about 1 on each random twin's pairs, where tanh is far from linear (as tests/test_split_batches.py)
IG_ALPHA = {"compnb-twins/opt-tiny": 4e6, "compnb-twins/llama-tiny": 1e3, "compnb-twins/electra-tiny": 6e4}
# rank → its rows of the 4-pair batch, as micro-batches
LAYOUTS = {"halves": [[[0, 1]], [[2, 3]]], "halves_accum": [[[0], [1]], [[2], [3]]], "uneven": [[[0]], [[1, 2, 3]]]}
NAIVE_LAYOUTS = ("halves", "uneven")  # where the step without batch_stats is measured too

Batch = dict[str, torch.Tensor]
LossOf = Callable[[torch.nn.Module, Batch], torch.Tensor]
Case = tuple[LossOf, bool]  # (loss, non-linear in its batch means)


def loss_fn(case: str, name: str) -> tuple[LossOf, bool]:
    """(The case's loss of (model, batch), as a scalar; whether the registered loss declares itself non-linear
    in its batch means, `batch_stats.needs_statistics`)."""
    if case == "ce":
        return lambda model, batch: F.cross_entropy(model(**penalties.model_inputs(batch)), batch["labels"]), False
    if case in IG:
        params = IG[case] | {"alpha": IG_ALPHA[name]}
        return (lambda model, batch: penalties.ig_variance_terms(model, batch, params)[0],
                batch_stats.needs_statistics(ig_variance.ig_variance_loss, params))
    return (lambda model, batch: penalties.competency_terms(model, batch, COMPETENCY[case])[0],
            batch_stats.needs_statistics(losses.competency_loss, COMPETENCY[case]))


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def rows(batch: Batch, index: list[int]) -> Batch:
    return {k: v[index] for k, v in batch.items()}


def step_backward(model: torch.nn.Module, parts: list[Batch], case: Case, world: int, exact: bool) -> None:
    """The backward of one training step on this rank's micro-batches `parts`, as `training._Run._eager_step` takes
    it (`exact`: `batch_stats.split_batch`, with the statistics pass for a `non_linear` loss with several parts,
    then each part inside `batch_stats.part`), or without `batch_stats` (each part's loss at its own means)."""
    loss_of, non_linear = case
    n = sum(len(part["labels"]) for part in parts)
    split = batch_stats.split_batch(parts, lambda part: loss_of(model, part), torch.device("cpu"),
                                    statistics=len(parts) > 1 and non_linear) if exact else None
    for part in parts:
        share = len(part["labels"]) / n
        with batch_stats.part(split, share / world) if exact else nullcontext():
            (loss_of(model, part) * share).backward()


def relative_difference(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """max |grads − reference| over every entry of every parameter, over the largest |reference| entry."""
    largest = max(float(g.abs().max()) for g in reference.values())
    return max(float((grads[n] - g).abs().max()) for n, g in reference.items()) / largest


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter's full gradient, cloned, and the model's gradients cleared."""
    grads = {n: full(p.grad).clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


def data_parallel(base: torch.nn.Module, batch: Batch, case: Case, rank: int, world: int) -> dict:
    """Per layout, the relative difference from the whole batch's gradient of the ranks' averaged gradients:
    `exact`, and in `NAIVE_LAYOUTS` `naive`."""
    model = copy.deepcopy(base)
    case[0](model, batch).backward()
    reference = gradients(model)
    result = {}
    for layout, shares in LAYOUTS.items():
        result[layout] = {}
        for kind in ("exact", "naive") if layout in NAIVE_LAYOUTS else ("exact",):
            step_backward(model, [rows(batch, part) for part in shares[rank]], case, world, kind == "exact")
            for p in model.parameters():
                dist.all_reduce(p.grad)
                p.grad /= world
            result[layout][kind] = relative_difference(gradients(model), reference)
    return result


def sharded_copy(base: torch.nn.Module, mesh) -> tuple[torch.nn.Module, int]:
    """(a copy of `base` with every transformer layer and the root an FSDP2 unit, the number of layer units)."""
    model = copy.deepcopy(base)
    units = [m for m in model.modules() if type(m).__name__ in ("OPTDecoderLayer", "LlamaDecoderLayer",
                                                                "ElectraLayer", "BertLayer")]
    for unit in units:
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model, len(units)


def sharded_steps(base: torch.nn.Module, batch: Batch, half: Batch, case: Case, mesh, world: int) -> dict:
    """Two AdamW steps of the sharded twin on `half` and of one unsharded copy on `batch`: the largest absolute
    difference of a weight gradient after the first backward and of a weight after the second step."""
    reference, (sharded, units) = copy.deepcopy(base), sharded_copy(base, mesh)
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-2) for m in (reference, sharded)]
    grad_diff = 0.0
    for step in range(2):
        case[0](reference, batch).backward()
        step_backward(sharded, [half], case, world, exact=True)
        if step == 0:
            grads = dict(reference.named_parameters())
            grad_diff = max(float((full(p.grad) - grads[n].grad).abs().max()) for n, p in sharded.named_parameters())
        for opt in optimizers:
            opt.step()
            opt.zero_grad()
    weights = dict(reference.named_parameters())
    weight_diff = max(float((full(p.detach()) - weights[n].detach()).abs().max())
                      for n, p in sharded.named_parameters())
    return {"units": units, "grad_max_abs_diff": grad_diff, "weight_max_abs_diff": weight_diff}


def sharded_accumulation(base: torch.nn.Module, batch: Batch, case: Case, rank: int, mesh, world: int) -> float:
    """Relative difference from the whole batch's gradient of the sharded twin's, this rank's half as two
    micro-batches of one row."""
    reference, (sharded, _) = copy.deepcopy(base), sharded_copy(base, mesh)
    case[0](reference, batch).backward()
    step_backward(sharded, [rows(batch, part) for part in LAYOUTS["halves_accum"][rank]], case, world, True)
    return relative_difference(gradients(sharded), gradients(reference))


def compare(name: str, rank: int, world: int, mesh) -> dict:
    """Every comparison of the module docstring on the twin `name`."""
    torch.manual_seed(0)
    base, tokenizer = models.SequenceClassifier.from_pretrained(name, 3)
    base = base.double().eval()
    batch = pair_batch(tokenizer)
    half = rows(batch, LAYOUTS["halves"][rank][0])
    result = {"fsdp": {case: sharded_steps(base, batch, half, loss_fn(case, name), mesh, world) for case in FSDP_CASES},
              "fsdp_accum": {case: sharded_accumulation(base, batch, loss_fn(case, name), rank, mesh, world)
                             for case in FSDP_ACCUM_CASES},
              "split": {case: data_parallel(base, batch, loss_fn(case, name), rank, world) for case in SPLIT_CASES}}
    sharded, target = sharded_copy(base, mesh)[0], copy.deepcopy(base)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(torch.randn_like(p), alpha=0.01)
    sharding.load_full_state_dict(sharded, target.state_dict())  # as training loads its best weights
    weights = dict(target.named_parameters())
    result["loaded_max_abs_diff"] = max(float((full(p.detach()) - weights[n].detach()).abs().max())
                                        for n, p in sharded.named_parameters())
    try:
        penalties.ig_variance_terms(sharded, half, {"n_steps": 2})
        result["ig_refused"] = None
    except penalties.ShardingUnsupported as err:
        result["ig_refused"] = str(err)
    return result


def main() -> None:
    out, names = Path(sys.argv[1]), sys.argv[2:]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    results = {"rank": rank, "world": world}
    for name in names:
        results[name] = compare(name, rank, world, mesh)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank-{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
