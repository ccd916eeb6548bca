"""Architecture twins: tiny random-initialised OPT, Llama and ELECTRA models with their real tokenizer types,
built offline and saved where `compnb.models` looks for real names (`$COMPNB_MODELS_DIR/<org>__<name>/`).

Each twin keeps what makes its architecture differ from the book's MiniLM stand-in and drops only size
(2 layers, hidden 64, vocabulary about 1,000):

- `compnb-twins/opt-tiny`: `OPTForCausalLM` weights (the hub checkpoints' layout) with `word_embed_proj_dim`
  32 != `hidden_size` 64, so the model projects its embeddings in and its output out (as OPT-350m); a
  byte-level BPE `GPT2Tokenizer` whose BOS, EOS and unknown token are all `</s>` (OPT's conventions: vocab
  `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3; a BOS before every sequence, so a pair is `</s> A </s> B`).
- `compnb-twins/llama-tiny`: `LlamaForCausalLM` weights with grouped-query attention (4 heads, 2 key/value
  heads) and a `LlamaTokenizer` (metaspace BPE with byte fallback, `<unk>` 0, `<s>` 1, `</s>` 2, then the 256
  byte tokens) that has NO pad token and pads on the left, as Llama-2's; a pair is `<s> A <s> B`.
- `compnb-twins/electra-tiny`: `ElectraForPreTraining` weights (ELECTRA-small-discriminator's layout) with
  `embedding_size` 32 != `hidden_size` 64, and a WordPiece `ElectraTokenizerFast` with [MASK] and segment ids.

The BPE and WordPiece vocabularies are trained with the `tokenizers` library on a few hundred sentences of the
offline SST-2 and SNLI data (or a built-in list when those are absent), so real sentences tokenize into
real-looking pieces. Building all three takes about a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, trainers
from tokenizers import models as token_models
from transformers import (ElectraConfig, ElectraForPreTraining, ElectraTokenizerFast, GPT2TokenizerFast, LlamaConfig,
                          LlamaForCausalLM, LlamaTokenizerFast, OPTConfig, OPTForCausalLM)

from compnb.paths import data_search_paths

ORG = "compnb-twins"
OPT, LLAMA, ELECTRA = f"{ORG}/opt-tiny", f"{ORG}/llama-tiny", f"{ORG}/electra-tiny"
NAMES = (OPT, LLAMA, ELECTRA)
DECODERS = (OPT, LLAMA)
MAX_POSITIONS = 128
VOCAB = 1000
FALLBACK_TEXTS = ["A man is playing a guitar on the stage.", "Two dogs run through a snowy field.",
                  "A woman is slicing onions in a kitchen.", "Children are not playing outside today.",
                  "a fine , funny film", "the plot is dull and the acting is worse", "nobody sleeps",
                  "Someone cooks.", "Kids might be indoors.", "The animals are sleeping."]


def corpus(n: int = 300) -> list[str]:
    """Up to `n` SST-2 sentences and n/2 SNLI premises and hypotheses each from the offline data, else a
    short built-in list."""
    import pandas as pd

    for folder in data_search_paths():
        sst2, snli = folder / "sst2" / "train.parquet", folder / "snli" / "train_sample.parquet"
        if sst2.is_file() and snli.is_file():
            pairs = pd.read_parquet(snli).head(n // 2)
            return (pd.read_parquet(sst2)["sentence"].head(n).tolist() + pairs["premise"].tolist()
                    + pairs["hypothesis"].tolist())
    return FALLBACK_TEXTS


def opt_tokenizer(texts: list[str]) -> GPT2TokenizerFast:
    """Byte-level BPE in OPT's conventions (see the module docstring)."""
    backend = Tokenizer(token_models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return GPT2TokenizerFast(tokenizer_object=backend, bos_token="</s>", eos_token="</s>", unk_token="</s>",
                             pad_token="<pad>", add_bos_token=True, model_max_length=MAX_POSITIONS)


def llama_tokenizer(texts: list[str]) -> LlamaTokenizerFast:
    """Metaspace BPE with byte fallback in Llama-2's conventions (no pad token; see the module docstring)."""
    backend = Tokenizer(token_models.BPE(unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=VOCAB - 256, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    trained = json.loads(backend.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for token, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    return LlamaTokenizerFast(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False,
                              model_max_length=MAX_POSITIONS)


def electra_tokenizer(texts: list[str]) -> ElectraTokenizerFast:
    """Lower-cased WordPiece with [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4."""
    backend = Tokenizer(token_models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=VOCAB, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    return ElectraTokenizerFast(vocab=json.loads(backend.to_str())["model"]["vocab"], model_max_length=MAX_POSITIONS)


def opt_model(vocab_size: int) -> OPTForCausalLM:
    return OPTForCausalLM(OPTConfig(vocab_size=vocab_size, hidden_size=64, word_embed_proj_dim=32, num_hidden_layers=2,
                                    ffn_dim=128, num_attention_heads=4, max_position_embeddings=MAX_POSITIONS,
                                    pad_token_id=1, bos_token_id=2, eos_token_id=2))


def llama_model(vocab_size: int) -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=MAX_POSITIONS, bos_token_id=1, eos_token_id=2,
                                        pad_token_id=None, tie_word_embeddings=False))


def electra_model(vocab_size: int) -> ElectraForPreTraining:
    return ElectraForPreTraining(ElectraConfig(vocab_size=vocab_size, embedding_size=32, hidden_size=64,
                                               num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                               max_position_embeddings=MAX_POSITIONS, pad_token_id=0))


BUILDERS = {OPT: (opt_tokenizer, opt_model), LLAMA: (llama_tokenizer, llama_model),
            ELECTRA: (electra_tokenizer, electra_model)}


def folder_of(root: str | Path, name: str) -> Path:
    """Where `compnb.models` looks for `name` under `$COMPNB_MODELS_DIR` = root."""
    return Path(root) / name.replace("/", "__")


def build(root: str | Path, names: tuple[str, ...] = NAMES, seed: int = 0) -> dict[str, Path]:
    """Save each twin (config, weights, tokenizer) as `root/<org>__<name>/`; name → folder."""
    texts, out = corpus(), {}
    for name in names:
        make_tokenizer, make_model = BUILDERS[name]
        tokenizer = make_tokenizer(texts)
        torch.manual_seed(seed)
        folder = folder_of(root, name)
        make_model(len(tokenizer)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        out[name] = folder
    return out
