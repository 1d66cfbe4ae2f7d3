"""Bad settings end the program before any work: a non-zero status, one readable line naming
the setting and the value, no traceback, and no MLflow run left behind."""

from __future__ import annotations

import pytest

from tests.helpers.runs import TINY, all_runs, main_in_process, run_cli


def _write_bad_idx(directory):
    directory.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (directory / name).write_bytes(b"\x00\x00\x08\x03not an idx file")
    return directory


CASES = {
    "unknown choice": (["downsample=median"], "Could not find 'downsample/median'"),
    "p below 1": (["downsample=pnorm", "downsample.p=0.5"], "Received: downsample.p=0.5"),
    "p not a number": (["downsample=pnorm", "downsample.p=abc"], "Received: downsample.p='abc'"),
    "epochs": (["trainer.epochs=0"], "trainer.epochs must be >= 1, got 0"),
    "batch size": (["trainer.batch_size=0"], "Received: trainer.batch_size=0"),
    "learning rate": (["optimizer.learning_rate=0"],
                      "optimizer.learning_rate must be a finite number > 0, got 0.0"),
    "missing data.path": (["data=mnist", "data.path=/no/such/dir"], "data.path"),
    "malformed data.path": (["data=mnist", "data.path={bad}"], "data.path"),
    "input too small": (["data.image_size=8"], "lenet5 needs inputs of at least"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_setting_is_one_readable_line(case, store, tmp_path, monkeypatch, capsys):
    args, expected = CASES[case]
    bad = _write_bad_idx(tmp_path / "bad")
    args = [a.format(bad=bad) for a in args]
    code, err = main_in_process([*TINY, *args], monkeypatch, capsys)
    assert code not in (0, None)
    assert expected in err, err
    assert "Traceback" not in err, err
    message_lines = [line for line in err.splitlines()
                     if line.strip() and not line.startswith(("Error executing job",
                                                              "Set the environment"))]
    if case != "unknown choice":  # Hydra lists the available options after its one line
        assert len(message_lines) <= 4, err
    assert all(r.info.status != "RUNNING" for r in all_runs(store))
    assert all_runs(store) == []


@pytest.mark.slow
def test_real_command_line(tmp_path):
    result = run_cli([*TINY, "downsample=pnorm", "downsample.p=0.5"], tmp_path)
    assert result.returncode != 0
    assert "Invalid value for `downsample.p`" in result.stderr
    assert "Received: downsample.p=0.5" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists() or all_runs(
        f"sqlite:///{tmp_path / 'mlflow.db'}") == []
