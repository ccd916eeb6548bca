"""Static shapes for a captured training step: `PadCollator`'s length buckets and zero-weight padding rows, and
that every registered loss gives the unpadded batch's loss, logs and parameter gradients on the padded batch
(tiny float64 BERT and ELECTRA; also within `saliency.static_shapes()`, as the captured step runs); plus the
loop's device-side log window."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from transformers import BertConfig, ElectraConfig

from compnb import ig_variance, losses, penalties, saliency, training
from compnb.models import SequenceClassifier
from compnb.batching import PadCollator
from compnb.training import LogWindow

PAD, VOCAB, LENGTHS, LABELS = 0, 60, (11, 7, 4, 9), (0, 2, 1, 2)
BUCKET, EXTRA_ROWS = 16, 3
CONFIGS = {
    "bert": lambda: BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0),
    "electra": lambda: ElectraConfig(vocab_size=VOCAB, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
}
LOSS_CASES = [("ce", {})] + [
    ("competency", {"lam": 0.5, "form": form, "method": method, "k": 3})
    for method in losses.METHODS for form in losses.FORMS] + [
    ("ig_variance", {"lam": 0.5, "alpha": 10.0, "n_steps": 4, "variant": variant}) for variant in ig_variance.VARIANTS]


def case_id(value) -> str:
    return value if isinstance(value, str) else "-".join(str(v) for k, v in value.items() if k in ("method", "form",
                                                                                                  "variant"))


def tiny_model(backbone: str) -> SequenceClassifier:
    """A randomly initialised float64 classifier (3 labels), dropout off, in train mode."""
    torch.manual_seed(0)
    return SequenceClassifier.from_config(CONFIGS[backbone](), num_labels=3, dropout=0.0).double().train()


def items(lengths=LENGTHS) -> list[dict]:
    """`Encoded`-style items: sentence pairs of the given lengths (segment 1 from the middle), labels, index."""
    generator = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(3, VOCAB, (n,), generator=generator).tolist(),
             "token_type_ids": [0] * (n // 2) + [1] * (n - n // 2), "labels": LABELS[i % len(LABELS)], "index": i}
            for i, n in enumerate(lengths)]


def batches() -> tuple[dict, dict]:
    """(the batch padded to its longest item, the same items padded to a bucket with zero-weight rows)."""
    rows = items()
    static = PadCollator(PAD, bucket=BUCKET, rows=len(rows) + EXTRA_ROWS, max_length=32)
    return PadCollator(PAD)(rows), static(rows)


def loss_and_grads(backbone: str, loss: str, params: dict, batch: dict):
    """(loss, logs, {parameter name: gradient}) of `loss` on `batch` from the same initial weights."""
    model = tiny_model(backbone)
    value, logits, logs = training.LOSSES[loss](model, batch, params)
    value.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    return value.detach(), logs, grads


# --------------------------------------------------------------------------- the collator


@pytest.mark.parametrize("lengths, padded", [((3, 11), 16), ((16,), 16), ((17, 2), 32), ((35, 5), 40),
                                             ((40,), 40)])
def test_the_length_is_a_multiple_of_the_bucket_capped_at_max_length(lengths, padded):
    batch = PadCollator(PAD, bucket=BUCKET, max_length=40)(items(lengths))
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape
    assert batch["input_ids"].shape == (len(lengths), padded) and "weight" not in batch
    assert batch["attention_mask"].sum(1).tolist() == list(lengths)
    assert (batch["input_ids"][batch["attention_mask"] == 0] == PAD).all()


@pytest.mark.parametrize("side", ["right", "left"])
def test_rows_pads_the_batch_with_zero_weight_copies_of_its_first_row(side):
    rows = items((5, 9, 3))
    batch = PadCollator(PAD, side, bucket=8, rows=6)(rows)
    plain = PadCollator(PAD, side)(rows)
    assert batch["input_ids"].shape == (6, 16)
    assert batch["weight"].dtype == torch.float32 and batch["weight"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert batch["labels"].tolist() == [0, 2, 1, 0, 0, 0] and batch["index"].tolist() == [0, 1, 2, 0, 0, 0]
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert (batch[key][3:] == batch[key][0]).all(), key
        real = batch[key][:3, -9:] if side == "left" else batch[key][:3, :9]
        assert torch.equal(real, plain[key]), key
    assert set(PadCollator(PAD, rows=3)(rows)) == set(plain) | {"weight"}  # a full batch is weighted too
    assert "weight" not in training.model_inputs(batch) and "weight" not in penalties.model_inputs(batch)


def test_without_settings_the_collator_pads_to_the_longest_as_before():
    batch = PadCollator(PAD)(items((5, 9, 3)))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "index"}
    assert batch["input_ids"].shape == (3, 9)


@pytest.mark.parametrize("settings, rows, message", [
    ({"rows": 2}, (3, 4, 5), "a batch of 3 items does not fit in rows=2"),
    ({"bucket": 16, "max_length": 8}, (9,), "more than max_length 8"),
    ({"bucket": 0}, (3,), "bucket must be an integer >= 1 or None, got 0"),
    ({"rows": 2.0}, (3,), "rows must be an integer >= 1 or None, got 2.0"),
])
def test_bad_settings_and_batches_that_do_not_fit_are_refused(settings, rows, message):
    with pytest.raises(ValueError, match=message):
        PadCollator(PAD, **settings)(items(rows))


# --------------------------------------------------------------------------- every loss on a padded batch


@pytest.mark.parametrize("backbone", CONFIGS)
@pytest.mark.parametrize("loss, params", LOSS_CASES, ids=case_id)
def test_padded_batch_gives_the_unpadded_loss_logs_and_gradients(backbone, loss, params):
    plain, padded = batches()
    assert padded["input_ids"].shape == (len(LENGTHS) + EXTRA_ROWS, BUCKET) and plain["input_ids"].shape[1] == 11
    value, logs, grads = loss_and_grads(backbone, loss, params, plain)
    value_p, logs_p, grads_p = loss_and_grads(backbone, loss, params, padded)
    torch.testing.assert_close(value_p, value, rtol=1e-10, atol=0)
    assert logs.keys() == logs_p.keys() and all(v.dim() == 0 and not v.requires_grad for v in logs_p.values())
    torch.testing.assert_close(logs_p, logs, rtol=1e-10, atol=0)
    assert grads.keys() == grads_p.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_p[name], grad, rtol=1e-10, atol=1e-14, msg=name)
    # The weights matter: the padded batch's unweighted means would be another loss.
    unweighted, _, _ = loss_and_grads(backbone, loss, params, {k: v for k, v in padded.items() if k != "weight"})
    assert abs(unweighted - value) > 1e-6 * abs(value)


@pytest.mark.parametrize("saliency", [penalties.gradient_s, penalties.mask_s], ids=["gradient", "mask"])
def test_padding_rows_and_columns_leave_each_real_rows_saliency_unchanged(saliency):
    plain, padded = batches()
    rows, tokens = plain["input_ids"].shape
    logits, s = saliency(tiny_model("bert"), plain)
    logits_p, s_p = saliency(tiny_model("bert"), padded)
    torch.testing.assert_close(logits_p[:rows], logits, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(s_p[:rows, :tokens], s, rtol=1e-10, atol=1e-14)
    assert (s_p[:, tokens:] == 0).all()
    torch.testing.assert_close(s_p[rows:], s_p[:1].expand(EXTRA_ROWS, -1), rtol=1e-10, atol=1e-14)


def test_batch_mean_weighs_rows_only_when_the_batch_has_weights():
    values = torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64)
    assert penalties.batch_mean(values, {}) == 3.0
    assert penalties.batch_mean(values, {"weight": torch.tensor([1.0, 1.0, 0.0])}) == 1.5


# --------------------------------------------------------------------------- the loop's log window


def test_the_log_window_sums_on_the_device_as_the_host_did_and_resumes_from_saved_sums():
    accelerator, steps = Accelerator(cpu=True), [(0.6931471824645996, 0.25), (0.5123, 0.125), (0.25, 1.0)]
    window, host = LogWindow(accelerator.device, {}), {"loss": 0.0, "ce": 0.0}
    for k, (loss, ce) in enumerate(steps):
        window.add(["loss", "ce"], torch.tensor([loss, ce], dtype=torch.float64), 4 + k)
        host = {"loss": host["loss"] + loss, "ce": host["ce"] + ce}
    examples, sums = window.read(accelerator)
    assert examples == 15 and sums == host  # bitwise: the same float64 additions in the same order
    assert window.read(accelerator) == (0, host)  # the examples count restarts; the window does not
    resumed = LogWindow(accelerator.device, dict(sorted(sums.items())))  # as a checkpoint saves them: sorted
    resumed.add(["loss", "ce"], torch.tensor([1.0, 2.0], dtype=torch.float64), 4)
    assert resumed.read(accelerator)[1] == {"loss": host["loss"] + 1.0, "ce": host["ce"] + 2.0}
    window.clear()
    assert window.read(accelerator) == (0, {"loss": 0.0, "ce": 0.0})
    with pytest.raises(ValueError, match=r"a step logged \['loss'\], the steps before it \['loss', 'ce'\]"):
        window.add(["loss"], torch.zeros(1, dtype=torch.float64), 1)


@pytest.mark.parametrize("loss, params", [case for case in LOSS_CASES
                                         if case[0] != "ce" and case[1].get("method") != "gradient"],
                         ids=case_id)
def test_padded_batch_under_the_captured_steps_static_saliency_shapes_gives_the_unpadded_loss(loss, params):
    """What the captured step runs: the padded batch within `saliency.static_shapes()` (mask saliency drops
    every position, chunks sized by the fixed budget) against the unpadded batch outside it."""
    plain, padded = batches()
    value, logs, grads = loss_and_grads("bert", loss, params, plain)
    with saliency.static_shapes():
        value_p, logs_p, grads_p = loss_and_grads("bert", loss, params, padded)
    torch.testing.assert_close(value_p, value, rtol=1e-10, atol=0)
    torch.testing.assert_close(logs_p, logs, rtol=1e-10, atol=0)
    assert grads.keys() == grads_p.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_p[name], grad, rtol=1e-10, atol=1e-14, msg=name)
