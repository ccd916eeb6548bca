"""The competency loss: the forms' monotonicity, the top-k entropy, parameter gradients of the whole loss
against central differences on a tiny float64 model (both saliency methods), and bad parameters."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from transformers import BertConfig

from compnb import losses, saliency
from compnb.models import SequenceClassifier
from compnb.training import TrainConfig

LAMBDAS = (0.1, 0.5, 1.0)


def tiny_model() -> SequenceClassifier:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return SequenceClassifier.from_config(config, num_labels=3, dropout=0.0).double()


def tiny_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([8, 6, 3])
    mask = (torch.arange(8) < lengths[:, None]).long()
    ids = torch.randint(3, 60, (3, 8), generator=generator).masked_fill(mask == 0, 0)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 2, 1])}


@pytest.mark.parametrize("form", losses.FORMS)
@pytest.mark.parametrize("lam", LAMBDAS)
def test_each_form_increases_with_ce_and_decreases_with_entropy(form, lam):
    ce = torch.linspace(0.05, 3.0, 40, dtype=torch.float64)
    h = torch.linspace(0.05, math.log(5), 40, dtype=torch.float64)
    grid = losses.combine(ce[:, None], lam * h[None, :], form)  # (CE, H)
    assert torch.all(grid.diff(dim=0) > 0), "not increasing in CE"
    assert torch.all(grid.diff(dim=1) < 0), "not decreasing in H"


def test_topk_entropy_by_hand():
    s = torch.tensor([[0.5, 0.25, 0.15, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    got = losses.topk_entropy(s, 2)
    first = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    torch.testing.assert_close(got, torch.tensor([first, math.log(2), 0.0]))
    torch.testing.assert_close(losses.topk_entropy(s[1:2], 4), torch.tensor([math.log(4)]))


@pytest.mark.parametrize("form", losses.FORMS)
@pytest.mark.parametrize("method", losses.METHODS)
def test_loss_parameter_gradients_match_central_differences(method, form):
    model, batch = tiny_model(), tiny_batch()
    params = {"lam": 0.5, "form": form, "method": method, "k": 3}
    loss, _, logs = losses.competency_loss(model, batch, params)
    loss.backward()
    assert logs["H_topk"] > 0
    layers = model.backbone.encoder.layer
    eps = 1e-6
    for weight in (layers[0].attention.self.query.weight, layers[1].output.dense.weight):
        assert weight.grad is not None and weight.grad.abs().sum() > 0
        with torch.no_grad():
            weight[1, 2] += eps
        plus = losses.competency_loss(model, batch, params)[0].item()
        with torch.no_grad():
            weight[1, 2] -= 2 * eps
        minus = losses.competency_loss(model, batch, params)[0].item()
        with torch.no_grad():
            weight[1, 2] += eps
        torch.testing.assert_close(weight.grad[1, 2].item(), (plus - minus) / (2 * eps), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("method", losses.METHODS)
def test_the_entropy_term_alone_reaches_parameters_above_the_embeddings(method):
    model, batch = tiny_model(), tiny_batch()
    _, s = (losses.gradient_s if method == "gradient" else losses.mask_s)(model, batch)
    losses.topk_entropy(s, 3).mean().backward()
    query = model.backbone.encoder.layer[0].attention.self.query.weight
    assert query.grad is not None and query.grad.abs().sum() > 0


@pytest.mark.parametrize("params, message", [
    ({"lam": -0.1}, "lam must be a finite number >= 0, got -0.1"),
    ({"lam": "big"}, "lam must be a finite number >= 0, got 'big'"),
    ({"form": "ratio"}, "unknown form 'ratio'; allowed: inverse, exp_subtract, subtract"),
    ({"method": "ig"}, "unknown saliency method 'ig'; allowed: gradient, mask"),
    ({"k": 0}, "k must be an integer >= 1, got 0"),
])
def test_bad_parameters_name_the_value_and_the_allowed_ones(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(loss="competency", loss_params=params)


def test_defaults_are_filled_in_so_equal_runs_hash_equally():
    explicit = TrainConfig(loss="competency", loss_params=losses.DEFAULTS)
    assert TrainConfig(loss="competency").run_id() == explicit.run_id()
    assert TrainConfig(loss="competency", loss_params={"lam": 0.5}).run_id() != explicit.run_id()


@pytest.mark.parametrize("form", losses.FORMS)
def test_mask_method_chunked_by_a_tiny_memory_budget_gives_the_same_loss_and_gradients(memory_budget, form):
    """COMPNB_MEMORY_BUDGET=1 (byte) puts each masked copy in its own checkpointed chunk; the default (8 GiB on a
    CPU) all of them in one forward. Loss and every parameter gradient agree."""
    batch, params = tiny_batch(), {"lam": 0.5, "form": form, "method": "mask", "k": 3}
    results = []
    for budget in (None, "1"):
        memory_budget(budget)
        model = tiny_model()
        loss, _, logs = losses.competency_loss(model, batch, params)
        loss.backward()
        results.append((loss.detach(), logs, [p.grad for p in model.parameters()]))
    (loss_whole, logs_whole, g_whole), (loss_chunked, logs_chunked, g_chunked) = results
    torch.testing.assert_close(loss_chunked, loss_whole, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(logs_chunked, logs_whole, rtol=1e-12, atol=0)
    assert [g is None for g in g_whole] == [g is None for g in g_chunked]
    for a, b in zip(g_whole, g_chunked):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("method", losses.METHODS)
def test_frozen_word_embeddings_as_under_lora_still_give_a_saliency_penalty(method):
    """With the embedding matrix frozen (LoRA freezes it), ∂CE/∂embeddings is still taken, and the entropy
    term still trains the layers above."""
    model, batch = tiny_model(), tiny_batch()
    model.embeddings.weight.requires_grad_(False)
    _, s = (losses.gradient_s if method == "gradient" else losses.mask_s)(model, batch)
    losses.topk_entropy(s, 3).mean().backward()
    assert model.embeddings.weight.grad is None
    query = model.backbone.encoder.layer[0].attention.self.query.weight
    assert query.grad is not None and query.grad.abs().sum() > 0


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("k", [3, 5])
def test_mask_topk_entropy_equals_the_entropy_of_the_fully_differentiable_saliency(k, static):
    """Re-scoring only each row's top k with a graph (`mask_topk_entropy`) gives the value and every parameter
    gradient of the top-k entropy of the fully differentiable mask saliency (`mask_s`), for a row shorter than k
    too, with and without the static shapes of a captured step."""
    batch = tiny_batch()
    results = []
    for fast in (False, True):
        model = tiny_model()
        with saliency.static_shapes() if static else contextlib.nullcontext():
            if fast:
                h = losses.mask_topk_entropy(model, batch, k)[1]
            else:
                h = losses.topk_entropy(losses.mask_s(model, batch)[1], k)
        (h * torch.tensor([1.0, -2.0, 3.0], dtype=h.dtype)).sum().backward()
        results.append((h.detach(), [p.grad for p in model.parameters()]))
    (h_full, g_full), (h_fast, g_fast) = results
    assert h_full.min() > 0
    torch.testing.assert_close(h_fast, h_full, rtol=1e-12, atol=1e-14)
    assert [g is None for g in g_fast] == [g is None for g in g_full]
    deep = [g for g in g_full if g is not None and g.abs().sum() > 0]
    assert len(deep) > 10
    for a, b in zip(g_full, g_fast):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-13)
