"""Run profiles, per chapter: `smoke` (CI on a CPU in minutes), `full` (the book's run on the offline stand-in
backbone and data) and `paper` (the papers' backbones and settings on the complete datasets).

The paper profile needs what this machine lacks: `require_inputs` (called by `settings` and by `compnb chapter`,
so before anything runs or is written) stops with one message naming every backbone and dataset split a chapter
needs that is neither local nor on a reachable hub, and says how to supply each.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROFILES = ("smoke", "full", "paper")
OPT, LLAMA, ELECTRA = "facebook/opt-1.3b", "meta-llama/Llama-2-7b-hf", "google/electra-small-discriminator"

# Per chapter, what each profile changes. Everything else is a parameter of the chapter itself.
CHAPTER_SETTINGS: dict[str, dict[str, dict]] = {
    "01-artifact-mining": {
        "smoke": {"max_examples": 8000},
        "full": {"max_examples": None},
        "paper": {"max_examples": None},  # paper 1 mines SST-2 and SNLI whole
    },
    "02-baseline-finetune": {
        "smoke": {"seeds": (0,), "epochs": 1, "batch_size": 16, "lr": 5e-5, "max_length": 64,
                  "max_train_examples": 800, "max_eval_examples": 160},
        "full": {"seeds": (0, 1, 2), "epochs": 2, "batch_size": 32, "lr": 5e-5, "max_length": 128,
                 "max_train_examples": None, "max_eval_examples": None},
        # paper 1 names the backbones (PAPER_BACKBONES) and the data, and is silent on seeds, epochs, batch size,
        # learning rate, sequence length and early stopping: those are the full profile's
        "paper": {"seeds": (0, 1, 2), "epochs": 2, "batch_size": 32, "lr": 5e-5, "max_length": 128,
                  "max_train_examples": None, "max_eval_examples": None},
    },
    # smoke: a reduced grid (one form, two λ so that the λ explorer's slider has a step to test, both methods, two
    # seeds) on 48 short examples, validated on 24 (the mask method scores each token with its own forward, so
    # its CPU cost grows with rows × length²); full subsamples SST-2 train and runs one epoch so that the sweep
    # fits 20 minutes of one H100 (see the chapter).
    # seeds: the first selects λ, the others (three at full) confirm it without taking part in the choice.
    "03-modified-loss": {
        "smoke": {"seeds": (0, 1), "lams": (0.5, 1.0), "forms": ("subtract",), "epochs": 1, "batch_size": 8,
                  "lr": 5e-5, "max_length": 24, "max_train_examples": 48, "max_eval_examples": 24},
        "full": {"seeds": (0, 1, 2, 3), "lams": (0.1, 0.5, 1.0), "forms": ("inverse", "exp_subtract", "subtract"),
                 "epochs": 1, "batch_size": 64, "lr": 1e-4, "max_length": 64,
                 "max_train_examples": {"sst2": 16000, "snli": None}, "max_eval_examples": None},
        # paper 1: λ ∈ {0.1, 0.5, 1}, the three forms of F, both saliency methods, k = 5 (the chapter's `k`);
        # silent on seeds, epochs, batch size, learning rate and sequence length: the full profile's, except that
        # the training sets are whole (the full profile's SST-2 subsample is a budget choice, not the paper's)
        "paper": {"seeds": (0, 1, 2, 3), "lams": (0.1, 0.5, 1.0), "forms": ("inverse", "exp_subtract", "subtract"),
                  "epochs": 1, "batch_size": 64, "lr": 1e-4, "max_length": 64, "max_train_examples": None,
                  "max_eval_examples": None},
    },
    # the attack pool is SNLI test (max_pool rows), split by premise; per_class: the paper's 5,000
    "04-adversarial-eval": {
        "smoke": {"seeds": (0, 1), "epochs": 1, "batch_size": 8, "lr": 5e-5, "max_length": 48,
                  "max_train_examples": 96, "max_eval_examples": 48, "max_pool": 60, "heldout_fraction": 0.5,
                  "per_class": 8},
        "full": {"seeds": (0, 1, 2), "epochs": 2, "batch_size": 64, "lr": 1e-4, "max_length": 128,
                 "max_train_examples": None, "max_eval_examples": None, "max_pool": None,
                 "heldout_fraction": 0.5, "per_class": 5000},
        # paper 2: ELECTRA-small, 5,000 attacked pairs per class; silent on seeds, epochs, batch size, learning
        # rate and sequence length: the full profile's. It attacked SNLI validation; the chapter attacks SNLI
        # test, split by premise into a half to train on and a half to evaluate on (the full profile's design)
        "paper": {"seeds": (0, 1, 2), "epochs": 2, "batch_size": 64, "lr": 1e-4, "max_length": 128,
                  "max_train_examples": None, "max_eval_examples": None, "max_pool": None,
                  "heldout_fraction": 0.5, "per_class": 5000},
    },
    # the third paper's setting (batch 16, lr 5e-5, early stopping, λ 0.1, α 10, 10-step IG). The paper ran
    # Captum, whose default rule is Gauss–Legendre; on MiniLM no Gauss–Legendre rule of up to 10 nodes reached
    # the completeness gap of 10-step right-Riemann IG (benchmarks/bench_ig_step.py,
    # results/full/05-ig-variance/ig-benchmark.json), so the penalty uses right Riemann
    "05-ig-variance": {
        "smoke": {"seeds": (0, 1), "epochs": 1, "batch_size": 8, "lr": 5e-5, "max_length": 48, "patience": 1,
                  "max_train_examples": 96, "max_eval_examples": 48, "lam": 0.1, "alpha": 10.0, "n_steps": 4,
                  "method": "riemann_right"},
        "full": {"seeds": (0, 1, 2), "epochs": 3, "batch_size": 16, "lr": 5e-5, "max_length": 128, "patience": 1,
                 "max_train_examples": None, "max_eval_examples": None, "lam": 0.1, "alpha": 10.0, "n_steps": 10,
                 "method": "riemann_right"},
        # paper 3 (§2.4): ELECTRA-small, lr 5e-5, batch 16, early stopping on validation, λ 0.1, α 10, 10 IG
        # steps through Captum, whose default rule is Gauss–Legendre; silent on seeds, epochs, patience and
        # sequence length: the full profile's
        "paper": {"seeds": (0, 1, 2), "epochs": 3, "batch_size": 16, "lr": 5e-5, "max_length": 128, "patience": 1,
                  "max_train_examples": None, "max_eval_examples": None, "lam": 0.1, "alpha": 10.0, "n_steps": 10,
                  "method": "gausslegendre"},
    },
}

# The papers' backbones per chapter (the first is the one a chapter runs unless told otherwise): paper 1 (chapters
# 2 and 3) fine-tunes OPT-1.3B and Llama-2-7B, papers 2 and 3 (chapters 4 and 5) ELECTRA-small.
PAPER_BACKBONES: dict[str, tuple[str, ...]] = {
    "02-baseline-finetune": (OPT, LLAMA), "03-modified-loss": (OPT, LLAMA),
    "04-adversarial-eval": (ELECTRA,), "05-ig-variance": (ELECTRA,),
}
ADVGLUE_NLI = (("adv_mnli", "validation"), ("adv_mnli_mismatched", "validation"))
# The dataset splits each chapter reads at the paper profile. No chapter trains on MNLI: paper 1's "adv-mnli" is
# AdvGLUE's adversarial MNLI set, evaluated on as here.
PAPER_DATA: dict[str, tuple[tuple[str, str], ...]] = {
    "01-artifact-mining": (("sst2", "train"), ("snli", "train")),
    "02-baseline-finetune": (("sst2", "train"), ("sst2", "validation"), ("snli", "train"), ("snli", "validation"),
                             ("adv_sst2", "validation"), *ADVGLUE_NLI),
    "03-modified-loss": (("sst2", "train"), ("sst2", "validation"), ("snli", "train"), ("snli", "validation"),
                         ("adv_sst2", "validation"), *ADVGLUE_NLI),
    "04-adversarial-eval": (("snli", "train"), ("snli", "validation"), ("snli", "test"), *ADVGLUE_NLI),
    "05-ig-variance": (("snli", "train"), ("snli", "validation"), ("snli", "test")),
}
ENVIRONMENT = ("COMPNB_MODELS_DIR", "COMPNB_DATA_DIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "COMPNB_OFFLINE",
               "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE")  # where inputs are looked for
_SATISFIED: set[tuple] = set()  # (chapter, environment) pairs whose inputs were found, so `settings` checks once


class MissingInputsError(FileNotFoundError):
    """Backbones or dataset splits a profile needs that are neither local nor on a reachable hub."""


def check_profile(profile: str) -> str:
    """`profile` itself, or a `ValueError` naming the allowed profiles."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    return profile


def settings(chapter: str, profile: str) -> dict:
    """The settings `profile` gives `chapter` (a copy); at the paper profile, only once `require_inputs` passes."""
    check_profile(profile)
    if chapter not in CHAPTER_SETTINGS:
        raise ValueError(f"unknown chapter {chapter!r}; known: {', '.join(CHAPTER_SETTINGS)}")
    require_inputs(chapter, profile)
    return dict(CHAPTER_SETTINGS[chapter][profile])


def paper_backbones(chapter: str) -> tuple[str, ...]:
    """The papers' backbones of `chapter` (empty for a chapter that trains nothing)."""
    return PAPER_BACKBONES.get(chapter, ())


def require_inputs(chapter: str, profile: str) -> None:
    """At the paper profile, a MissingInputsError unless every backbone and dataset split `chapter` needs
    (`PAPER_BACKBONES`, `PAPER_DATA`) is at hand; then sets `$COMPNB_COMPLETE_DATA`, so that no dataset loaded in
    this process or its children falls back to a sample (`compnb.data.load`). Other profiles need nothing."""
    if profile != "paper":
        return
    key = (chapter, Path.cwd(), *map(os.environ.get, ENVIRONMENT))
    if key not in _SATISFIED:
        require(paper_backbones(chapter), PAPER_DATA.get(chapter, ()), f"chapter {chapter} at profile 'paper'")
        _SATISFIED.add(key)
    os.environ["COMPNB_COMPLETE_DATA"] = "1"


def _backbone_at_hand(name: str) -> bool:
    """Whether backbone `name` loads without the hub: from `$COMPNB_MODELS_DIR/<org>__<name>/` (where
    `compnb.models.resolve_backbone` looks first; not imported here, it would load transformers), a local folder,
    or the hub's cache."""
    from huggingface_hub import try_to_load_from_cache

    folders = [Path(name)]
    if os.environ.get("COMPNB_MODELS_DIR"):
        folders.insert(0, Path(os.environ["COMPNB_MODELS_DIR"]) / name.replace("/", "__"))
    return (any((folder / "config.json").is_file() for folder in folders)
            or isinstance(try_to_load_from_cache(name, "config.json"), str))


def require(backbones: Iterable[str], splits: Iterable[tuple[str, str]], what: str) -> None:
    """A MissingInputsError naming every backbone (not in `$COMPNB_MODELS_DIR`, a local folder or the hub's cache)
    and every complete dataset split (not local, the SNLI sample never counting) that `what` needs, when the
    hub cannot supply them; how to supply each is in the message."""
    from compnb import data

    models_missing = [name for name in dict.fromkeys(backbones) if not _backbone_at_hand(name)]
    splits_missing, passed = [], []
    for name, split in dict.fromkeys(splits):
        where, why = data.locate(name, split, complete=True)
        if where is None:
            splits_missing.append(f"{name}/{split}")
            passed += why
    hub = data.hub_status() if models_missing or splits_missing else None
    if hub is None:
        return
    needs = ([f"backbones {', '.join(models_missing)}"] if models_missing else []) + (
        [f"dataset splits {', '.join(splits_missing)}"] if splits_missing else [])
    how = ([f"each model as COMPNB_MODELS_DIR=<dir> holding <dir>/<org>__<name>/ (e.g. "
            f"<dir>/{models_missing[0].replace('/', '__')}/: config.json, weights and tokenizer files)"]
           if models_missing else []) + (
        [f"each dataset split as COMPNB_DATA_DIR=<dir> holding <dir>/<dataset>/<split>.parquet (e.g. "
         f"<dir>/{splits_missing[0]}.parquet: the complete split in the Hugging Face columns; AdvGLUE sets as "
         f"<dir>/adv_glue/<name>.parquet)"] if splits_missing else [])
    passed_note = f"; passed over: {'; '.join(dict.fromkeys(passed))}" if passed else ""
    raise MissingInputsError(f"{what} cannot start: {' and '.join(needs)} are not here and the hub cannot supply "
                             f"them ({hub}){passed_note}. Supply {', '.join(how)}, or run with network access to "
                             f"the Hugging Face hub. Nothing was run or written.")
