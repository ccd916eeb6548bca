"""The appendix "At the papers' scale": its tables from the benchmark files, and the decoders' saliency."""

from __future__ import annotations

import math

import pytest

from compnb.chapters import paper_scale


def test_gradient_checks_are_read_back_from_the_device_log(tmp_path):
    log = tmp_path / "checks.log"
    log.write_text("# measured at abc (device log): {'strategy': 'ddp', 'ranks': 2, 'sharded': False, "
                   "'max_abs_diff': 1e-07, 'relative': 3e-07}\n"
                   "# measured at abc (device log): {'strategy': 'fsdp2', 'ranks': 2, 'sharded': True, "
                   "'max_abs_diff': 2e-07, 'relative': 4e-07}\n")
    table = paper_scale.checks_from_log(log)
    assert table["strategy"].tolist() == ["ddp", "fsdp2"] and table["sharded"].tolist() == [False, True]
    assert table["relative to the largest"].tolist() == [3e-07, 4e-07]


def test_sharded_rows_keep_their_own_batch_and_the_failed_ones_their_status():
    record = {"rows": [
        {"strategy": "fsdp2", "model": "llama-2-7b", "method": "plain", "ranks": 2, "batch_per_rank": 4,
         "status": "ok", "ms_per_step": 400.0, "ratio_to_plain": 1.0, "peak_gib": 60.0, "mfu": 0.1},
        {"strategy": "fsdp2", "model": "llama-2-7b", "method": "competency-gradient", "ranks": 2,
         "batch_per_rank": 4, "status": "out of memory"}]}
    table = paper_scale.sharded_table(record)
    assert table["rows per GPU"].tolist() == [4, 4]
    assert table["status"].tolist() == ["ok", "out of memory"] and math.isnan(table["ms / step"].iloc[1])
    assert table["MFU %"].iloc[0] == pytest.approx(10.0)


def test_decoders_put_more_saliency_on_the_last_token_than_a_mean_pooled_encoder():
    table = paper_scale.last_token_concentration(rows=8, tokens=16).set_index("backbone (random weights)")
    assert table.loc["ELECTRA", "H top-5 (nats)"] > 0.9 * math.log(5)
    for decoder in ("OPT", "Llama"):
        assert table.loc[decoder, "pooling"] == "last"
        assert table.loc[decoder, "S on the last token"] > 5 * table.loc["ELECTRA", "S on the last token"]
        assert table.loc[decoder, "H top-5 (nats)"] < table.loc["ELECTRA", "H top-5 (nats)"]


def test_the_determinism_reading_follows_the_record():
    record = {"loss": "ce", "modes": [
        {"deterministic": False, "accuracy": [0.5, 0.6], "probabilities identical": False,
         "loss curves identical": False, "ms per step": [30.0, 20.0]},
        {"deterministic": True, "accuracy": [0.5, 0.5], "probabilities identical": True,
         "loss curves identical": True, "ms per step": [40.0, 30.0]}]}
    failing = {"loss": "competency", "modes": [{"deterministic": True, "error": "index_add_cuda_ does not have a "
                                                "deterministic implementation"}]}
    table = paper_scale.determinism_table([record, failing])
    text = paper_scale.determinism_sentence(table)
    assert "the deterministic mode repeated bit for bit (1 of 3 cases)" in text
    assert "index_add_cuda_" in text and "ce ×1.5" in text
