import pytest
import torch

from compnb import models
from compnb.models import SequenceClassifier, pool


def test_encoder_path_mean_pools_real_tokens(tiny_bert_config):
    model = SequenceClassifier.from_config(tiny_bert_config, num_labels=3).eval()
    assert model.pooling == "mean"
    ids = torch.tensor([[2, 5, 7, 0, 0]])
    short = model(input_ids=ids[:, :3], attention_mask=torch.ones(1, 3, dtype=torch.long))
    padded = model(input_ids=ids, attention_mask=torch.tensor([[1, 1, 1, 0, 0]]))
    assert short.shape == (1, 3)
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)


def test_decoder_path_uses_last_real_token(tiny_opt_config):
    model = SequenceClassifier.from_config(tiny_opt_config, num_labels=2).eval()
    assert model.pooling == "last" and models.is_decoder(tiny_opt_config)
    ids = torch.tensor([[4, 5, 6, 1, 1]])
    short = model(input_ids=ids[:, :3], attention_mask=torch.ones(1, 3, dtype=torch.long))
    padded = model(input_ids=ids, attention_mask=torch.tensor([[1, 1, 1, 0, 0]]))
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)


def test_inputs_embeds_equal_token_ids(tiny_bert_config):
    model = SequenceClassifier.from_config(tiny_bert_config).eval()
    ids = torch.tensor([[2, 9, 11]])
    torch.testing.assert_close(model(input_ids=ids), model(inputs_embeds=model.embeddings(ids)))


def test_head_is_dropout_linear_relu_linear(tiny_bert_config):
    head = SequenceClassifier.from_config(tiny_bert_config, num_labels=3).head
    assert [type(m).__name__ for m in head] == ["Dropout", "Linear", "ReLU", "Linear"]
    assert head[-1].out_features == 3


def test_pool_last_handles_left_padding():
    hidden = torch.arange(12.0).reshape(2, 3, 2)
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    torch.testing.assert_close(pool(hidden, mask, "last"), torch.stack([hidden[0, 2], hidden[1, 1]]))


def test_bad_inputs_name_the_value(tiny_bert_config):
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        SequenceClassifier.from_config(tiny_bert_config, pooling="max")
    with pytest.raises(ValueError, match="num_labels must be at least 2"):
        SequenceClassifier.from_config(tiny_bert_config, num_labels=1)
    with pytest.raises(ValueError, match="non-empty"):
        models.resolve_backbone("")


def test_offline_default_backbone_loads_without_network():
    model, tokenizer = SequenceClassifier.from_pretrained(models.DEFAULT_BACKBONE, num_labels=2)
    batch = tokenizer(["a fine film", "dull"], padding=True, return_tensors="pt")
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert logits.shape == (2, 2) and type(model.backbone).__name__ == "BertModel"


def test_unknown_model_is_a_clear_error():
    with pytest.raises(models.ModelNotFoundError, match=r"(?s)cannot load model 'no-such/model'.*all-MiniLM-L6-v2"):
        models.load_backbone("no-such/model")
