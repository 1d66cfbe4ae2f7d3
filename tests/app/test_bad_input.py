"""Bad settings end the program before any work: a non-zero status, one readable line naming
the setting and the value, no traceback, and no MLflow run left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.helpers.runs import REPO, TINY, all_runs, main_in_process, run_cli


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
    "key added with +": (["+trainer.foo=1"], "trainer.foo is not a setting; did you mean"),
    "typo added with +": (["+trainer.epoch=3"],
                          "trainer.epoch is not a setting; did you mean trainer.epochs?"),
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


def _timed(args: list[str], env: dict, cwd=REPO) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)
    return time.perf_counter() - start, result


@pytest.mark.slow
def test_a_bad_setting_is_refused_before_tensorflow_loads(tmp_path):
    """In at most half the time ``import tensorflow`` takes, measured here on this machine."""
    env = {**os.environ, "KERASCNN_RUNS_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("HYDRA_FULL_ERROR", None)
    tensorflow, imported = _timed(["-c", "import tensorflow"], env)
    assert imported.returncode == 0, imported.stderr
    for bad, message in (("trainer.epochs=0", "trainer.epochs must be >= 1, got 0"),
                         ("+trainer.foo=1", "trainer.foo is not a setting"),
                         ("data.val_split=1.5", "Received: data.val_split=1.5")):
        refused, result = _timed(["-m", "kerascnn.train", bad], env)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert refused <= 0.5 * tensorflow, (bad, refused, tensorflow)
    # and TensorFlow was not imported at all on the way: the command as a user starts it, with
    # Python's own record of every module it imported
    imported, result = _imported(["trainer.epochs=0"], env)
    assert "kerascnn.app.settings" in imported, result.stderr[-2000:]  # the record is there
    assert not imported & {"tensorflow", "keras", "mlflow"}, sorted(
        imported & {"tensorflow", "keras", "mlflow"})
    assert not (tmp_path / "mlflow.db").exists()
    # A run to resume that the store does not hold: refused without Keras either.
    imported, result = _imported([f"trainer.resume={'0' * 32}"], env)
    assert result.returncode != 0 and "no such run" in result.stderr, result.stderr[-2000:]
    assert not imported & {"tensorflow", "keras"}, sorted(imported & {"tensorflow", "keras"})


def _imported(args: list[str], env) -> tuple[set[str], subprocess.CompletedProcess]:
    """The modules ``python -m kerascnn.train ARGS`` imported (Python's ``-X importtime``)."""
    _, result = _timed(["-X", "importtime", "-m", "kerascnn.train", *args], env)
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:")}, result


def _unwritable_runs_dir(result: subprocess.CompletedProcess, folder) -> None:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"the runs folder {folder} ") and "cannot be written" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_runs_dir_that_cannot_be_written_is_one_line_before_hydra_writes(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name in ("KERASCNN_RUNS_DIR", "MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR"):
        env.pop(name, None)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # KERASCNN_RUNS_DIR below a file: no user, root included, can create it
    inside = blocker / "runs"
    _, result = _timed(["-m", "kerascnn.train", *TINY],
                       {**env, "KERASCNN_RUNS_DIR": str(inside)})
    _unwritable_runs_dir(result, inside)
    # ./runs, where a file of that name is in the way; nothing else is written either
    work = tmp_path / "work"
    work.mkdir()
    (work / "runs").write_text("not a folder")
    _, result = _timed(["-m", "kerascnn.train", *TINY], env, cwd=work)
    _unwritable_runs_dir(result, work / "runs")
    assert sorted(p.name for p in work.iterdir()) == ["runs"]
    # --help writes nothing, so it still answers
    _, result = _timed(["-m", "kerascnn.train", "--help"], env, cwd=work)
    assert result.returncode == 0 and "kerascnn" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_runs_dir_is_one_line(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        env = {**os.environ, "KERASCNN_RUNS_DIR": str(folder), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("MLFLOW_TRACKING_URI", None)
        _, result = _timed(["-m", "kerascnn.train", *TINY], env)
        _unwritable_runs_dir(result, folder)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)
