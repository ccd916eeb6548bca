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



def test_a_record_equal_up_to_rounding_is_not_rewritten(tmp_path):
    from compnb import atomicio

    path = tmp_path / "resume.json"
    record = {"curves": {"a": [{"step": 1, "loss": 0.123456789}]}, "equal": True, "steps": 10}
    assert atomicio.write_json_unless_close(path, record)
    before = path.stat().st_mtime_ns
    nudged = {"curves": {"a": [{"step": 1, "loss": 0.123456789 * (1 + 1e-9)}]}, "equal": True, "steps": 10}
    assert not atomicio.write_json_unless_close(path, nudged) and path.stat().st_mtime_ns == before
    changed = {**nudged, "steps": 11}
    assert atomicio.write_json_unless_close(path, changed)
    assert atomicio.close(1.0, 1.0 + 1e-3, 1e-6) is False and atomicio.close([1.0], [1.0, 2.0], 1e-6) is False
