"""The `ecgcnn` command as a user runs it: a real subprocess for the main commands, `ecgcnn.cli.main`
in this process (the `ecgcnn_here` fixture) for refusals and follow-up commands."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def ecgcnn(*args, cwd=None):
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "ecgcnn", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
        timeout=600,
    )  # fmt: skip


def assert_one_line_error(proc, pattern):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def run_dir(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = ecgcnn("train", "--data-root", synthetic_root, "--out", out, "--folds", 2, "--epochs", 1,
                  "--batch-size", 32, "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "fold_0 epoch 1/1" in proc.stderr and "mean ± std" in proc.stderr
    return out


def test_train_writes_a_run(run_dir):
    results = json.loads((run_dir / "cv_results.json").read_text())
    assert set(results["folds"]) == {"fold_0", "fold_1"}


def test_evaluate_run_writes_metrics_and_a_confusion_matrix_per_class(run_dir):
    proc = ecgcnn("evaluate", "--run", run_dir, "--fold", 0)
    assert proc.returncode == 0, proc.stderr
    ev = run_dir / "fold_0" / "evaluation"
    metrics = json.loads((ev / "metrics_val.json").read_text())
    classes = list(metrics["per_class"])
    assert len(classes) == 5
    pngs = sorted(ev.glob("confusion_val_*.png"))
    assert len(pngs) == 5
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # the fold's predictions are read, not copied into evaluation/
    assert not list(ev.glob("predictions_*.npz"))
    proc = ecgcnn("evaluate", "--run", run_dir, "--fold", 0, "--threshold", 0.9)
    high = json.loads((ev / "metrics_val.json").read_text())
    assert all(c["threshold"] == 0.9 for c in high["per_class"].values())


def test_evaluate_and_resume_name_a_damaged_saved_file(run_dir, tmp_path, ecgcnn_here):
    """A truncated predictions file or a hand-broken config.json is one line naming the file."""
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(run_dir, run)
    (run / "fold_0" / "predictions_val.npz").write_bytes(b"PK\x03\x04 truncated")
    assert_one_line_error(ecgcnn_here("evaluate", "--run", run, "--fold", 0),
                          "fold_0/predictions_val.npz: not readable predictions")  # fmt: skip
    (run / "config.json").write_text("{")
    assert_one_line_error(ecgcnn_here("evaluate", "--run", run),
                          "copy/config.json: not readable JSON")  # fmt: skip
    assert_one_line_error(ecgcnn_here("train", "--resume", run),
                          "copy/config.json: not readable JSON")  # fmt: skip


def test_evaluate_refuses_options_of_the_other_mode(ecgcnn_here, tmp_path):
    """--test-fold with --run (or --fold with --checkpoint) was ignored: a user asking for fold 10
    got the saved validation figures, with nothing to say so."""
    for args, flag in (
        (("--run", tmp_path, "--test-fold", 10), "--test-fold"),
        (("--run", tmp_path, "--data-root", tmp_path), "--data-root"),
        (("--run", tmp_path, "--out", tmp_path / "o"), "--out"),
        (("--checkpoint", tmp_path / "c.pt", "--data-root", tmp_path, "--fold", 1), "--fold"),
    ):
        mode = "--run" if args[0] == "--run" else "--checkpoint"
        assert_one_line_error(ecgcnn_here("evaluate", *args), f"{flag} does not apply to {mode}")


def test_evaluate_checkpoint_on_a_strat_fold(run_dir, synthetic_root, tmp_path):
    proc = ecgcnn("evaluate", "--checkpoint", run_dir / "fold_0" / "checkpoint.pt", "--data-root", synthetic_root,
                  "--test-fold", 9, "--out", tmp_path / "ev", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics_fold9.json").read_text())
    fold9 = (pd.read_csv(synthetic_root / "ptbxl_database.csv")["strat_fold"] == 9).sum()
    assert metrics["records"] == fold9
    assert len(list((tmp_path / "ev").glob("confusion_fold9_*.png"))) == 5
    assert (tmp_path / "ev" / "predictions_fold9.npz").is_file()


def test_evaluate_checkpoint_on_a_root_without_its_rate_s_records(
    run_dir, synthetic_copy, ecgcnn_here
):
    (synthetic_copy / "records100").rename(synthetic_copy / "elsewhere")
    assert_one_line_error(
        ecgcnn_here(
            "evaluate",
            "--checkpoint",
            run_dir / "fold_0" / "checkpoint.pt",
            "--data-root",
            synthetic_copy,
            "--out",
            synthetic_copy / "ev",
        ),  # fmt: skip
        "has no records100/ folder for this checkpoint's 100 Hz, nor records500/ to resample from",
    )


def test_evaluate_checkpoint_resamples_a_root_that_has_only_the_other_rate(
    run_dir, tmp_path, ecgcnn_here
):
    """A 100 Hz model on a root holding only records500/ (a hospital's export in PTB-XL's layout):
    the records are resampled to the model's rate, as predict does, and scored as with records100."""
    from ecgcnn.synthetic import write_synthetic_ptbxl

    root = write_synthetic_ptbxl(tmp_path / "ptbxl", n_patients=40, seed=3, rates=(100, 500))
    checkpoint = run_dir / "fold_0" / "checkpoint.pt"
    both = ecgcnn_here("evaluate", "--checkpoint", checkpoint, "--data-root", root, "--test-fold", 9,
                       "--out", tmp_path / "at100")  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert "resampl" not in both.stderr
    (root / "records100").rename(tmp_path / "records100-away")
    only500 = ecgcnn_here("evaluate", "--checkpoint", checkpoint, "--data-root", root,
                          "--test-fold", 9, "--out", tmp_path / "from500")  # fmt: skip
    assert only500.returncode == 0, only500.stderr
    assert (
        "has no records100/: reading records500/ and resampling them to this checkpoint's 100 Hz"
        in only500.stderr
    )
    at100 = np.load(tmp_path / "at100" / "predictions_fold9.npz")
    from500 = np.load(tmp_path / "from500" / "predictions_fold9.npz")
    np.testing.assert_array_equal(at100["ecg_ids"], from500["ecg_ids"])
    np.testing.assert_array_equal(at100["y_true"], from500["y_true"])
    assert np.abs(at100["y_prob"] - from500["y_prob"]).max() < 0.02
    assert not np.array_equal(at100["y_prob"], from500["y_prob"])  # read from the other files
    assert json.loads((tmp_path / "at100" / "metrics_fold9.json").read_text())["records_fs"] == 100
    assert (
        json.loads((tmp_path / "from500" / "metrics_fold9.json").read_text())["records_fs"] == 500
    )


def test_only_fold_and_cv_summary(ecgcnn_here, synthetic_root, tmp_path):
    for k in (0, 1):
        proc = ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "r", "--folds", 2,
                      "--epochs", 1, "--only-fold", k, "--no-progress")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "r" / "cv_results.json").exists()
    proc = ecgcnn_here("cv-summary", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r" / "cv_results.json").is_file()


def test_models_and_synth(tmp_path):
    proc = ecgcnn("models")
    assert "cnn1d\t46,757 parameters" in proc.stdout and "cnn2d\t6,613 parameters" in proc.stdout
    proc = ecgcnn("synth", "--out", tmp_path / "s", "--patients", 12)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s" / "ptbxl_database.csv").is_file()


def test_synth_writes_records500_beside_records100_and_refuses_other_rates(ecgcnn_here, tmp_path):
    proc = ecgcnn_here("synth", "--out", tmp_path / "s", "--patients", 4, "--rate", 500)
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "s" / "records500").rglob("*_hr.hea"))
    assert list((tmp_path / "s" / "records100").rglob("*_lr.hea"))  # PTB-XL always has both
    assert_one_line_error(ecgcnn_here("synth", "--out", tmp_path / "t", "--rate", 250),
                          "--rate 250: expected 100 or 500")  # fmt: skip


def test_bad_input_gives_one_line_errors(synthetic_root, synthetic_copy, tmp_path, ecgcnn_here):
    assert_one_line_error(ecgcnn("train", "--data-root", tmp_path / "none", "--out", tmp_path / "o"),
                          "does not exist")  # fmt: skip
    csv = synthetic_copy / "ptbxl_database.csv"
    pd.read_csv(csv).drop(columns=["patient_id"]).to_csv(csv, index=False)
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_copy, "--out", tmp_path / "o"),
                          "missing required column(s) patient_id")  # fmt: skip
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "o", "--model", "vgg"),
                          "unknown model 'vgg'")  # fmt: skip
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "o", "--task", "x"),
                          "unknown task 'x'")  # fmt: skip
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "o", "--folds", 100000,
                                 "--no-progress"), "larger than the number of patients")  # fmt: skip
    assert_one_line_error(ecgcnn_here("evaluate", "--checkpoint", csv, "--data-root", synthetic_root),
                          "not a loadable ecgcnn checkpoint")  # fmt: skip
    assert_one_line_error(ecgcnn_here("cv-summary", tmp_path), "is not a run folder")
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "o", "--lead-dropout", 1.5),
                          "lead_dropout must be in [0, 1), got 1.5")  # fmt: skip
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "o", "--mixup", -1),
                          "mixup_alpha must be a number >= 0")  # fmt: skip
    for flag, value, message in (
        ("--ema", 1.5, "ema_decay must be in [0, 1), got 1.5"),
        ("--aux-task", "nope", "unknown task 'nope'"),
        ("--wander", -1, "wander_mv must be a number >= 0"),
        ("--noise", "nan", "noise_std must be a number >= 0"),
        ("--scale-std", -0.1, "scale_std must be a number >= 0"),
        ("--label-smoothing", 1, "label_smoothing must be in [0, 1), got 1"),
    ):
        assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "o", flag, value),
                              message)  # fmt: skip
    assert not (tmp_path / "o").exists()  # refused before any work


def test_the_same_train_command_again_keeps_the_work_already_done(
    ecgcnn_here, synthetic_root, tmp_path
):
    """After Ctrl-C (or a retried Kubernetes/SLURM job) the natural move is to run the command
    again: that continues the run as --resume would, never starts finished folds afresh."""
    from ecgcnn.recipes import get_recipe
    from ecgcnn.train import TrainConfig, work_in_run

    out = tmp_path / "r"
    args = ("train", "--data-root", synthetic_root, "--out", out, "--folds", 2, "--epochs", 1,
            "--no-progress")  # fmt: skip
    proc = ecgcnn_here(*args, "--only-fold", 0)
    assert proc.returncode == 0, proc.stderr
    checkpoint = (out / "fold_0" / "checkpoint.pt").stat().st_mtime_ns
    proc = ecgcnn_here(*args, "--only-fold", 0)
    assert proc.returncode == 0, proc.stderr
    assert f"{out} already holds fold_0 (finished): continuing, as --resume would" in proc.stderr
    assert (out / "fold_0" / "checkpoint.pt").stat().st_mtime_ns == checkpoint  # not retrained
    assert_one_line_error(ecgcnn_here(*args[:-3], "--epochs", 2, "--no-progress", "--only-fold", 0),
                          "already holds a run with other settings")  # fmt: skip
    assert (out / "fold_0" / "checkpoint.pt").stat().st_mtime_ns == checkpoint
    (out / "fold_1").mkdir()
    (out / "fold_1" / "state.pt").write_bytes(b"an interrupted epoch")
    cfg = TrainConfig(data_root=str(synthetic_root), out=str(out), folds=2,
                      recipe=get_recipe("seed").with_overrides(epochs=1))  # fmt: skip
    assert work_in_run(cfg) == ["fold_0 (finished)", "fold_1 (interrupted or in progress)"]
    assert work_in_run(dataclasses.replace(cfg, out=str(tmp_path / "new"))) == []


def test_split_flags_of_the_other_protocol_are_refused(ecgcnn_here, synthetic_root, tmp_path):
    """--train-folds/--val-fold/--test-fold say a strat_fold split: under --protocol cv (the
    default) they would be ignored and cross-validation trained instead; --folds the reverse."""
    for args, message in (
        (("--recipe", "benchmark", "--train-folds", "1-7", "--val-fold", 8, "--test-fold", 9),
         "--train-folds, --val-fold, --test-fold apply to --protocol benchmark"),
        (("--test-fold", 9), "--test-fold applies to --protocol benchmark"),
        (("--protocol", "benchmark", "--folds", 3), "--folds applies to --protocol cv"),
    ):  # fmt: skip
        proc = ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "o", *args)
        assert_one_line_error(proc, message)
    assert not (tmp_path / "o").exists()  # refused before any work


def test_corrupt_record_is_a_one_line_error_then_skippable(ecgcnn_here, synthetic_copy, tmp_path):
    dat = next((synthetic_copy / "records100").rglob("*.dat"))
    dat.write_bytes(dat.read_bytes()[:777])
    args = ("train", "--data-root", synthetic_copy, "--out", tmp_path / "o", "--folds", 2, "--epochs", 1,
            "--no-progress")  # fmt: skip
    assert_one_line_error(ecgcnn_here(*args), "1 record(s) missing or unreadable")
    proc = ecgcnn_here(*args, "--skip-missing")
    assert proc.returncode == 0, proc.stderr
    assert "warning: skipping 1 missing or unreadable record(s)" in proc.stderr


def test_demo_command_end_to_end(tmp_path):
    out = tmp_path / ("a-long-folder-name-" * 4) / "demo"  # paths longer than a terminal line
    proc = ecgcnn(
        "demo", "--out", out, "--patients", 40, "--folds", 2, "--epochs", 1, "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    assert str(out / "cv_results.json") in proc.stderr and "confusion" in proc.stderr  # not wrapped
    results = json.loads((out / "cv_results.json").read_text())
    assert set(results["folds"]) == {"fold_0", "fold_1"}


def test_benchmark_and_leaderboard_commands(ecgcnn_here, synthetic_root, tmp_path):
    out = tmp_path / "bench"
    proc = ecgcnn("benchmark", "--data-root", synthetic_root, "--out", out, "--tasks", "superdiagnostic",
                  "--models", "cnn1d,cnn1d@seed", "--epochs", 1, "--val-fold", 9, "--test-fold", 10,
                  "--seed", 7, "--aggregate", "mean", "--batch-size", 32, "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "superdiagnostic" / "cnn1d" / "config.json").read_text())
    assert config["seed"] == 7 and config["recipe"]["epochs"] == 1
    assert config["recipe"]["batch_size"] == 32
    assert config["recipe"]["aggregate"] == "mean"
    own = json.loads((out / "superdiagnostic" / "cnn1d@seed" / "config.json").read_text())
    assert (
        own["recipe"]["name"] == "seed" and own["recipe"]["epochs"] == 10
    )  # its own recipe, untouched
    assert (out / "leaderboard.md").is_file() and "cnn1d" in proc.stderr
    again = ecgcnn_here("leaderboard", out)
    assert again.returncode == 0, again.stderr
    assert "superdiagnostic" in again.stderr
    # the reference chosen once is kept when the table is recomputed; one not trained is an error
    assert ecgcnn_here("leaderboard", out, "--reference", "cnn1d@seed").returncode == 0
    assert ecgcnn_here("leaderboard", out).returncode == 0
    assert json.loads((out / "leaderboard.json").read_text())["reference"] == "cnn1d@seed"
    assert_one_line_error(ecgcnn_here("leaderboard", out, "--reference", "fcn_wang"),
                          "--reference fcn_wang was not trained in this benchmark (it has cnn1d, cnn1d@seed)")  # fmt: skip
    # another seed into the same folder is another run: refused, nothing overwritten
    clash = ecgcnn_here("benchmark", "--data-root", synthetic_root, "--out", out, "--tasks", "superdiagnostic",
                   "--models", "cnn1d,fcn_wang", "--epochs", 1, "--val-fold", 9, "--test-fold", 10,
                   "--seed", 8, "--no-progress")  # fmt: skip
    assert_one_line_error(
        clash,
        "other settings (seed: 7 there, 8 now; recipe.aggregate: 'mean' there, 'max' now; "
        "recipe.batch_size: 32 there, 128 now)",
    )
    bad = ecgcnn_here("benchmark", "--data-root", synthetic_root, "--out", tmp_path / "b2", "--models",
                 "cnn1d@seed,cnn1d", "--aggregate", "median", "--val-fold", 9, "--test-fold", 10)  # fmt: skip
    assert_one_line_error(bad, "unknown aggregate 'median'; expected max or mean")
    zero = ecgcnn_here("benchmark", "--data-root", synthetic_root, "--out", tmp_path / "b2", "--models",
                  "cnn1d", "--batch-size", 0, "--val-fold", 9, "--test-fold", 10)  # fmt: skip
    assert_one_line_error(zero, "batch size must be at least 1")
    assert not (tmp_path / "b2").exists()  # refused before the first entry trained
    assert not (out / "superdiagnostic" / "fcn_wang").exists()
    assert json.loads((out / "superdiagnostic" / "cnn1d" / "config.json").read_text())["seed"] == 7
    # an entry a newer ecgcnn went on with may hold settings this one does not know: refused up front
    own_path = out / "superdiagnostic" / "cnn1d@seed" / "config.json"
    own_path.write_text(json.dumps(own | {"continued_by": ["10.0.0"]}))
    newer = ecgcnn_here("benchmark", "--data-root", synthetic_root, "--out", out, "--tasks", "superdiagnostic",
                        "--models", "fcn_wang,cnn1d@seed", "--epochs", 1, "--val-fold", 9, "--test-fold", 10,
                        "--seed", 7, "--aggregate", "mean", "--batch-size", 32, "--no-progress")  # fmt: skip
    assert_one_line_error(newer, "resume it with ecgcnn 10.0.0 or newer")
    assert not (out / "superdiagnostic" / "fcn_wang").exists()


def test_train_benchmark_protocol_prints_its_test_figures(ecgcnn_here, synthetic_root, tmp_path):
    out = tmp_path / "bench-run"
    proc = ecgcnn_here("train", "--data-root", synthetic_root, "--out", out, "--protocol", "benchmark",
                  "--epochs", 1, "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    test = json.loads((out / "cv_results.json").read_text())["test"]["folds"]["benchmark"]
    rows = {
        line.split("│")[1].strip(): line for line in proc.stderr.splitlines() if line.count("│") > 3
    }
    assert f"{test['roc_auc_macro']:.3f}" in rows["benchmark test"]
    assert "benchmark validation" in rows and "mean ± std" not in rows  # one fold has no spread


def test_fold_lists_ranges_and_their_mix():
    from ecgcnn.cli import parse_folds
    from ecgcnn.errors import EcgcnnError

    assert parse_folds("1-8") == list(range(1, 9)) and parse_folds("1, 2,3") == [1, 2, 3]
    assert parse_folds("1-3,5") == [1, 2, 3, 5] and parse_folds("7,1-2") == [1, 2, 7]
    for bad in ("8-1", "a-b", "1-", ""):
        with pytest.raises(EcgcnnError, match="--train-folds"):
            parse_folds(bad)


def test_unwritable_outputs_and_absent_rate_folders_are_one_line_errors(
    ecgcnn_here, synthetic_root, synthetic_copy, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_root, "--out", blocker / "run", "--epochs", 1,
                                 "--no-progress"), f"{blocker / 'run'}: Not a directory")  # fmt: skip
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "o", "--cache-dir",
                                 blocker / "cache", "--no-progress"), f"{blocker / 'cache'}: Not a directory")  # fmt: skip
    (synthetic_copy / "records100").rename(synthetic_copy / "elsewhere")
    assert_one_line_error(ecgcnn_here("train", "--data-root", synthetic_copy, "--out", tmp_path / "o", "--no-progress"),
                          f"{synthetic_copy} has no records100/ folder for --fs 100")  # fmt: skip


def test_benchmark_skips_missing_records_when_asked(ecgcnn_here, synthetic_copy, tmp_path):
    (synthetic_copy / "records100" / "00000" / "00003_lr.dat").unlink()
    args = ("benchmark", "--data-root", synthetic_copy, "--tasks", "superdiagnostic", "--models", "cnn1d",
            "--epochs", 1, "--no-progress")  # fmt: skip
    assert_one_line_error(
        ecgcnn_here(*args, "--out", tmp_path / "b1"), "pass --skip-missing to leave them out"
    )
    proc = ecgcnn_here(*args, "--out", tmp_path / "b2", "--skip-missing")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("skipping 1 missing or unreadable record(s)") == 1  # not per load


def test_evaluate_checks_the_fold_before_reading_records_and_warns_of_training_records(
    ecgcnn_here, run_dir, synthetic_root, synthetic_copy, tmp_path
):
    ckpt = run_dir / "fold_0" / "checkpoint.pt"  # cv without a holdout: trained on every strat_fold
    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df[df.strat_fold != 10].to_csv(csv, index=False)
    cache = tmp_path / "cache"
    proc = ecgcnn_here("evaluate", "--checkpoint", ckpt, "--data-root", synthetic_copy, "--test-fold", 10,
                  "--out", tmp_path / "ev", "--cache-dir", cache, "--no-progress")  # fmt: skip
    assert_one_line_error(proc, "strat_fold 10 holds no records")
    assert not list(cache.glob("signals_*.npy")), (
        "the records were read before the fold was checked"
    )
    proc = ecgcnn_here("evaluate", "--checkpoint", ckpt, "--data-root", synthetic_root, "--test-fold", 9,
                  "--out", tmp_path / "ev", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "strat_fold 9 was in this checkpoint's training data" in proc.stderr
    # trained by cross-validation on a root without fold 10 (the development data's shape), then
    # scored on fold 10 of another root: a fair test, no warning
    proc = ecgcnn_here("train", "--data-root", synthetic_copy, "--out", tmp_path / "no10", "--folds", 2,
                       "--only-fold", 0, "--epochs", 1, "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ckpt = tmp_path / "no10" / "fold_0" / "checkpoint.pt"
    for fold, warned in ((10, False), (9, True)):
        proc = ecgcnn_here("evaluate", "--checkpoint", ckpt, "--data-root", synthetic_root, "--test-fold",
                           fold, "--out", tmp_path / f"ev{fold}", "--no-progress")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert ("was in this checkpoint's training data" in proc.stderr) == warned, proc.stderr


def test_scoring_every_record_warns_only_of_the_folds_the_root_holds(caplog):
    """Without --test-fold the warning is about the root's own folds: a root holding only unseen
    folds (a held-out fold 10, a hospital's records without strat_fold) is a fair test."""
    import logging

    from ecgcnn.evaluate import warn_if_trained_on
    from ecgcnn.records import NO_FOLD

    config = {"protocol": "benchmark", "train_folds": [1, 2, 3, 4, 5, 6, 7, 8]}
    for present, warned in (([10], None), ([NO_FOLD], None), ([8, 9, 10], "strat_folds 8")):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            warn_if_trained_on(config, None, "ckpt.pt", [1, 2, 3, 4, 5, 6, 7, 8, 9], present)
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert (warned is not None) == bool(messages), (present, messages)
        if warned:
            assert f"including {warned}, 9 that ckpt.pt trained on" in messages, messages
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # trained and scored on records without a strat_fold
        warn_if_trained_on({"protocol": "cv"}, None, "ckpt.pt", [NO_FOLD], [NO_FOLD])
        warn_if_trained_on({"protocol": "cv"}, None, "ckpt.pt", [NO_FOLD, 3], [NO_FOLD, 4])
    assert not caplog.records, caplog.text
    with caplog.at_level(logging.WARNING):  # ... unless it is the root the model trained on
        warn_if_trained_on({"protocol": "cv"}, None, "ckpt.pt", [NO_FOLD], [NO_FOLD], True)
    assert "scoring every record of the root ckpt.pt trained on" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # no fold list: as before, every record may be seen
        warn_if_trained_on(config, None, "ckpt.pt")
    assert "scoring every record" in caplog.text


def test_evaluate_on_a_fold_reads_that_fold_s_records_alone(ecgcnn_here, run_dir, synthetic_root,
                                                            synthetic_copy, tmp_path):  # fmt: skip
    df = pd.read_csv(synthetic_copy / "ptbxl_database.csv")
    for name in df.loc[df.strat_fold != 10, "filename_lr"]:  # the other folds' files are not here
        for suffix in (".hea", ".dat"):
            (synthetic_copy / f"{name}{suffix}").unlink()
    ckpt = run_dir / "fold_0" / "checkpoint.pt"
    proc = ecgcnn_here("evaluate", "--checkpoint", ckpt, "--data-root", synthetic_copy, "--test-fold", 10,
                       "--out", tmp_path / "part", "--cache-dir", tmp_path / "c", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not list((tmp_path / "c").glob("signals_*.npy"))  # a part of a root is not cached
    proc = ecgcnn_here("evaluate", "--checkpoint", ckpt, "--data-root", synthetic_root, "--test-fold", 10,
                       "--out", tmp_path / "whole", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    part, whole = (
        json.loads((tmp_path / d / "metrics_fold10.json").read_text()) for d in ("part", "whole")
    )
    assert part["records"] == whole["records"] == (df.strat_fold == 10).sum()
    assert part["roc_auc_macro"] == whole["roc_auc_macro"]


def test_evaluate_on_a_fold_without_labels_of_the_task_says_so(
    ecgcnn_here, synthetic_copy, tmp_path
):
    proc = ecgcnn_here("train", "--data-root", synthetic_copy, "--out", tmp_path / "r", "--protocol",
                       "benchmark", "--task", "superdiagnostic", "--epochs", 1, "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df.loc[df.strat_fold == 10, "scp_codes"] = "{'SR': 0.0}"  # a rhythm statement only
    df.to_csv(csv, index=False)
    proc = ecgcnn_here("evaluate", "--checkpoint", tmp_path / "r" / "benchmark" / "checkpoint.pt",
                       "--data-root", synthetic_copy, "--test-fold", 10, "--out", tmp_path / "ev")  # fmt: skip
    assert_one_line_error(proc, "no record of strat_fold 10 in")
    assert "has a label of task 'superdiagnostic'" in proc.stderr


def test_usage_errors_are_one_line_like_every_other_error(ecgcnn_here):
    """A mistyped option or command is `error: ...` with where to look, as our own errors are;
    exit code 2 as click gives it, and help still prints where it should."""
    bad = ecgcnn_here("train", "--epochs", "x")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: Invalid value for '--epochs'"), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "╭" not in bad.stderr
    assert "`ecgcnn train --help`" in bad.stderr
    typo = ecgcnn_here("trian")
    assert typo.returncode == 2 and typo.stderr.startswith("error: No such command 'trian'")
    assert "Did you mean 'train'?" in typo.stderr and len(typo.stderr.strip().splitlines()) == 1
    missing = ecgcnn_here("evaluate", "--test-fold")
    assert missing.returncode == 2 and missing.stderr.startswith("error: Option '--test-fold'")
    assert ecgcnn_here("--help").returncode == 0
    bare = ecgcnn_here()  # no command: the help, as before
    assert bare.returncode == 2 and "train" in bare.stdout + bare.stderr
    assert not (bare.stdout + bare.stderr).startswith("error:")
    assert ecgcnn_here("models").returncode == 0


def test_an_end_of_file_inside_a_command_is_an_error_not_an_interrupt(ecgcnn_here, monkeypatch):
    """typer turns EOFError (torch.load of an empty file raises it) into Abort: an error, exit 1,
    not 'interrupted' as a Ctrl-C would be."""
    import ecgcnn.models

    def empty(*args, **kwargs):
        raise EOFError("Ran out of input")

    monkeypatch.setattr(ecgcnn.models, "list_models", empty)
    out = ecgcnn_here("models")
    # (typer writes an empty line first, as after an end of input at a prompt)
    assert out.returncode == 1 and out.stderr.strip().startswith("error: unexpected end of a file")
    assert "Ran out of input" in out.stderr and "interrupted" not in out.stderr


def test_help_shows_no_value_placeholder_beside_an_on_off_flag():
    """`--allow-missing-leads` takes no value; typer 0.29 printed `<bool>` beside it (and beside
    `--help`), which reads as if a value were wanted, and `<list[Path]>` for a list argument."""
    from typer.testing import CliRunner

    from ecgcnn.cli import app

    result = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    flag_lines = [line for line in result.output.splitlines() if "--allow-missing-leads" in line]
    assert flag_lines and "<bool>" not in flag_lines[0], flag_lines
    assert "<list[" not in result.output


def test_only_rank_zero_logs_warnings_under_torchrun(monkeypatch):
    """Every rank computes the same metrics and would warn of the same class twice."""
    import logging

    from ecgcnn.cli import _setup_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        monkeypatch.setenv("RANK", "1")
        monkeypatch.setenv("WORLD_SIZE", "2")
        _setup_logging()
        [handler] = root.handlers

        def shown(name: str, level: int) -> bool:
            return bool(handler.filter(logging.LogRecord(name, level, "", 0, "m", None, None)))

        assert not shown("ecgcnn.metrics", logging.WARNING) and shown("ecgcnn.train", logging.ERROR)
        assert shown("ecgcnn.cache", logging.WARNING)  # its own node's cache: only it can tell
        assert handler.format(logging.LogRecord("ecgcnn.cache", logging.WARNING, "", 0, "x", None,
                                                None)) == "warning: rank 1: x"  # fmt: skip
        monkeypatch.setenv("WORLD_SIZE", "1")  # RANK set by a scheduler, no torchrun: all said
        _setup_logging()
        assert root.handlers[0].filter(logging.LogRecord("ecgcnn.metrics", logging.WARNING, "", 0,
                                                         "m", None, None))  # fmt: skip
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
