"""The scripts behind BENCHMARKS.md's sweeps, run with a user's arguments (as __main__, in this process), on synthetic PTB-XL."""

import contextlib
import io
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ecgcnn.benchmark import run_benchmark

pytestmark = pytest.mark.slow
SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"
SPLIT = ["--train-folds", "1-8", "--val-fold", "9", "--test-fold", "10"]


def script(name: str, *args: object) -> subprocess.CompletedProcess:
    """``python benchmarks/NAME ARGS...`` run as __main__ in this process (a subprocess each would
    spend seconds starting Python and torch), with its stdout, stderr and exit status."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, threads = sys.argv, torch.get_num_threads()
    sys.argv = [str(SCRIPTS / name), *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(SCRIPTS / name), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            err.write(str(exc.code))
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)  # a script may set its own
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def sweep(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    proc = script("sweep_recipe.py", "--data-root", synthetic_root, "--out", out, "--model", "fcn_wang",
                  "--epochs", 1, *SPLIT, "--variant", "base", "{}",
                  "--variant", "mix", '{"mixup_alpha": 0.2, "aggregate": "mean", "baseline": "highpass"}')  # fmt: skip
    return out, proc


def table_rows(stdout: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| variant") and "---" not in line
    ]


def test_sweep_trains_each_variant_and_ranks_by_validation(sweep):
    out, proc = sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = table_rows(proc.stdout)
    assert sorted(r[0] for r in rows) == ["base", "mix"]
    val = [float(r[2]) for r in rows]
    assert val == sorted(val, reverse=True)  # ranked by the validation column
    recipe = json.loads((out / "mix" / "config.json").read_text())["recipe"]
    assert recipe["mixup_alpha"] == 0.2 and recipe["aggregate"] == "mean" and recipe["epochs"] == 1
    assert recipe["baseline"] == "highpass"
    assert json.loads((out / "base" / "config.json").read_text())["recipe"]["mixup_alpha"] == 0.0


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("[0.2]", "variant bad: expected a JSON object of recipe settings, got [0.2]"),
        ("{mixup: 1}", "variant bad: '{mixup: 1}' is not JSON"),
        ('{"mixup": 0.2}', "variant bad: unknown recipe setting(s): mixup"),
        ('{"aggregate": "median"}', "variant bad: unknown aggregate 'median'"),
    ],
)
def test_sweep_checks_every_variant_before_training(synthetic_root, tmp_path, variant, message):
    proc = script("sweep_recipe.py", "--data-root", synthetic_root, "--out", tmp_path / "s", *SPLIT,
                  "--variant", "good", "{}", "--variant", "bad", variant)  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()  # the good variant before it did not train either


def test_sweep_over_seeds_ranks_by_their_mean(synthetic_root, tmp_path):
    proc = script("sweep_recipe.py", "--data-root", synthetic_root, "--out", tmp_path, "--model", "cnn1d",
                  "--epochs", 1, *SPLIT, "--seeds", "1,2", "--variant", "base", "{}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    val = []
    for seed in (1, 2):
        assert (
            json.loads((tmp_path / "base" / f"seed{seed}" / "config.json").read_text())["seed"]
            == seed
        )
        metrics = json.loads(
            (tmp_path / "base" / f"seed{seed}" / "benchmark" / "metrics.json").read_text()
        )
        assert metrics["split"] == "val"
        val.append(metrics["roc_auc_macro"])
    (row,) = table_rows(proc.stdout)
    assert float(row[2]) == pytest.approx(sum(val) / 2, abs=1e-4)
    assert row[4] == f"{val[0]:.4f}, {val[1]:.4f}"
    assert "the mean over seeds 1,2" in proc.stdout
    bad = script("sweep_recipe.py", "--data-root", synthetic_root, "--out", tmp_path, *SPLIT, "--seeds", "1,x",
                 "--variant", "base", "{}")  # fmt: skip
    assert bad.returncode == 2 and "--seeds: expected integers separated by commas" in bad.stderr


def test_window_aggregation_rescores_finished_runs(sweep):
    out, _ = sweep
    proc = script("window_aggregation.py", out / "base", out / "mix")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(f"| {out}")]
    assert len(rows) == 2
    for row in rows:  # four window settings and the whole record, each "validation, test"
        cells = row.strip("|").split("|")[1:]
        assert len(cells) == 5
        assert all(re.fullmatch(r"\s*0\.\d{4}, 0\.\d{4}\s*", c) for c in cells), row
    # mix was trained with mean / 1.25 s on filtered records: re-scored so, on its own records
    mix = next(r for r in rows if r.startswith(f"| {out / 'mix'} "))
    val = json.loads((out / "mix" / "benchmark" / "metrics.json").read_text())["roc_auc_macro"]
    assert mix.strip("|").split("|")[2].strip().startswith(f"{val:.4f},")
    usage = script("window_aggregation.py")
    assert usage.returncode == 2 and "Re-score finished" in usage.stderr


def test_robustness_scores_a_fold_perturbed_under_each_baseline(sweep, synthetic_root, tmp_path):
    out, _ = sweep
    checkpoint = out / "base" / "benchmark" / "checkpoint.pt"
    proc = script("robustness.py", "--data-root", synthetic_root, "--fold", 9, "--checkpoint", checkpoint,
                  "--out", tmp_path / "r.json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["perturbation"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert list(rows) == ["as recorded", "offsets up to 0.5 mV", "offsets up to 1 mV",
                          "offsets up to 2 mV", "drift of 0.5 mV", "drift of 1 mV"]  # fmt: skip
    clean = rows["as recorded"]
    assert all(0 <= r[b] <= 1 for r in rows.values() for b in ("keep", "median", "highpass"))
    for name in ("offsets up to 1 mV", "offsets up to 2 mV"):  # an offset is all a median removes
        assert (
            rows[name]["median"] == clean["median"]
            and rows[name]["median_f1"] == clean["median_f1"]
        )
        assert abs(rows[name]["highpass"] - clean["highpass"]) <= 2e-4
    assert rows["offsets up to 2 mV"]["keep"] != clean["keep"]
    assert len(table_rows(proc.stdout)) == 1 + 6  # its header, then a row per perturbation
    none = script(
        "robustness.py", "--data-root", synthetic_root, "--fold", 11, "--checkpoint", checkpoint
    )
    assert none.returncode == 1 and "strat_fold 11 holds no labelled records" in none.stderr


def test_paired_runs_compares_each_run_with_its_reference(sweep):
    out, _ = sweep
    proc = script("paired_runs.py", "--runs", out / "mix", out / "base",
                  "--reference", out / "base", out / "mix")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    test_auc = {v: json.loads(next((out / v).glob("*/metrics_test.json")).read_text())
                ["roc_auc_macro"] for v in ("base", "mix")}  # fmt: skip
    lines = [x for x in proc.stdout.splitlines() if x.startswith(f"| {out}")]
    assert len(lines) == 2 and f"| {test_auc['mix']:.4f} | {test_auc['base']:.4f} |" in lines[0]
    assert f"{test_auc['mix'] - test_auc['base']:+.4f} (" in lines[0]
    assert "difference +0.0000 +- " in proc.stdout  # a - b and b - a: a mean of zero
    bad = script("paired_runs.py", "--runs", out / "mix", "--reference", out / "base", out / "mix")
    assert bad.returncode == 2 and "one each" in bad.stderr


def test_seed_summary_puts_seeds_side_by_side(synthetic_root, tmp_path):
    folders = []
    for seed in (1, 2):
        folders.append(tmp_path / f"seed{seed}")
        run_benchmark(synthetic_root, folders[-1], ["superdiagnostic"], ["cnn1d", "fcn_wang"], epochs=1,
                      val_fold=9, test_fold=10, seed=seed, progress=False)  # fmt: skip
    proc = script("seed_summary.py", *folders)
    assert proc.returncode == 0, proc.stderr[-3000:]
    boards = [
        json.loads((f / "leaderboard.json").read_text())["tasks"]["superdiagnostic"]
        for f in folders
    ]
    diffs = [b["fcn_wang"]["vs_reference"]["roc_auc_diff"]["point"] for b in boards]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("| fcn_wang |"))
    assert f"{(diffs[0] + diffs[1]) / 2:+.3f} +- " in line
    assert line.count("to") == 2  # one paired interval per seed
    other = script("seed_summary.py", "--task", "all", *folders)
    assert other.returncode == 2 and "no all results with reference cnn1d" in other.stderr


def test_seed_summary_names_ensembles_and_refuses_to_average_different_ones(tmp_path):
    def board(folder, members, **setting):
        row = {"roc_auc": {"point": 0.9, "lower": 0.8, "upper": 0.95}, "parameters": 10,
               "members": members, "vs_reference": {"roc_auc_diff": {"point": 0.01, "lower": 0.0,
                                                                      "upper": 0.02}}} | setting  # fmt: skip
        ref = {"roc_auc": {"point": 0.89, "lower": 0.8, "upper": 0.95}, "parameters": 10}
        folder.mkdir()
        (folder / "leaderboard.json").write_text(json.dumps(
            {"reference": "cnn1d", "tasks": {"superdiagnostic": {"fcn_wang": row, "cnn1d": ref}}}
        ))  # fmt: skip

    board(tmp_path / "a", 2)
    board(tmp_path / "b", 2)
    proc = script("seed_summary.py", tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert "| fcn_wang (2 members) |" in proc.stdout and "| cnn1d |" in proc.stdout
    board(tmp_path / "c", 1)
    mixed = script("seed_summary.py", tmp_path / "a", tmp_path / "c")
    assert mixed.returncode == 2 and "fcn_wang (2 members) in" in mixed.stderr
    assert "but fcn_wang in" in mixed.stderr and "not one model to average" in mixed.stderr
    # the same size trained another way (auxiliary labels, a filtered baseline) is another model too
    board(tmp_path / "d", 2, aux_task="all")
    board(tmp_path / "e", 2, baseline="highpass")
    for other, named in (("d", "all labels as auxiliary outputs"), ("e", "highpass baseline")):
        proc = script("seed_summary.py", tmp_path / "a", tmp_path / other)
        assert proc.returncode == 2 and named in proc.stderr, (other, proc.stderr)
    board(tmp_path / "f", 2, aux_task="all")
    same = script("seed_summary.py", tmp_path / "d", tmp_path / "f")
    assert same.returncode == 0 and "| fcn_wang (2 members), all labels as auxiliary" in same.stdout


def test_the_prepared_gpu_benchmark_runs_as_a_cpu_dry_run(synthetic_root, tmp_path):
    """benchmarks/gpu_benchmark.sh is what a session with a lent GPU runs: it must work before then."""
    env = {**os.environ, "DEVICE": "cpu", "EPOCHS": "1", "MODELS": "cnn1d@seed,cnn1d",
           "TASKS": "superdiagnostic", "DATA": str(synthetic_root), "TRAIN_FOLDS": "1-8", "VAL_FOLD": "9",
           "TEST_FOLD": "10", "PYTHON": sys.executable, "OUT": str(tmp_path / "out"),
           "WORK": str(tmp_path / "work"), "PYTHONWARNINGS": "ignore"}  # fmt: skip
    repo = SCRIPTS.parent
    proc = subprocess.run(["bash", str(SCRIPTS / "gpu_benchmark.sh")], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "env.txt",
        "leaderboard.json",
        "leaderboard.md",
        "log.txt",
    ]
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert set(board["tasks"]["superdiagnostic"]) >= {"cnn1d", "cnn1d@seed"}
    assert "torch" in (tmp_path / "out" / "env.txt").read_text()
    env["DATA"] = str(tmp_path / "nowhere")
    missing = subprocess.run(["bash", str(SCRIPTS / "gpu_benchmark.sh")], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert missing.returncode == 1 and "ptbxl_database.csv not found" in missing.stderr


def test_bench_holter_writes_an_ishne_day_in_small_and_predicts_its_timeline(
    served_checkpoint, tmp_path
):
    out = tmp_path / "holter.json"
    proc = script("bench_holter.py", "--checkpoint", served_checkpoint, "--hours", 0.01, "--fs", 250,
                  "--every", 10, "--whole", "--out", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["holter"]["samples_per_lead"] == 9000  # 36 s at 250 Hz
    every, whole = result["runs"]
    assert (every["every_s"], every["rows"]) == (10, 4)  # 0-10, 10-20, 20-30, 30-36 s
    assert (whole["every_s"], whole["rows"]) == (None, 1)
    assert "predicted 4 part(s) of 1 record(s)" in every["summary"]


def test_bench_mfer_reads_hostile_and_well_formed_files_in_children(tmp_path):
    out = tmp_path / "mfer.json"
    proc = script("bench_mfer.py", "--quick", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = {row["file"]: row for row in json.loads(out.read_text())["cases"]}
    assert len(rows) == 4
    good = rows.pop("12-lead ECG, 10 s, one frame")
    assert good["read_recording"]["outcome"] == "read: 12 leads of 5,000 samples"
    assert good["walk"]["outcome"] == "walked"
    for name, row in rows.items():  # each hostile file refused by the walk, before decoding
        walk, read = row["walk"]["outcome"], row["read_recording"]["outcome"]
        assert walk.startswith("RecordError: case.mwf: MFER"), (name, walk)
        assert read.startswith("RecordError: ") and walk.split(": ", 2)[2][:40] in read, (
            name,
            read,
        )


def test_bench_cache_builds_and_reopens_each_baselines_file(synthetic_root, tmp_path):
    out = tmp_path / "cache.json"
    proc = script("bench_cache.py", "--data-root", synthetic_root, "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["baseline"] for r in rows] == ["keep", "median", "highpass"]
    records = len(list((synthetic_root / "records100").rglob("*.hea")))
    assert all(r["records"] == records and r["file_mib"] > 0 for r in rows)
    assert all(r["reopen_s"] > 0 for r in rows) and "| highpass |" in proc.stdout


def test_bench_cache_refuses_unreadable_records_unless_told_to_skip(synthetic_copy, tmp_path):
    next((synthetic_copy / "records100").rglob("*.dat")).unlink()
    proc = script("bench_cache.py", "--data-root", synthetic_copy)
    assert proc.returncode != 0 and "pass --skip-missing" in proc.stderr
    proc = script("bench_cache.py", "--data-root", synthetic_copy, "--skip-missing", "--out",
                  tmp_path / "c.json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = len(list((synthetic_copy / "records100").rglob("*.hea")))
    assert {r["records"] for r in json.loads((tmp_path / "c.json").read_text())["rows"]} == {
        records - 1
    }
