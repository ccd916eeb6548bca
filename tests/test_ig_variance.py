"""The IG-variance loss: which parameters each variant's penalty reaches (against Captum and finite
differences), the variance itself, λ = 0, and parameter checks."""

import captum.attr as captum_attr
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig

from compnb import ig_variance
from compnb.models import SequenceClassifier
from compnb.saliency import MEMORY_BUDGET_ENV
from compnb.training import cross_entropy


def tiny() -> tuple[SequenceClassifier, dict]:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    model = SequenceClassifier.from_config(config, num_labels=3, dropout=0.0).double()
    ids = torch.randint(3, 60, (3, 9))
    mask = (torch.arange(9) < torch.tensor([9, 6, 4])[:, None]).long()
    segments = (torch.arange(9) >= torch.tensor([4, 3, 2])[:, None]).long() * mask
    return model, {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask, "token_type_ids": segments,
                   "labels": torch.tensor([0, 2, 1])}


PARAMS = {"lam": 0.1, "alpha": 10.0, "n_steps": 5}


@pytest.fixture(params=[None, "1"], ids=["one-chunk", "one-row-chunks"])
def budget(request, monkeypatch):
    """The default memory budget (all path points in one chunk on a CPU), or 1 byte (one row a chunk)."""
    if request.param is None:
        monkeypatch.delenv(MEMORY_BUDGET_ENV, raising=False)
    else:
        monkeypatch.setenv(MEMORY_BUDGET_ENV, request.param)
    return request.param


def test_detached_penalty_reaches_only_the_word_embeddings_exactly_as_captum_does(budget):
    model, batch = tiny()
    ig_variance.penalty(model, batch, PARAMS | {"variant": "detached"}).backward()
    word = model.embeddings.weight
    assert word.grad is not None and word.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        if p is not word:
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    ours = word.grad.clone()
    model.zero_grad()
    # Captum's IntegratedGradients over input embeddings, same path (right Riemann, zero baseline)
    model.eval()
    embeds = model.embeddings(batch["input_ids"])
    ig = captum_attr.IntegratedGradients(lambda e, m, t: model(inputs_embeds=e, attention_mask=m, token_type_ids=t))
    attributions = ig.attribute(embeds, baselines=0.0, target=batch["labels"], n_steps=5, method="riemann_right",
                                additional_forward_args=(batch["attention_mask"], batch["token_type_ids"]),
                                internal_batch_size=None).sum(-1)
    variance = ig_variance.attribution_variance(attributions.masked_fill(batch["attention_mask"] == 0, 0.0),
                                                batch["attention_mask"])
    torch.tanh(10.0 * variance.mean()).backward()
    torch.testing.assert_close(ours, word.grad)


def test_differentiable_penalty_trains_the_layers_above_and_matches_central_differences(budget):
    model, batch = tiny()
    params = PARAMS | {"variant": "differentiable"}
    ig_variance.penalty(model, batch, params).backward()
    layers = model.backbone.encoder.layer
    eps = 1e-6
    for weight in (layers[0].attention.self.query.weight, layers[1].output.dense.weight, model.head[1].weight):
        assert weight.grad is not None and weight.grad.abs().sum() > 0
        with torch.no_grad():
            weight[1, 2] += eps
            plus = ig_variance.penalty(model, batch, params)
            weight[1, 2] -= 2 * eps
            minus = ig_variance.penalty(model, batch, params)
            weight[1, 2] += eps
        torch.testing.assert_close(weight.grad[1, 2], (plus - minus) / (2 * eps), rtol=1e-4, atol=1e-10)


def test_attribution_variance_is_the_population_variance_over_real_tokens():
    attributions = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, -4.0, 7.0, 7.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    expected = [np.var([1.0, 2.0, 3.0]), np.var([4.0, -4.0])]
    torch.testing.assert_close(ig_variance.attribution_variance(attributions, mask),
                               torch.tensor(expected, dtype=torch.float64))


def test_lambda_zero_is_plain_cross_entropy_and_the_loss_adds_lambda_tanh():
    model, batch = tiny()
    loss, logits, logs = ig_variance.ig_variance_loss(model, batch, {"lam": 0.0})
    plain, plain_logits, _ = cross_entropy(model, batch, {})
    assert torch.equal(loss, plain) and torch.equal(logits, plain_logits)
    loss, logits, logs = ig_variance.ig_variance_loss(model, batch, PARAMS)
    ce = F.cross_entropy(logits.float(), batch["labels"])
    assert loss.item() == pytest.approx(ce.item() + 0.1 * logs["tanh_var"].item())


@pytest.mark.parametrize("bad, message", [({"lam": -1}, "lam must be a finite number >= 0"),
                                          ({"alpha": float("nan")}, "alpha must be a finite number >= 0"),
                                          ({"n_steps": 0}, "n_steps must be an integer >= 1"),
                                          ({"method": "simpson"}, "unknown IG method 'simpson'"),
                                          ({"variant": "frozen"}, "unknown variant 'frozen'; allowed: differentiable, detached")])
def test_bad_parameters_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        ig_variance.check_params(bad)


@pytest.mark.parametrize("variant", ig_variance.VARIANTS)
def test_path_points_chunked_by_a_tiny_memory_budget_give_the_same_loss_and_gradients(memory_budget, variant):
    """COMPNB_MEMORY_BUDGET=1 (byte) puts each path point in its own chunk (the differentiable variant's chunks
    recomputed in the backward); the default (8 GiB on a CPU) all of them in one forward. Loss and every
    parameter gradient agree."""
    params = PARAMS | {"variant": variant}
    results = []
    for budget in (None, "1"):
        memory_budget(budget)
        model, batch = tiny()
        loss, _, logs = ig_variance.ig_variance_loss(model, batch, params)
        loss.backward()
        results.append((loss.detach(), logs, dict(model.named_parameters())))
    (loss_whole, logs_whole, p_whole), (loss_chunked, logs_chunked, p_chunked) = results
    torch.testing.assert_close(loss_chunked, loss_whole, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(logs_chunked, logs_whole, rtol=1e-10, atol=0)
    for name, p in p_whole.items():
        assert (p.grad is None) == (p_chunked[name].grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p_chunked[name].grad, p.grad, rtol=1e-9, atol=1e-13)
