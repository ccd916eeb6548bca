"""compnb.captured: the snapshot that undoes capture's warm-up steps (CPU), and on a GPU, captured steps that
give the weights of eager steps for every registered loss."""

import copy

import pytest
import torch
from transformers import BertConfig

from compnb import batching, captured, models, training
from compnb.penalties import COMPETENCY_DEFAULTS, IG_DEFAULTS


def tiny(seed: int = 0) -> models.SequenceClassifier:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    return models.SequenceClassifier.from_config(config, num_labels=2)


def batch(device="cpu", rows=4, tokens=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.arange(tokens)[None] < torch.randint(3, tokens + 1, (rows,), generator=g)[:, None]).long()
    return {"input_ids": (torch.randint(5, 64, (rows, tokens), generator=g) * mask).to(device),
            "attention_mask": mask.to(device), "labels": torch.randint(0, 2, (rows,), generator=g).to(device)}


def test_the_snapshot_undoes_optimizer_steps_in_place():
    model = tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = copy.deepcopy(model.state_dict())
    snapshot = captured._Snapshot(model, optimizer)
    addresses = [p.data_ptr() for p in model.parameters()]
    for _ in range(3):
        optimizer.zero_grad()
        loss, _, _ = training.cross_entropy(model, batch(), {})
        loss.backward()
        optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    snapshot.restore()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.data_ptr() for p in model.parameters()] == addresses  # in place: a graph keeps its addresses
    assert all(float(v.abs().max()) == 0 for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))


def test_a_captured_step_is_refused_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        captured.CapturedStep(tiny(), torch.optim.AdamW(tiny().parameters()), training.cross_entropy, {})


@pytest.mark.parametrize("max_grad_norm", [None, 1e-3])
def test_the_step_body_returns_the_gradient_norm_before_clipping(max_grad_norm):
    """The body that capture records (run eagerly here, on the CPU) reports the gradients' total norm as the
    eager step's clipping sees it, so that the loop can watch it for non-finite values."""
    model, reference = tiny().eval(), tiny().eval()  # dropout off: both compute the same gradients
    step = captured.CapturedStep.__new__(captured.CapturedStep)
    step.model, step.loss_fn, step.params, step.max_grad_norm, step.autocast_dtype = (
        model, training.cross_entropy, {}, max_grad_norm, None)
    step.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    out = step._body(batch())
    loss, _, _ = training.cross_entropy(reference, batch(), {})
    loss.backward()
    expected = torch.nn.utils.get_total_norm([p.grad for p in reference.parameters() if p.grad is not None])
    assert set(out) == {"loss", "ce", captured.GRAD_NORM}
    assert float(out[captured.GRAD_NORM]) == pytest.approx(float(expected), rel=1e-6) and float(expected) > 1e-3


LOSSES = [("ce", {}), ("competency", COMPETENCY_DEFAULTS | {"method": "gradient", "lam": 0.5}),
          ("competency", COMPETENCY_DEFAULTS | {"method": "mask", "lam": 0.5}),
          ("ig_variance", IG_DEFAULTS | {"variant": "detached", "n_steps": 4}),
          ("ig_variance", IG_DEFAULTS | {"variant": "differentiable", "n_steps": 4})]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("loss, params", LOSSES, ids=[f"{n}-{p.get('method') if n == 'competency' else p.get('variant', '')}" for n, p in LOSSES])
def test_captured_steps_give_the_weights_of_eager_steps(loss, params):
    training._register_builtin_losses()
    device = torch.device("cuda")
    eager_model, graph_model = tiny().to(device).eval(), tiny().to(device).eval()
    make = lambda m: captured.CapturedStep(m, captured.capturable_adamw([{"params": list(m.parameters())}], 1e-3, device),  # noqa: E731
                                           training.LOSSES[loss], params, max_grad_norm=1.0)
    eager, graph = make(eager_model), make(graph_model)
    batches = [batch(device, seed=s) for s in range(4)]
    for b in batches:
        eager._body(b)
        graph(b)
    torch.cuda.synchronize()
    assert graph.shapes == 1
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_mask_saliency_under_static_shapes_scores_every_position_with_the_same_values():
    from compnb.saliency import MaskSaliency, static_shapes

    model, b = tiny().double().eval(), batch()
    plain = MaskSaliency(model).attribute(b["input_ids"], b["attention_mask"], b["labels"])
    with static_shapes():
        static = MaskSaliency(model).attribute(b["input_ids"], b["attention_mask"], b["labels"])
    torch.testing.assert_close(static, plain, rtol=1e-12, atol=1e-12)
    assert float(static[b["attention_mask"] == 0].abs().max()) == 0.0


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\(\)` before")
def test_a_scheduler_fills_the_capturable_learning_rate_in_place():
    from transformers import get_linear_schedule_with_warmup

    if not torch.cuda.is_available():
        model = tiny()
        groups = [{"params": list(model.parameters())}]
        for group in groups:  # what `capturable_adamw` does, without the CUDA optimizer
            group.setdefault("initial_lr", 1e-3)
        optimizer = torch.optim.AdamW(groups, lr=torch.tensor(1e-3))
    else:
        optimizer = captured.capturable_adamw([{"params": list(tiny().cuda().parameters())}], 1e-3, torch.device("cuda"))
    lr = optimizer.param_groups[0]["lr"]
    scheduler = get_linear_schedule_with_warmup(optimizer, 2, 10)
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.5e-3)


@pytest.mark.parametrize("device, distributed, accum, env, engine", [
    ("cuda", False, 1, None, "cuda-graph"), ("cuda", False, 1, "0", "eager"), ("cpu", False, 1, None, "eager"),
    ("cuda", True, 1, None, "eager"), ("cuda", False, 2, None, "eager"), ("cuda", False, 1, "1", "cuda-graph")])
def test_the_engine_is_captured_only_on_one_gpu_without_accumulation(monkeypatch, device, distributed, accum, env,
                                                                      engine):
    if env is None:
        monkeypatch.delenv(captured.ENV, raising=False)
    else:
        monkeypatch.setenv(captured.ENV, env)
    assert captured.engine_for(torch.device(device), distributed, accum) == engine


def test_static_batches_pad_to_the_shape_and_count_the_real_rows_on_the_host():
    pad = batching.PadCollator(0, bucket=16, rows=8, max_length=40)
    items = [{"input_ids": list(range(1, 4 + i)), "labels": i % 2, "index": i} for i in range(5)]
    (batch,), real = captured.StaticBatches(pad)(items)
    assert real == 5 and batch["input_ids"].shape == (8, 16) and batch["weight"].tolist() == [1.0] * 5 + [0.0] * 3
