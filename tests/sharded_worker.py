"""One rank of `tests/test_sharding.py`: a twin sharded with FSDP2 (`fully_shard` on every transformer layer
and on the root, as accelerate's FSDP2 plugin wraps a model) on a gloo CPU process group, against an
unsharded copy that every rank holds. Usage, under `torchrun --nproc_per_node 2`:

    python tests/sharded_worker.py OUT_DIR MODEL_NAME [MODEL_NAME ...]

Per loss, two AdamW steps on this rank's half of a 4-pair batch (the unsharded copy steps on the whole
batch), then the maximum absolute difference of every weight gradient (first step) and every weight (after
the second step), float64 throughout; that loading the unsharded weights into the sharded model
(`sharding.load_full_state_dict`) makes them equal; then whether the IG-variance loss refuses. Writes
OUT_DIR/rank-R.json: {model: {case: ...}}."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

sys.path.insert(0, str(Path(__file__).parent))
from test_twins import pair_batch  # noqa: E402

from compnb import models, penalties, sharding  # noqa: E402

CASES = {"ce": None,
         "competency-gradient": {"method": "gradient", "form": "subtract", "lam": 0.5},
         "competency-mask": {"method": "mask", "form": "subtract", "lam": 0.5}}


def loss_of(model, batch, case):
    if CASES[case] is None:
        import torch.nn.functional as F
        return F.cross_entropy(model(**penalties.model_inputs(batch)), batch["labels"])
    return penalties.competency_terms(model, batch, CASES[case])[0]


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def main() -> None:
    out, names = Path(sys.argv[1]), sys.argv[2:]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    results = {"rank": rank, "world": world}
    for name in names:
        results[name] = compare(name, rank, mesh)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank-{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


def compare(name: str, rank: int, mesh) -> dict:
    """Every case of `CASES` on the twin `name`: gradient and weight differences, and the IG refusal."""
    torch.manual_seed(0)
    base, tokenizer = models.SequenceClassifier.from_pretrained(name, 3)
    base = base.double().eval()  # no dropout: the two sides must draw nothing at random
    batch = pair_batch(tokenizer)
    half = {k: v[rank * 2:(rank + 1) * 2] for k, v in batch.items()}
    result = {}
    for case in CASES:
        reference, sharded = copy.deepcopy(base), copy.deepcopy(base)
        units = [m for m in sharded.modules() if type(m).__name__ in ("OPTDecoderLayer", "LlamaDecoderLayer",
                                                                        "ElectraLayer", "BertLayer")]
        for unit in units:
            fully_shard(unit, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-2) for m in (reference, sharded)]
        grad_diff = 0.0
        for step in range(2):
            for model, rows, opt in ((reference, batch, optimizers[0]), (sharded, half, optimizers[1])):
                loss_of(model, rows, case).backward()
            if step == 0:
                grads = dict(reference.named_parameters())
                grad_diff = max(float((full(p.grad) - grads[n].grad).abs().max())
                                for n, p in sharded.named_parameters())
            for opt in optimizers:
                opt.step()
                opt.zero_grad()
        weights = dict(reference.named_parameters())
        weight_diff = max(float((full(p.detach()) - weights[n].detach()).abs().max())
                          for n, p in sharded.named_parameters())
        result[case] = {"units": len(units), "grad_max_abs_diff": grad_diff, "weight_max_abs_diff": weight_diff}
    sharding.load_full_state_dict(sharded, reference.state_dict())  # as training loads its best weights
    weights = dict(reference.named_parameters())
    result["loaded_max_abs_diff"] = max(float((full(p.detach()) - weights[n].detach()).abs().max())
                                        for n, p in sharded.named_parameters())
    try:
        penalties.ig_variance_terms(sharded, half, {"n_steps": 2})
        result["ig_refused"] = None
    except NotImplementedError as err:
        result["ig_refused"] = str(err)
    return result


if __name__ == "__main__":
    main()
