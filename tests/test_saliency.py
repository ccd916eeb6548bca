"""Saliency methods on tiny random models: finite differences, padding, Captum, autograd through scores, and
chunking by a memory budget (the estimate bounds what autograd saves; chunked equals unchunked)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, ElectraConfig, LlamaConfig, OPTConfig

from compnb.models import SequenceClassifier
from compnb.saliency import (CPU_BUDGET, MEMORY_BUDGET_ENV, GradientSaliency, IntegratedGradients, MaskSaliency,
                             activation_bytes, analysis_mode, budget_bytes, chunk_rows, gradient_saliency,
                             integrated_gradients, mask_saliency, parse_memory, word_scores)

KINDS = ("bert", "opt")
PAD_ID = {"bert": 0, "opt": 1}
LENGTHS = (7, 4, 2)


def tiny_model(kind: str, dropout: float = 0.0, seed: int = 0) -> SequenceClassifier:
    """A float64 2-layer encoder ('mean' pooling) or decoder ('last' pooling) with 3 classes, eval mode.

    OPT gets GELU instead of its default ReLU so finite differences never straddle a kink inside the backbone.
    """
    torch.manual_seed(seed)
    if kind == "bert":
        config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=dropout,
                            attention_probs_dropout_prob=dropout, pad_token_id=PAD_ID[kind])
    else:
        config = OPTConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                           max_position_embeddings=32, word_embed_proj_dim=16, dropout=dropout,
                           attention_dropout=dropout, activation_function="gelu", pad_token_id=PAD_ID[kind])
    return SequenceClassifier.from_config(config, num_labels=3, dropout=dropout).double().eval()


def tiny_batch(kind: str, tokens: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, labels) for sequences of LENGTHS, right-padded to `tokens`."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 60, (len(LENGTHS), tokens), generator=generator)
    mask = (torch.arange(tokens) < torch.tensor(LENGTHS)[:, None]).long()
    return ids.masked_fill(mask == 0, PAD_ID[kind]), mask, torch.tensor([0, 2, 1])


METHODS = {
    "gradient_S": lambda model, *batch, **kw: gradient_saliency(model, *batch, **kw),
    "gradient_norms": lambda model, *batch, **kw: gradient_saliency(model, *batch, normalize=False, **kw),
    "mask": lambda model, *batch, **kw: mask_saliency(model, *batch, **kw),
    "ig": lambda model, *batch, **kw: integrated_gradients(model, *batch, n_steps=4, **kw),
}


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_norms_match_central_differences(kind):
    model = tiny_model(kind)
    ids, mask, labels = tiny_batch(kind)
    norms = GradientSaliency(model).attribute(ids, mask, labels, normalize=False)
    embeds = model.embeddings(ids).detach()
    tokens, hidden = embeds.shape[1:]
    eps = 1e-6
    bumps = (eps * torch.eye(tokens * hidden, dtype=embeds.dtype)).view(-1, tokens, hidden)
    for b in range(len(ids)):
        rows = torch.cat([embeds[b] + bumps, embeds[b] - bumps])
        with torch.no_grad():
            logits = model(inputs_embeds=rows, attention_mask=mask[b].expand(len(rows), -1))
        ce = F.cross_entropy(logits, labels[b].expand(len(rows)), reduction="none")
        grads = ((ce[:len(bumps)] - ce[len(bumps):]) / (2 * eps)).view(tokens, hidden)
        torch.testing.assert_close(norms[b], grads.norm(dim=-1), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_padding_is_masked_and_examples_are_independent(kind, name):
    model = tiny_model(kind)
    ids, mask, labels = tiny_batch(kind)
    scores = METHODS[name](model, ids, mask, labels)
    assert scores.shape == ids.shape
    assert (scores[mask == 0] == 0).all()
    if name == "gradient_S":
        torch.testing.assert_close(scores.sum(-1), torch.ones(len(ids), dtype=scores.dtype))
    more_padding = torch.cat([ids, torch.full((len(ids), 5), PAD_ID[kind])], dim=1)
    padded = METHODS[name](model, more_padding, F.pad(mask, (0, 5)), labels)
    torch.testing.assert_close(padded[:, :ids.shape[1]], scores, rtol=1e-7, atol=1e-10)
    assert (padded[:, ids.shape[1]:] == 0).all()
    for b, length in enumerate(LENGTHS):
        alone = METHODS[name](model, ids[b:b + 1, :length], mask[b:b + 1, :length], labels[b:b + 1])
        torch.testing.assert_close(alone[0], scores[b, :length], rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("baseline", ("zero", "random"))
@pytest.mark.parametrize("method", ("riemann_right", "gausslegendre"))
@pytest.mark.parametrize("kind", KINDS)
def test_integrated_gradients_match_captum(kind, method, baseline):
    captum_attr = pytest.importorskip("captum.attr")
    model = tiny_model(kind)
    ids, mask, labels = tiny_batch(kind)
    embeds = model.embeddings(ids).detach()
    baselines = 0.0 if baseline == "zero" else 0.1 * torch.randn(embeds.shape, dtype=embeds.dtype)
    attributions, gap = IntegratedGradients(model).attribute(ids, mask, labels, baselines=baselines, n_steps=7,
                                                              method=method, return_completeness_gap=True)
    reference = captum_attr.IntegratedGradients(lambda e, m: model(inputs_embeds=e, attention_mask=m))
    expected, delta = reference.attribute(embeds, baselines=baselines, target=labels, additional_forward_args=(mask,),
                                          n_steps=7, method=method, return_convergence_delta=True)
    torch.testing.assert_close(attributions, expected.sum(-1), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gap, delta.abs(), rtol=1e-5, atol=1e-7)


def mean_gap(model, batch, n_steps: int, method: str) -> float:
    return IntegratedGradients(model).attribute(*batch, n_steps=n_steps, method=method,
                                                return_completeness_gap=True)[1].mean().item()


@pytest.mark.parametrize("kind", KINDS)
def test_riemann_completeness_gap_shrinks_with_steps(kind):
    model, batch = tiny_model(kind), tiny_batch(kind)
    # Measured over 30 seeds of tiny_model: holds in 30/30 BERTs and 29/30 OPTs (per-example gaps can cancel).
    gaps = [mean_gap(model, batch, n, "riemann_right") for n in (4, 16, 64)]
    assert gaps[0] > gaps[1] > gaps[2]


def test_gauss_legendre_gap_below_riemann_at_equal_steps():
    # Measured over 30 seeds of tiny_model("bert"): Gauss-Legendre wins at 10 steps in 27/30. The head's ReLU
    # makes the path integrand only piecewise smooth, so Gauss-Legendre's higher order is not guaranteed.
    model, batch = tiny_model("bert"), tiny_batch("bert")
    assert mean_gap(model, batch, 10, "gausslegendre") < mean_gap(model, batch, 10, "riemann_right")


@pytest.mark.parametrize("kind", KINDS)
def test_mask_saliency_matches_token_loop(kind):
    model = tiny_model(kind)
    ids, mask, labels = tiny_batch(kind)
    special = torch.zeros_like(mask)
    special[:, 0] = 1
    scores = MaskSaliency(model).attribute(ids, mask, labels)
    expected = torch.zeros_like(scores)
    with torch.no_grad():
        for b, length in enumerate(LENGTHS):
            p = model(input_ids=ids[b:b + 1], attention_mask=mask[b:b + 1]).softmax(-1)[0, labels[b]]
            for t in range(length):
                dropped = mask[b:b + 1].clone()
                dropped[0, t] = 0
                expected[b, t] = (p - model(input_ids=ids[b:b + 1], attention_mask=dropped).softmax(-1)[0, labels[b]]).abs()
    torch.testing.assert_close(scores, expected, rtol=1e-7, atol=1e-12)
    chunked = MaskSaliency(model).attribute(ids, mask, labels, special_tokens_mask=special, max_batch=4)
    torch.testing.assert_close(chunked, expected.masked_fill(special == 1, 0.0), rtol=1e-7, atol=1e-12)


def entropy_of_s(model, ids, mask, labels, differentiable):
    s = GradientSaliency(model).attribute(ids, mask, labels, differentiable=differentiable)[mask == 1]
    return -(s * s.log()).sum()


def ig_squared(model, ids, mask, labels, differentiable):
    return (integrated_gradients(model, ids, mask, labels, n_steps=4, differentiable=differentiable) ** 2).sum()


def mask_total(model, ids, mask, labels, differentiable):
    return mask_saliency(model, ids, mask, labels, differentiable=differentiable).sum()


def upper_weights(model: SequenceClassifier) -> list[torch.Tensor]:
    """Two weight matrices above the embedding layer: layer 0's attention query and layer 1's FFN output."""
    if isinstance(model.backbone.config, BertConfig):
        layers = model.backbone.encoder.layer
        return [layers[0].attention.self.query.weight, layers[1].output.dense.weight]
    layers = model.backbone.decoder.layers
    return [layers[0].self_attn.q_proj.weight, layers[1].fc2.weight]


@pytest.mark.parametrize("penalty", (entropy_of_s, ig_squared, mask_total))
@pytest.mark.parametrize("kind", KINDS)
def test_penalty_gradients_match_central_differences(kind, penalty):
    model = tiny_model(kind)
    batch = tiny_batch(kind)
    penalty(model, *batch, differentiable=True).backward()
    eps = 1e-6
    for weight in upper_weights(model):
        assert weight.grad is not None and weight.grad.abs().sum() > 0
        with torch.no_grad():
            weight[1, 2] += eps
            plus = penalty(model, *batch, differentiable=False)
            weight[1, 2] -= 2 * eps
            minus = penalty(model, *batch, differentiable=False)
            weight[1, 2] += eps
        torch.testing.assert_close(weight.grad[1, 2], (plus - minus) / (2 * eps), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("name", METHODS)
def test_model_state_is_restored_and_detached_scores_carry_no_grad(name):
    model = tiny_model("bert", dropout=0.3)
    ids, mask, labels = tiny_batch("bert")
    reference = METHODS[name](model, ids, mask, labels)
    model.embeddings.weight.requires_grad_(False)
    model.train()
    flags = [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()]
    with torch.no_grad():
        scores = METHODS[name](model, ids, mask, labels)
    assert not scores.requires_grad and scores.grad_fn is None
    torch.testing.assert_close(scores, reference)  # dropout off during the call
    differentiable = METHODS[name](model, ids, mask, labels, differentiable=True)
    assert differentiable.requires_grad
    assert flags == [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()]


def test_word_scores_sum_subwords_and_skip_special_tokens():
    scores = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0], [0.5, 0.25, 0.25, 0.0, 0.0]], requires_grad=True)
    word_ids = [[None, 0, 0, 1, None], [None, 0, None, None, None]]
    words = word_scores(scores, word_ids)
    torch.testing.assert_close(words, torch.tensor([[0.5, 0.4], [0.25, 0.0]]))
    torch.testing.assert_close(word_scores(scores[0], word_ids[0]), words[0])
    words.sum().backward()
    torch.testing.assert_close(scores.grad, torch.tensor([[0.0, 1, 1, 1, 0], [0, 1, 0, 0, 0]]))
    with pytest.raises(ValueError):
        word_scores(scores, [[None, 0]])


@pytest.mark.parametrize("kind", KINDS)
def test_checkpointed_mask_chunks_give_the_same_scores_and_parameter_gradients(kind):
    """max_batch with differentiable=True recomputes each chunk in the backward; the model is left in train
    mode with dropout on, so a recompute that forgot eval mode would give other gradients."""
    ids, mask, labels = tiny_batch(kind)
    grads = []
    for max_batch in (None, 3):
        model = tiny_model(kind, dropout=0.3).train()
        torch.manual_seed(1)
        scores = MaskSaliency(model).attribute(ids, mask, labels, max_batch=max_batch, differentiable=True)
        (scores ** 2).sum().backward()
        assert model.training
        grads.append((scores.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (whole, g_whole), (chunked, g_chunked) = grads
    torch.testing.assert_close(chunked, whole)
    assert len(g_whole) == len(g_chunked) > 0
    for a, b in zip(g_whole, g_chunked):
        torch.testing.assert_close(b, a)


def test_segment_ids_reach_every_forward_of_gradient_and_mask_saliency():
    """BERT-style pairs: with token_type_ids the scores equal a per-example loop that passes them, and differ
    from scores computed without them (so leaving them out would change the numbers)."""
    model = tiny_model("bert")
    ids, mask, labels = tiny_batch("bert")
    segments = ((torch.arange(ids.shape[1]) >= 2).long() * mask)
    grads = GradientSaliency(model).attribute(ids, mask, labels, normalize=False, token_type_ids=segments)
    masked = MaskSaliency(model).attribute(ids, mask, labels, token_type_ids=segments, max_batch=4)
    for b, length in enumerate(LENGTHS):
        one = {"input_ids": ids[b:b + 1, :length], "token_type_ids": segments[b:b + 1, :length]}
        embeds = model.embeddings(one["input_ids"]).detach().requires_grad_()
        F.cross_entropy(model(inputs_embeds=embeds, token_type_ids=one["token_type_ids"]), labels[b:b + 1]).backward()
        torch.testing.assert_close(grads[b, :length], embeds.grad[0].norm(dim=-1))
        with torch.no_grad():
            full = model(**one).softmax(-1)[0, labels[b]]
            for t in range(length):
                keep = torch.ones(1, length, dtype=torch.long)
                keep[0, t] = 0
                without = model(**one, attention_mask=keep).softmax(-1)[0, labels[b]]
                torch.testing.assert_close(masked[b, t], (full - without).abs())
    plain = GradientSaliency(model).attribute(ids, mask, labels, normalize=False)
    assert not torch.allclose(plain, grads)


# --- chunking by a memory budget -------------------------------------------------------------------------------

def twin(kind: str, dropout: float = 0.0) -> SequenceClassifier:
    """Tiny float64 twins of the papers' three architectures (and BERT), 3 classes."""
    torch.manual_seed(0)
    if kind == "llama":
        config = LlamaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                             num_key_value_heads=2, intermediate_size=40, max_position_embeddings=32,
                             attention_dropout=dropout, pad_token_id=0)
    elif kind == "electra":
        config = ElectraConfig(vocab_size=60, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                               hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    else:
        return tiny_model(kind, dropout)
    return SequenceClassifier.from_config(config, num_labels=3, dropout=dropout).double()


def saved_bytes_per_row(model: SequenceClassifier, tokens: int, double: bool, autocast: bool = False) -> int:
    """Bytes of the tensors autograd saves (parameters left out) for one more row of `tokens` tokens: the
    difference between a forward of two rows and of one, with the first backward's graph kept if `double`."""
    def saved(rows: int) -> int:
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        storages: dict[int, int] = {}

        def pack(t):
            if t.untyped_storage().data_ptr() not in params:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        ids = torch.randint(3, 60, (rows, tokens), generator=torch.Generator().manual_seed(0))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), analysis_mode(model, double), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            embeds = model.embeddings(ids).detach().requires_grad_()
            out = model(inputs_embeds=embeds, attention_mask=torch.ones_like(ids))[:, 0].sum()
            if double:
                torch.autograd.grad(out, embeds, create_graph=True)
        return sum(storages.values())
    return saved(2) - saved(1)


@pytest.mark.parametrize("kind", ("bert", "opt", "llama", "electra"))
def test_activation_estimate_bounds_what_autograd_saves_per_row(kind):
    model = twin(kind)
    for tokens in (8, 24):
        for kind_, double in (("graph", False), ("double", True)):
            measured = saved_bytes_per_row(model, tokens, double)
            estimate = activation_bytes(model, tokens, kind_)
            assert measured <= estimate <= 4 * measured, (kind_, tokens, measured, estimate)
    model.float()  # bf16 autocast over float32 weights, as training on a GPU runs
    for kind_, double in (("graph", False), ("double", True)):
        measured = saved_bytes_per_row(model, 24, double, autocast=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            estimate = activation_bytes(model, 24, kind_)
        assert measured <= estimate <= 4 * measured, (kind_, "autocast", measured, estimate)
    model.double()
    inference, graph, double = (activation_bytes(model, 8, k) for k in ("inference", "graph", "double"))
    assert inference < graph < double
    assert chunk_rows(model, 8, "graph", 5 * activation_bytes(model, 8, "graph") + 1) == 5
    assert chunk_rows(model, 8, "graph", 1) == 1
    with pytest.raises(ValueError, match="unknown kind"):
        activation_bytes(model, 8, "triple")


def test_memory_budget_comes_from_the_argument_then_the_environment_then_the_device(monkeypatch):
    monkeypatch.delenv(MEMORY_BUDGET_ENV, raising=False)
    assert budget_bytes("cpu") == CPU_BUDGET
    assert budget_bytes("cpu", 12345) == 12345
    for bad in (0, -5, True, 2.5):
        with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes"):
            budget_bytes("cpu", bad)
    for text, expected in (("2MiB", 2 * 2**20), ("1.5e3", 1500), ("3 GB", 3 * 10**9), ("24GiB", 24 * 2**30),
                           ("7", 7), ("40%", 0.4)):
        assert parse_memory(text) == expected
    for bad in ("lots", "0", "150%", "-3GiB", "12 parsecs"):
        with pytest.raises(ValueError, match=MEMORY_BUDGET_ENV):
            parse_memory(bad)
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "2MiB")
    assert budget_bytes("cpu") == 2 * 2**20 and budget_bytes("cpu", 99) == 99
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "50%")
    assert 0 < budget_bytes("cpu") < budget_bytes("cpu", 10**15)


def test_deterministic_mode_fixes_the_gpu_chunk_budget_whatever_memory_is_free(monkeypatch):
    """Without the switch a GPU's chunk budget follows the memory free at that moment (two reruns beside other
    processes chunk differently, and mask-saliency runs differed in their last bits on an H100); with it the
    budget is fixed. No GPU is needed: free memory is what the test sets."""
    from compnb import determinism, saliency
    monkeypatch.delenv(MEMORY_BUDGET_ENV, raising=False)
    monkeypatch.delenv(determinism.ENV, raising=False)
    cuda = torch.device("cuda")
    budgets = {}
    for free in (10 * 2**30, 60 * 2**30):
        monkeypatch.setattr(saliency, "_free_bytes", lambda device, free=free: free)
        budgets[free] = budget_bytes(cuda)
        monkeypatch.setenv(determinism.ENV, "1")
        assert budget_bytes(cuda) == determinism.FIXED_BUDGET
        assert budget_bytes(cuda, 99) == 99
        monkeypatch.setenv(MEMORY_BUDGET_ENV, "3GiB")
        assert budget_bytes(cuda) == 3 * 2**30
        monkeypatch.setenv(MEMORY_BUDGET_ENV, "40%")
        with pytest.raises(ValueError, match="40%.*COMPNB_DETERMINISTIC=1 cannot repeat"):
            budget_bytes(cuda)
        monkeypatch.delenv(MEMORY_BUDGET_ENV)
        monkeypatch.setenv(determinism.ENV, "0")
    assert budgets[10 * 2**30] != budgets[60 * 2**30]
    assert budget_bytes("cpu") == CPU_BUDGET


class RowCounter:
    """Rows of each forward of the model (a forward hook)."""

    def __init__(self, model: SequenceClassifier):
        self.calls: list[int] = []
        model.register_forward_hook(lambda module, args, kwargs, out: self.calls.append(len(out)), with_kwargs=True)


def scores_and_grads(kind: str, method: str, budget: int | None, **kwargs):
    """(scores, parameter gradients of Σ scores², rows of each forward) with dropout-0.3 twins left in train mode,
    so a chunk recomputed outside eval mode would change the gradients."""
    model = twin(kind, dropout=0.3).train()
    counter = RowCounter(model)
    ids, mask, labels = tiny_batch("opt" if kind == "opt" else "bert")
    explainer = MaskSaliency(model) if method == "mask" else IntegratedGradients(model)
    extra = {} if method == "mask" else {"n_steps": 4}
    scores = explainer.attribute(ids, mask, labels, memory_budget=budget, **extra, **kwargs)
    if scores.requires_grad:
        (scores ** 2).sum().backward()
    assert model.training and all(m.training for m in model.modules())
    return scores.detach(), [p.grad for p in model.parameters()], counter.calls


def assert_same_grads(first: list, second: list, some: bool = True) -> None:
    """The same gradients (None where None), and, if `some`, at least one nonzero."""
    assert [g is None for g in first] == [g is None for g in second]
    assert any(g is not None and g.abs().sum() > 0 for g in first) == some
    for a, b in zip(first, second):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ("bert", "opt", "llama", "electra"))
@pytest.mark.parametrize("method, kwargs", [("mask", {"differentiable": True}), ("mask", {}),
                                            ("ig", {"differentiable": True}), ("ig", {"input_graph": True}),
                                            ("ig", {})])
def test_chunking_by_the_budget_changes_neither_scores_nor_parameter_gradients(kind, method, kwargs):
    """A budget of 1 byte puts one row in each chunk; the default budget (8 GiB on a CPU) one chunk in all."""
    whole, g_whole, calls_whole = scores_and_grads(kind, method, None, **kwargs)
    chunked, g_chunked, calls_chunked = scores_and_grads(kind, method, 1, **kwargs)
    rows = sum(LENGTHS) + len(LENGTHS) if method == "mask" else 4 * len(LENGTHS)
    assert calls_whole == [rows]
    # one row a forward (checkpointed chunks run again in the backward, where a recompute may stop early,
    # before the hook fires)
    assert set(calls_chunked) == {1} and len(calls_chunked) >= rows
    torch.testing.assert_close(chunked, whole, rtol=1e-10, atol=1e-13)
    assert_same_grads(g_whole, g_chunked, some=bool(kwargs))


def test_checkpointed_path_gradients_recompute_under_the_forwards_autocast():
    """bf16 autocast on a CPU, the backward called after autocast is left (as a training loop does): the chunks
    recomputed in the backward run in bf16 again, as the forward did, and give the kept graph's gradients."""
    ids, mask, labels = tiny_batch("bert")
    results = []
    for budget in (None, 1):
        model = twin("bert").float()
        dtypes = []
        model.backbone.encoder.layer[0].attention.self.query.register_forward_hook(
            lambda module, args, out: dtypes.append(out.dtype))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            scores = IntegratedGradients(model).attribute(ids, mask, labels, n_steps=3, differentiable=True,
                                                          memory_budget=budget)
        (scores.float() ** 2).sum().backward()
        assert set(dtypes) == {torch.bfloat16} and len(dtypes) == (1 if budget is None else 18)
        results.append([p.grad for p in model.parameters() if p.grad is not None])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=2e-2, atol=1e-4)
