"""Interrupted runs resume: SIGKILL in the middle of a fold, then `ecgcnn train --resume`."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import ecgcnn

pytestmark = pytest.mark.slow
EPOCHS = 6


def train_args(root, out):
    return ["train", "--data-root", str(root), "--out", str(out), "--folds", "2", "--epochs", str(EPOCHS),
            "--batch-size", "32", "--no-progress"]  # fmt: skip


def test_killed_run_resumes_to_the_same_result(synthetic_root, tmp_path):
    out = tmp_path / "killed"
    # Both runs in a fresh process with one intra-op thread: training amplifies any difference in
    # the order of float sums (thread count, state left by an earlier test in this process) into
    # differences of 1e-3 after six epochs, which would hide what this test is about.
    env = os.environ | {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ecgcnn", *train_args(synthetic_root, out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    state = out / "fold_1" / "state.pt"
    deadline = time.monotonic() + 300
    try:
        # Kill once fold_1 has completed at least two epochs (fold_0 is then finished).
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file():
                try:
                    if torch.load(state, weights_only=True)["epoch"] >= 2:
                        break
                except Exception:  # caught between writes: atomic rename makes this rare
                    pass
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (out / "fold_0" / "metrics.json").is_file() and not (
        out / "fold_1" / "metrics.json"
    ).exists()
    saved = torch.load(state, weights_only=True)
    killed_at = saved["epoch"]
    assert 2 <= killed_at < EPOCHS
    assert saved["version"] == ecgcnn.__version__
    del saved["version"]  # as ecgcnn 0.1.0 saved it: the resumed run says who trained which epochs
    torch.save(saved, state)
    fold0_checkpoint = (out / "fold_0" / "checkpoint.pt").stat().st_mtime_ns

    resumed = subprocess.run([sys.executable, "-m", "ecgcnn", "train", "--resume", str(out), "--no-progress"],
                             env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "fold_0: finished before, not retrained" in resumed.stderr
    assert f"fold_1: resuming after epoch {killed_at}" in resumed.stderr
    assert (f"fold_1: epochs 1-{killed_at} were trained by ecgcnn 0.1.0, the rest by "
            f"{ecgcnn.__version__}") in resumed.stderr, resumed.stderr  # fmt: skip
    assert (out / "fold_0" / "checkpoint.pt").stat().st_mtime_ns == fold0_checkpoint
    assert not state.exists()

    reference = tmp_path / "straight"
    straight = subprocess.run([sys.executable, "-m", "ecgcnn", *train_args(synthetic_root, reference)],
                              env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert straight.returncode == 0, straight.stderr
    for fold in ("fold_0", "fold_1"):
        history = json.loads((out / fold / "history.json").read_text())
        assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
        a = np.load(out / fold / "predictions_val.npz")
        b = np.load(reference / fold / "predictions_val.npz")
        np.testing.assert_allclose(a["y_prob"], b["y_prob"], atol=1e-6)
    results = json.loads((out / "cv_results.json").read_text())
    assert set(results["folds"]) == {"fold_0", "fold_1"}


def test_resume_of_a_folder_that_is_no_run_is_an_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ecgcnn", "train", "--resume", str(tmp_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert (
        proc.returncode == 1
        and "nothing to resume" in proc.stderr
        and "Traceback" not in proc.stderr
    )


@pytest.fixture
def run_cli(ecgcnn_here):
    return ecgcnn_here  # in this process: the killed and Ctrl-C runs above need a subprocess, these do not


def quick_fold(run_cli, root, out, cwd=None):
    return run_cli("train", "--data-root", root, "--out", out, "--folds", 2, "--epochs", 1,
                   "--only-fold", 0, "--no-progress", cwd=cwd)  # fmt: skip


def test_resume_refuses_data_that_changed_since_the_run_began(run_cli, synthetic_copy, tmp_path):
    out = tmp_path / "run"
    assert quick_fold(run_cli, synthetic_copy, out).returncode == 0
    db = synthetic_copy / "ptbxl_database.csv"
    lines = db.read_text().splitlines()
    db.write_text("\n".join(lines[:-5]) + "\n")  # five records fewer: the folds are drawn anew
    for args in (("train", "--resume", out, "--only-fold", 1),
                 ("train", "--data-root", synthetic_copy, "--out", out, "--folds", 2, "--epochs", 1,
                  "--only-fold", 1)):  # fmt: skip
        proc = run_cli(*args, "--no-progress")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "the data changed since this run began" in proc.stderr, proc.stderr
    assert not (out / "fold_1").exists()


def test_a_run_resumes_from_any_working_directory_and_from_a_moved_root(
    run_cli, synthetic_copy, tmp_path
):
    (tmp_path / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    proc = quick_fold(run_cli, "../ptbxl", "runs/r", cwd=tmp_path / "work")  # relative paths
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "work" / "runs" / "r"
    proc = run_cli(
        "train", "--resume", run, "--only-fold", 1, "--no-progress", cwd=tmp_path / "elsewhere"
    )
    assert proc.returncode == 0, proc.stderr
    assert (run / "fold_1" / "metrics.json").is_file()
    moved = synthetic_copy.rename(tmp_path / "moved")
    (run / "fold_1" / "metrics.json").unlink()
    proc = run_cli("train", "--resume", run, "--only-fold", 1, "--no-progress")
    assert proc.returncode == 1 and "does not exist" in proc.stderr, proc.stderr
    assert "if the data moved, add --data-root NEW_PATH" in proc.stderr, proc.stderr
    proc = run_cli(
        "train", "--resume", run, "--data-root", moved, "--only-fold", 1, "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr


def test_resume_refuses_settings_it_would_ignore(run_cli, synthetic_root, tmp_path):
    out = tmp_path / "run"
    assert quick_fold(run_cli, synthetic_root, out).returncode == 0
    proc = run_cli("train", "--resume", out, "--epochs", 5, "--lr", 0.1, "--no-progress")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert (
        "--resume continues with the run's saved settings; --epochs, --lr cannot change them"
        in proc.stderr
    )


def test_resume_of_a_one_fold_run_trains_the_rest(run_cli, synthetic_root, tmp_path):
    out = tmp_path / "run"
    assert (
        quick_fold(run_cli, synthetic_root, out).returncode == 0
    )  # --only-fold 0 is this process's choice
    proc = run_cli("train", "--resume", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (out / "fold_1" / "metrics.json").is_file() and (out / "cv_results.json").is_file()


def test_ctrl_c_names_the_command_that_resumes(synthetic_root, tmp_path):
    out = tmp_path / "run"
    # one fold per process (resume that one), and more epochs than it will ever reach: on a fast
    # machine six epochs can end before the signal arrives
    args = ["train", "--data-root", str(synthetic_root), "--out", str(out), "--folds", "2", "--epochs", "1000",
            "--batch-size", "32", "--no-progress", "--only-fold", "0"]  # fmt: skip
    # A shell that starts CI in the background ignores SIGINT, and a child inherits that: give the
    # run Ctrl-C's usual meaning, as in a terminal.
    proc = subprocess.Popen([sys.executable, "-m", "ecgcnn", *args],
                            env=os.environ | {"PYTHONWARNINGS": "ignore"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "fold_0" / "state.pt").is_file():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert f"interrupted: resume with `ecgcnn train --resume {out} --only-fold 0`" in stderr, stderr


def test_the_resume_command_quotes_its_path():
    from pathlib import Path

    from ecgcnn.cli import resume_command

    assert (
        resume_command(Path("runs/my run"), None)
        == "resume with `ecgcnn train --resume 'runs/my run'`"
    )
    assert (
        resume_command(Path("runs/r"), 3)
        == "resume with `ecgcnn train --resume runs/r --only-fold 3`"
    )


def test_a_run_begun_by_another_ecgcnn_version_resumes_and_says_so(
    run_cli, synthetic_root, tmp_path
):
    """The version a run was begun with is not one of its settings: after an upgrade it resumes
    (sweeps and benchmarks rely on resuming to skip what is finished), with a warning."""
    out = tmp_path / "run"
    assert quick_fold(run_cli, synthetic_root, out).returncode == 0
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(config | {"version": "0.0.1"}))
    proc = run_cli("train", "--resume", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "begun by ecgcnn 0.0.1" in proc.stderr, proc.stderr
    assert (out / "fold_1" / "metrics.json").is_file()
    # config.json keeps the version that began the run and lists the ones that went on with it
    saved = json.loads((out / "config.json").read_text())
    assert saved["version"] == "0.0.1" and saved["continued_by"] == [ecgcnn.__version__], saved
    proc = run_cli("train", "--resume", out, "--no-progress")  # said once for each version
    assert proc.returncode == 0 and "begun by ecgcnn" not in proc.stderr, proc.stderr
    assert json.loads((out / "config.json").read_text()) == saved
    # ... and a run a newer ecgcnn went on with is refused like one a newer ecgcnn began
    (out / "config.json").write_text(json.dumps(saved | {"continued_by": ["0.2.0", "10.0.0"]}))
    proc = run_cli("train", "--resume", out, "--no-progress")
    assert proc.returncode == 1 and "resume it with ecgcnn 10.0.0 or newer" in proc.stderr, (
        proc.stderr
    )
    # begun before versions were recorded: the version stays unrecorded, this one goes on with it
    (out / "config.json").write_text(
        json.dumps({k: v for k, v in config.items() if k != "version"})
    )
    proc = run_cli("train", "--resume", out, "--no-progress")
    assert proc.returncode == 0 and "begun by ecgcnn before 0.2.0" in proc.stderr, proc.stderr
    saved = json.loads((out / "config.json").read_text())
    assert "version" not in saved and saved["continued_by"] == [ecgcnn.__version__], saved
    # begun by this version, with a history: the history stays
    (out / "config.json").write_text(json.dumps(config | {"continued_by": ["0.0.2"]}))
    assert run_cli("train", "--resume", out, "--no-progress").returncode == 0
    assert json.loads((out / "config.json").read_text())["continued_by"] == ["0.0.2"]
    # a run begun by a newer ecgcnn may hold settings this one does not know: refused
    (out / "config.json").write_text(json.dumps(config | {"version": "10.0.0"}))
    proc = run_cli("train", "--resume", out, "--no-progress")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "begun by ecgcnn 10.0.0, newer than this one" in proc.stderr
    assert "resume it with ecgcnn 10.0.0 or newer" in proc.stderr


def test_a_run_goes_on_only_with_the_number_of_processes_it_began_with(synthetic_root, tmp_path):
    """--batch-size is per process: resuming a two-process run in one process (as the Ctrl-C hint
    said to) halved the effective batch, gave another result and overwrote world_size in
    config.json, so the run no longer said how it was trained."""
    from ecgcnn.errors import EcgcnnError
    from ecgcnn.recipes import get_recipe
    from ecgcnn.train import TrainConfig, resume_config, train

    out = tmp_path / "run"
    recipe = get_recipe("seed").with_overrides(epochs=1, batch_size=32)
    train(TrainConfig(data_root=str(synthetic_root), out=str(out), folds=2, only_fold=0,
                      recipe=recipe, progress=False))  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(config | {"world_size": 2}))  # begun by torchrun
    with pytest.raises(EcgcnnError, match=r"trained with 2 process\(es\) and this is 1.*--nproc 2"):
        train(resume_config(out, progress=False), resume=True)
    assert json.loads((out / "config.json").read_text())["world_size"] == 2


def test_the_resume_command_of_a_multi_process_run_names_its_processes():
    from pathlib import Path

    from ecgcnn.cli import resume_command

    assert (
        resume_command(Path("runs/r"), None, processes=2)
        == "resume with `ecgcnn train --resume runs/r --nproc 2`"
    )
