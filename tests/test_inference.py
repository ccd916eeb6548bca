"""compnb.inference: static-shape prediction gives each example's own (unpadded) probabilities, in the input
order, without filler rows, through a few shapes; gathered validation gives the same; on a GPU, captured
forwards give the eager forwards' probabilities. Tiny random float32 BERT (right padding) and OPT (left)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from transformers import BertConfig, OPTConfig

from compnb import captured, inference
from compnb.batching import Encoded, PadCollator, sorted_batches
from compnb.models import SequenceClassifier
from compnb.penalties import model_inputs

PAD, VOCAB, CLASSES, BATCH = 0, 60, 3, 4
LENGTHS = (5, 40, 12, 3, 17, 33, 8, 16, 29, 9, 21)  # 11 examples: batches of 4 end with a partial one
BACKBONES = {  # config, padding side, whether the model takes segment ids
    "bert": (lambda: BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=64), "right", True),
    "opt": (lambda: OPTConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              ffn_dim=32, max_position_embeddings=64, word_embed_proj_dim=16, pad_token_id=PAD),
            "left", False),
}


def setup(backbone: str, lengths=LENGTHS) -> tuple[SequenceClassifier, Encoded, SimpleNamespace]:
    """(a randomly initialised classifier in eval mode, encoded examples of `lengths`, a tokenizer stand-in)."""
    config, side, segments = BACKBONES[backbone]
    torch.manual_seed(0)
    model = SequenceClassifier.from_config(config(), num_labels=CLASSES).eval()
    generator = torch.Generator().manual_seed(1)
    columns = {"input_ids": [torch.randint(3, VOCAB, (n,), generator=generator).tolist() for n in lengths]}
    if segments:
        columns["token_type_ids"] = [[0] * (n // 2) + [1] * (n - n // 2) for n in lengths]
    encoded = Encoded(columns, [i % CLASSES for i in range(len(lengths))])
    return model, encoded, SimpleNamespace(pad_token_id=PAD, padding_side=side)


def alone(model: SequenceClassifier, encoded: Encoded, side: str) -> np.ndarray:
    """Probabilities (n, classes) of each example on its own, unpadded."""
    with torch.no_grad():
        return np.stack([model(**model_inputs(PadCollator(PAD, side)([encoded[i]]))).softmax(-1)[0].numpy()
                         for i in range(len(encoded))])


def record_shapes(model: SequenceClassifier) -> list[tuple[int, int]]:
    """The (rows, tokens) of every forward the model runs from now on."""
    shapes: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                    with_kwargs=True)
    return shapes


@pytest.mark.parametrize("backbone", BACKBONES)
def test_static_padded_predictions_are_each_examples_own(backbone):
    model, encoded, tokenizer = setup(backbone)
    probs = inference.predict_encoded(model, tokenizer, encoded, BATCH)
    assert probs.shape == (len(LENGTHS), CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, alone(model, encoded, tokenizer.padding_side), rtol=0, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_filler_rows_are_dropped_and_every_example_comes_back_once_in_order(backbone):
    model, encoded, tokenizer = setup(backbone)
    batches = sorted_batches(encoded.lengths, BATCH)
    assert len(batches[-1]) < BATCH  # the last batch gets filler rows
    shapes = record_shapes(model)
    index, probs = inference.infer(inference.EagerForward(model), encoded, batches,
                                   inference.static_collator(tokenizer, encoded, BATCH), torch.device("cpu"))
    assert [rows for rows, _ in shapes] == [BATCH] * len(batches)  # the model saw the filler rows
    assert index.tolist() == [i for rows in batches for i in rows] and sorted(index) == list(range(len(LENGTHS)))
    assert probs.shape == (len(LENGTHS), CLASSES)  # and returned none of them
    np.testing.assert_allclose(probs, alone(model, encoded, tokenizer.padding_side)[index], rtol=0, atol=1e-5)


def test_a_set_smaller_than_the_batch_is_one_batch_of_its_own_size():
    model, encoded, tokenizer = setup("bert", (5, 12, 3))
    shapes = record_shapes(model)
    probs = inference.predict_encoded(model, tokenizer, encoded, 64)
    assert shapes == [(3, 12)]  # three rows; a bucket (16) would be longer than the longest example
    np.testing.assert_allclose(probs, alone(model, encoded, "right"), rtol=0, atol=1e-5)


def test_lengths_come_in_buckets_so_that_few_shapes_occur():
    lengths = tuple(range(1, 41))  # every length from 1 to 40
    model, encoded, tokenizer = setup("bert", lengths)
    shapes = record_shapes(model)
    inference.predict_encoded(model, tokenizer, encoded, BATCH)
    assert len(shapes) == len(lengths) // BATCH and {rows for rows, _ in shapes} == {BATCH}
    assert {tokens for _, tokens in shapes} == {16, 32, 40}  # multiples of the bucket, capped at the longest
    assert len(set(shapes)) <= math.ceil(max(lengths) / captured.LENGTH_BUCKET)
    dynamic = {max(lengths[i] for i in rows) for rows in sorted_batches(encoded.lengths, BATCH)}
    assert len(dynamic) == len(shapes)  # padding to each batch's longest would have given every batch its shape


def test_gathered_validation_probabilities_are_the_predictions_in_order():
    model, encoded, tokenizer = setup("bert")
    gathered = inference.gather_probs(Accelerator(cpu=True), inference.EagerForward(model), encoded, BATCH,
                                      inference.static_collator(tokenizer, encoded, BATCH))
    np.testing.assert_array_equal(gathered, inference.predict_encoded(model, tokenizer, encoded, BATCH))


def test_the_eager_forward_autocasts_when_given_a_dtype():
    model, encoded, tokenizer = setup("bert")
    batch = inference.static_collator(tokenizer, encoded, BATCH)([encoded[i] for i in range(BATCH)])
    full = inference.EagerForward(model)(model_inputs(batch))
    half = inference.EagerForward(model, torch.bfloat16)(model_inputs(batch))
    assert half.dtype == full.dtype == torch.float32 and not torch.equal(half, full)
    torch.testing.assert_close(half, full, rtol=0, atol=2e-2)


def test_a_captured_forward_is_refused_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        inference.CapturedForward(setup("bert")[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("dtype, atol", [(None, 1e-5), (torch.bfloat16, 1e-2)], ids=["float32", "bf16-autocast"])
def test_captured_forwards_give_the_eager_forwards_probabilities(backbone, dtype, atol):
    model, encoded, tokenizer = setup(backbone)
    device, size = torch.device("cuda"), 2  # batches of 2: several batches share a shape
    model.to(device)
    batches = sorted_batches(encoded.lengths, size)
    collate = inference.static_collator(tokenizer, encoded, size)
    index, eager = inference.infer(inference.EagerForward(model, dtype), encoded, batches, collate, device)
    forward = inference.CapturedForward(model, dtype)
    captured_index, graphed = inference.infer(forward, encoded, batches, collate, device)
    shapes = {tuple(collate([encoded[i] for i in rows])["input_ids"].shape) for rows in batches}
    assert forward.shapes == len(shapes) < len(batches)  # one graph per shape, replayed for other batches too
    np.testing.assert_array_equal(captured_index, index)
    np.testing.assert_allclose(graphed, eager, rtol=0, atol=atol)
    again_index, again = inference.infer(forward, encoded, batches[::-1], collate, device)  # replays, other order
    assert forward.shapes == len(shapes)
    np.testing.assert_array_equal(again[np.argsort(again_index)], graphed[np.argsort(index)])
    torch.cuda.synchronize()
