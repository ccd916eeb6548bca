"""Provenance: which commit a run record names."""

from compnb.provenance import git_state


def test_git_state_names_the_checkout_or_the_launchers_commit(monkeypatch):
    monkeypatch.delenv("COMPNB_GIT_COMMIT", raising=False)
    here = git_state()
    assert here.get("from") is None
    monkeypatch.setenv("COMPNB_GIT_COMMIT", "0123abcd")  # a copied tree: the launcher's commit wins
    assert git_state() == {"commit": "0123abcd", "dirty": None, "from": "COMPNB_GIT_COMMIT"}


def test_run_outputs_do_not_make_a_checkout_dirty_but_code_does(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.delenv("COMPNB_GIT_COMMIT", raising=False)
    for folder in ("results/full", "book/chapters", "src"):
        (tmp_path / folder).mkdir(parents=True)
    files = [tmp_path / "results/full/run.json", tmp_path / "book/chapters/01.ipynb", tmp_path / "src/code.py"]
    for path in files:
        path.write_text("0")

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "init")
    files[0].write_text("1")
    files[1].write_text("1")
    assert git_state(tmp_path)["dirty"] is False
    files[2].write_text("1")
    assert git_state(tmp_path)["dirty"] is True
