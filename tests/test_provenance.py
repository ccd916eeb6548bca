"""Provenance: which commit a run record names."""

from compnb.provenance import git_state


def test_git_state_names_the_checkout_or_the_launchers_commit(monkeypatch):
    monkeypatch.delenv("COMPNB_GIT_COMMIT", raising=False)
    here = git_state()
    assert here.get("from") is None
    monkeypatch.setenv("COMPNB_GIT_COMMIT", "0123abcd")  # a copied tree: the launcher's commit wins
    assert git_state() == {"commit": "0123abcd", "dirty": None, "from": "COMPNB_GIT_COMMIT"}
