import pandas as pd
import pytest

from compnb import atomicio, profiles


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    atomicio.write_json(target, {"accuracy": 0.9})

    def crash(handle):
        handle.write(b'{"accuracy": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomicio.atomic_write(target, crash)
    assert target.read_text().strip().startswith("{") and '"accuracy": 0.9' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_csv_and_json_round_trip(tmp_path):
    frame = pd.DataFrame({"a": [1, 2]})
    atomicio.write_csv(tmp_path / "t.csv", frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
    import numpy as np
    atomicio.write_json(tmp_path / "x.json", {"n": np.int64(3), "p": tmp_path})
    assert '"n": 3' in (tmp_path / "x.json").read_text()


def test_profiles():
    assert profiles.settings("01-artifact-mining", "smoke")["max_examples"] > 0
    with pytest.raises(ValueError, match="unknown profile 'medium'; allowed: smoke, full"):
        profiles.check_profile("medium")

