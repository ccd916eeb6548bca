"""A batch split into `grad_accum` micro-batches, through the training loop's own step (`training._Run._eager_step`),
gets the gradient and the logs of one step on the whole batch (float64, to 1e-10 relative): every competency
form × saliency method × architecture twin (OPT, Llama, ELECTRA), and the IG-variance loss in both variants;
with dropout on, the statistics pass and the step draw the same masks. Only a loss non-linear in its means takes
the statistics pass; an unsplit step never takes the split path. The two-rank cases (DDP and FSDP2) are in
tests/test_sharding.py."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F
import twins
from test_twins import HYPOTHESES, LABELS, PREMISES

from compnb import batch_stats, batching, data, losses, models, penalties
from compnb.chapters.split_exactness import relative_difference, step

FORMS, METHODS = losses.FORMS, losses.METHODS
TOLERANCE = 1e-10  # max |Δ gradient| over the largest gradient entry
# α·Var_attr about 1 on each random twin's pairs, where tanh is far from linear
IG_ALPHA = {twins.OPT: 4e6, twins.LLAMA: 1e3, twins.ELECTRA: 6e4}


pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def twin(name: str) -> tuple[models.SequenceClassifier, list[dict], batching.PadCollator]:
    """(float64 twin, its four sentence pairs as `Encoded` items, the training collator padding every batch to 32
    tokens: micro-batches padded to their own longest would move Llama's left-padded rows to other positions,
    which changes its float32 rotary embeddings by about 1e-8 relative, whatever the loss)."""
    torch.manual_seed(0)
    model, tokenizer = models.SequenceClassifier.from_pretrained(name, 3)
    ids = tokenizer(PREMISES, HYPOTHESES, truncation=True, max_length=32, return_attention_mask=False)
    keys = [k for k in data.PRETOKENIZED if k in tokenizer.model_input_names]
    items = [{**{k: ids[k][i] for k in keys}, "labels": LABELS[i], "index": i} for i in range(len(LABELS))]
    return model.double(), items, batching.PadCollator(tokenizer.pad_token_id, tokenizer.padding_side, 32, None, 32)


def split_against_whole(name: str, loss: str, params: dict, train: bool = False):
    """(gradients, logs) of the whole batch in one step and of it as two micro-batches of two (grad_accum 2)."""
    base, items, pad = twin(name)
    model = copy.deepcopy(base).train(train)
    whole = step(model, [pad(items)], loss, params, 1)
    split = step(model, batching.MicroBatches(pad, 2)(items), loss, params, 2)
    return whole, split


@pytest.mark.parametrize("name", twins.NAMES, ids=lambda n: n.split("/")[1])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("form", FORMS)
def test_two_micro_batches_step_as_the_whole_batch(twins_dir, name, method, form):
    (whole, whole_logs), (split, split_logs) = split_against_whole(
        name, "competency", {"method": method, "form": form, "lam": 0.5})
    assert relative_difference(split, whole) < TOLERANCE
    assert split_logs.keys() == whole_logs.keys() == {"loss", "ce", "H_topk"}
    for key, value in whole_logs.items():
        assert split_logs[key] == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize("name", twins.NAMES, ids=lambda n: n.split("/")[1])
@pytest.mark.parametrize("variant", ["differentiable", "detached"])
def test_the_ig_variance_loss_steps_as_the_whole_batch(twins_dir, name, variant):
    (whole, whole_logs), (split, split_logs) = split_against_whole(
        name, "ig_variance", {"variant": variant, "n_steps": 3, "alpha": IG_ALPHA[name]})
    assert relative_difference(split, whole) < TOLERANCE
    assert split_logs.keys() == whole_logs.keys() == {"loss", "ce", "tanh_var"}
    for key, value in whole_logs.items():
        assert split_logs[key] == pytest.approx(value, rel=1e-6), key  # CE is float32 in this loss


def test_with_dropout_the_statistics_pass_draws_the_masks_of_the_step(twins_dir):
    """Reference: the loss at the means of the rows as the micro-batches compute them in a row from one random
    state, every graph kept, one backward."""
    params = {"method": "gradient", "form": "exp_subtract", "lam": 0.5}
    base, items, pad = twin(twins.ELECTRA)
    model, parts = copy.deepcopy(base).train(), batching.MicroBatches(pad, 2)(items)
    torch.manual_seed(1)
    ce, h = [], []
    for part in parts:
        logits, s = penalties.gradient_s(model, part)
        ce.append(F.cross_entropy(logits, part["labels"], reduction="none"))
        h.append(penalties.topk_entropy(s, 5))
    penalties.combine(torch.cat(ce).mean(), 0.5 * torch.cat(h).mean(), params["form"]).backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    torch.manual_seed(1)
    grads, _ = step(model, parts, "competency", params, 2)
    assert relative_difference(grads, reference) < TOLERANCE


def test_an_unsplit_step_never_takes_the_split_path(twins_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("split_loss on an unsplit batch")

    monkeypatch.setattr(batch_stats, "split_loss", refuse)
    base, items, pad = twin(twins.OPT)
    grads, logs = step(copy.deepcopy(base), [pad(items)], "competency", {"form": "inverse", "lam": 0.5}, 1)
    assert grads and set(logs) == {"loss", "ce", "H_topk"}


@pytest.mark.parametrize("loss, params, passes", [
    ("competency", {"method": "gradient", "form": "exp_subtract", "lam": 0.5}, 2),
    ("competency", {"method": "gradient", "form": "inverse", "lam": 0.5}, 2),
    ("competency", {"method": "gradient", "form": "subtract", "lam": 0.5}, 1),  # linear: F at pseudo-means
    ("competency", {"method": "gradient", "form": "inverse", "lam": 0.0}, 1),  # plain cross-entropy
    ("ig_variance", {"n_steps": 1}, 2),
    ("ce", {}, 1),
])
def test_only_a_loss_non_linear_in_its_means_takes_a_statistics_pass(twins_dir, loss, params, passes):
    base, items, pad = twin(twins.OPT)
    model, forwards = copy.deepcopy(base), []
    model.register_forward_hook(lambda *args: forwards.append(1))
    step(model, batching.MicroBatches(pad, 2)(items), loss, params, 2)
    per_micro_batch = 2 if loss == "ig_variance" else 1  # the IG path points (one step, one chunk): one more
    assert len(forwards) == passes * 2 * per_micro_batch


@pytest.mark.parametrize("name", twins.NAMES, ids=lambda n: n.split("/")[1])
def test_cross_entropy_of_unequal_parts_steps_as_the_whole_batch(twins_dir, name):
    """Parts of 3 and 1 rows: each part's sum over the whole batch's count, so that the parts add up to its mean
    (the same division puts unequal ranks right, where DDP averages the ranks' gradients)."""
    base, items, pad = twin(name)
    model = copy.deepcopy(base).eval()
    whole, whole_logs = step(model, [pad(items)], "ce", {}, 1)
    parts = batching.MicroBatches(pad, 3)(items)
    assert [len(p["labels"]) for p in parts] == [3, 1]
    split, split_logs = step(model, parts, "ce", {}, 2)
    assert relative_difference(split, whole) < TOLERANCE
    assert split_logs["ce"] == pytest.approx(whole_logs["ce"], rel=1e-6)  # the loss takes CE in float32
