"""Shared fixtures: tiny randomly initialised backbones (no download) and the offline data location."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network; set before transformers loads

import pytest
import torch
from transformers import BertConfig, OPTConfig

from compnb.paths import data_search_paths


@pytest.fixture
def tiny_bert_config() -> BertConfig:
    return BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


@pytest.fixture
def tiny_opt_config() -> OPTConfig:
    return OPTConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                     max_position_embeddings=32, word_embed_proj_dim=16, dropout=0.0, attention_dropout=0.0,
                     pad_token_id=1)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    """Accelerate keeps one process-wide state: a test that makes `Accelerator(cpu=True)` would make a later
    in-process `train` on a GPU machine (which asks for bf16) fail. Each test starts from none."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def offline_data_available() -> bool:
    return any((p / "sst2" / "train.parquet").is_file() for p in data_search_paths())


needs_data = pytest.mark.skipif(not offline_data_available(),
                                reason="offline datasets not found (see data/README.md)")


@pytest.fixture(scope="session")
def twins_dir(tmp_path_factory):
    """A `COMPNB_MODELS_DIR` holding the architecture twins (`tests/twins.py`: tiny OPT, Llama and ELECTRA with
    their real tokenizer types), set in the environment for the whole session, so `compnb.models` loads
    "compnb-twins/opt-tiny" etc. through the same path as real names."""
    import twins

    root = tmp_path_factory.mktemp("models")
    twins.build(root)
    before = os.environ.get("COMPNB_MODELS_DIR")
    os.environ["COMPNB_MODELS_DIR"] = str(root)
    yield root
    if before is None:
        os.environ.pop("COMPNB_MODELS_DIR", None)
    else:
        os.environ["COMPNB_MODELS_DIR"] = before


@pytest.fixture
def memory_budget(monkeypatch):
    """A setter for the chunking budget: `memory_budget(None)` restores the default, `memory_budget("1")` puts each
    masked copy or IG path point in its own chunk."""
    from compnb.saliency import MEMORY_BUDGET_ENV

    def set_budget(budget: str | None) -> None:
        if budget is None:
            monkeypatch.delenv(MEMORY_BUDGET_ENV, raising=False)
        else:
            monkeypatch.setenv(MEMORY_BUDGET_ENV, budget)
    return set_budget


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder `paths.project_root` takes for the repository, so results land in tmp."""
    root = tmp_path / "project"
    (root / "src" / "compnb").mkdir(parents=True)
    (root / "_config.yml").write_text("title: test\n")
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a shared machine, extra OpenMP threads only wait. A module takes
    it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
