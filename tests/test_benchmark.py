"""`ecgcnn benchmark` and `ecgcnn leaderboard` on synthetic PTB-XL."""

import json
import logging

import pytest

from ecgcnn.benchmark import NAIVE, leaderboard, parse_entry, run_benchmark
from ecgcnn.checkpoint import load_checkpoint
from ecgcnn.errors import EcgcnnError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b"
    board = run_benchmark(synthetic_root, out, ["superdiagnostic"], ["cnn1d", "fcn_wang", "cnn1d@seed"], epochs=2,
                          batch_size=8, val_fold=9, test_fold=10, progress=False)  # fmt: skip
    return out, board


def test_leaderboard_has_intervals_baseline_and_paired_differences(bench):
    out, board = bench
    rows = board["tasks"]["superdiagnostic"]
    assert set(rows) == {"cnn1d", "fcn_wang", "cnn1d@seed", NAIVE}
    for name in ("cnn1d", "fcn_wang"):
        roc = rows[name]["roc_auc"]
        assert roc["lower"] <= roc["point"] <= roc["upper"]
        assert rows[name]["parameters"] > 0 and rows[name]["train_seconds"] > 0
    assert rows[NAIVE]["roc_auc"]["point"] == pytest.approx(0.5)
    diff = rows["fcn_wang"]["vs_reference"]["roc_auc_diff"]
    assert diff["point"] == pytest.approx(
        rows["fcn_wang"]["roc_auc"]["point"] - rows["cnn1d"]["roc_auc"]["point"]
    )
    assert "vs_reference" not in rows["cnn1d"]
    md = (out / "leaderboard.md").read_text()
    assert "| cnn1d |" in md and "## superdiagnostic" in md and NAIVE in md
    assert json.loads((out / "leaderboard.json").read_text())["tasks"].keys() == {"superdiagnostic"}


def test_an_entry_may_bring_its_own_recipe(bench):
    out, board = bench
    row = board["tasks"]["superdiagnostic"]["cnn1d@seed"]
    config = json.loads((out / "superdiagnostic" / "cnn1d@seed" / "config.json").read_text())
    assert config["model"] == "cnn1d" and config["recipe"]["name"] == "seed"
    # --epochs and --batch-size are for the entries trained with the benchmark recipe
    assert row["epochs"] == config["recipe"]["epochs"] == 10
    assert config["recipe"]["batch_size"] == 16
    fcn = json.loads((out / "superdiagnostic" / "fcn_wang" / "config.json").read_text())
    assert fcn["recipe"]["batch_size"] == 8 and fcn["recipe"]["epochs"] == 2
    assert (
        "vs_reference" in row
        and row["parameters"] == board["tasks"]["superdiagnostic"]["cnn1d"]["parameters"]
    )
    with pytest.raises(EcgcnnError, match=r"MODEL\[@RECIPE\]"):
        parse_entry("cnn1d@", "benchmark")
    with pytest.raises(EcgcnnError, match="unknown recipe"):
        parse_entry("cnn1d@nope", "benchmark")


def test_leaderboard_is_recomputed_from_files(bench):
    out, board = bench
    again = leaderboard(out)
    assert again["tasks"] == json.loads(json.dumps(board["tasks"]))


def test_a_class_left_out_of_the_bootstrap_is_warned_of_once_per_task(bench, tmp_path, caplog):
    import shutil

    import numpy as np

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    for npz in out.glob("superdiagnostic/*/benchmark/predictions_test.npz"):
        saved = dict(np.load(npz))
        saved["y_true"][:, 0] = 0  # the first class has no positives in the test fold
        np.savez(npz, **saved)
    with caplog.at_level(logging.WARNING):
        board = leaderboard(out)
    first = json.loads((out / "superdiagnostic" / "cnn1d" / "config.json").read_text())["classes"][
        0
    ]
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warnings) == 1 and first in warnings[0] and "superdiagnostic" in warnings[0]
    assert all(
        row["excluded_classes"] == [first] for row in board["tasks"]["superdiagnostic"].values()
    )


def test_a_task_with_no_class_to_score_is_left_out_of_the_leaderboard(bench, tmp_path, caplog):
    """A small root's test fold may hold one class only for a task (every record SR in rhythm):
    that task is left out with a warning naming it, and the other tasks' tables are written."""
    import shutil

    import numpy as np

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    shutil.copytree(out / "superdiagnostic", out / "rhythm")
    for npz in out.glob("rhythm/*/benchmark/predictions_test.npz"):
        saved = dict(np.load(npz))
        saved["y_true"][:] = 1  # every test record has every class: no negatives anywhere
        np.savez(npz, **saved)
    with caplog.at_level(logging.WARNING):
        board = leaderboard(out)
    assert list(board["tasks"]) == ["superdiagnostic"]
    assert (
        "no class has at least 1 positive(s) and one negative" in board["skipped_tasks"]["rhythm"]
    )
    assert any(
        r.getMessage().startswith("rhythm: left out of the leaderboard") for r in caplog.records
    )
    markdown = (out / "leaderboard.md").read_text()
    assert "rhythm: not scored (no class has at least 1 positive(s)" in markdown
    assert (
        json.loads((out / "leaderboard.json").read_text())["skipped_tasks"]
        == board["skipped_tasks"]
    )
    shutil.rmtree(out / "superdiagnostic")
    with pytest.raises(EcgcnnError, match="no task could be scored.*rhythm: no class has"):
        leaderboard(out)


def test_a_task_whose_bootstrap_hits_the_draw_cap_is_left_out(bench, tmp_path, monkeypatch):
    """Rare classes can make the bootstrap give up (its draw cap): that task is left out with the
    reason, the other tasks are scored, and a --reference trained only there is named as such."""
    import shutil

    import numpy as np

    from ecgcnn import bootstrap

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    shutil.copytree(out / "superdiagnostic", out / "rare")
    for npz in out.glob("rare/*/benchmark/predictions_test.npz"):
        saved = dict(np.load(npz))
        saved["y_true"][:] = 0
        for j in range(saved["y_true"].shape[1]):  # one positive per class
            saved["y_true"][j, j] = 1
        np.savez(npz, **saved)
    monkeypatch.setattr(bootstrap, "DRAWS_PER_RESAMPLE", 5)  # rare: ~7% of draws held every class
    board = leaderboard(out)
    assert list(board["tasks"]) == ["superdiagnostic"]
    assert "bootstrap resamples held every class" in board["skipped_tasks"]["rare"]
    shutil.rmtree(out / "superdiagnostic" / "fcn_wang")
    with pytest.raises(EcgcnnError, match="fcn_wang was trained only in a task left out.*rare"):
        leaderboard(out, reference="fcn_wang")


def test_a_leaderboard_with_no_task_to_score_removes_the_old_one(bench, tmp_path):
    """The leaderboard files always match the folder: when no task can be scored any more, the
    previous table is removed rather than left to be read as current."""
    import shutil

    import numpy as np

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    leaderboard(out)
    assert (out / "leaderboard.md").is_file()
    for npz in out.glob("superdiagnostic/*/benchmark/predictions_test.npz"):
        saved = dict(np.load(npz))
        saved["y_true"][:] = 1
        np.savez(npz, **saved)
    with pytest.raises(EcgcnnError, match="no task could be scored.*previous leaderboard removed"):
        leaderboard(out)
    assert not (out / "leaderboard.md").exists() and not (out / "leaderboard.json").exists()


def test_saved_files_missing_or_corrupt_are_named(bench, synthetic_root, tmp_path, caplog):
    """A finished entry whose test predictions went missing is named, never taken for untrained;
    the benchmark does not call it finished; corrupt saved files are one-line errors naming them."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    entry = out / "superdiagnostic" / "fcn_wang" / "benchmark"
    (entry / "predictions_test.npz").unlink()
    with caplog.at_level(logging.WARNING):
        board = leaderboard(out, reference="cnn1d")
    assert "fcn_wang" not in board["tasks"]["superdiagnostic"]
    assert f"{entry / 'predictions_test.npz'} is missing" in caplog.text
    with pytest.raises(
        EcgcnnError, match=r"--reference fcn_wang: .*predictions_test.npz is missing"
    ):
        leaderboard(out, reference="fcn_wang")
    with pytest.raises(EcgcnnError, match=r"predictions_test.npz is missing.*delete .*fcn_wang"):
        run_benchmark(synthetic_root, out, ["superdiagnostic"], ["cnn1d", "fcn_wang"], epochs=2,
                      batch_size=8, val_fold=9, test_fold=10, progress=False)  # fmt: skip

    shutil.rmtree(entry.parent)
    reference = out / "superdiagnostic" / "cnn1d" / "benchmark"
    (reference / "predictions_test.npz").write_text("garbage")
    with pytest.raises(EcgcnnError, match=r"cnn1d/benchmark/predictions_test.npz: not readable"):
        leaderboard(out)
    shutil.copy(bench[0] / "superdiagnostic" / "cnn1d" / "benchmark" / "predictions_test.npz",
                reference)  # fmt: skip
    (reference / "history.json").write_text("[")
    with pytest.raises(EcgcnnError, match=r"cnn1d/benchmark/history.json: not readable JSON"):
        leaderboard(out)
    shutil.copy(bench[0] / "superdiagnostic" / "cnn1d" / "benchmark" / "history.json", reference)
    (out / "leaderboard.json").write_text("{")  # its own output: rewritten, with a warning
    with caplog.at_level(logging.WARNING):
        assert leaderboard(out)["reference"] == "cnn1d"
    assert "leaderboard.json: not readable JSON" in caplog.text
    assert json.loads((out / "leaderboard.json").read_text())["reference"] == "cnn1d"

    # every entry of the only task without its predictions: named, and no stale table left
    for npz in out.glob("superdiagnostic/*/benchmark/predictions_test.npz"):
        npz.unlink()
    with pytest.raises(EcgcnnError, match=r"no task could be scored \(superdiagnostic: .*"
                       r"predictions_test.npz is missing.*previous leaderboard removed"):  # fmt: skip
        leaderboard(out)
    assert not (out / "leaderboard.md").exists()


def test_finished_models_are_not_retrained(bench, synthetic_root, caplog):
    out, _ = bench
    before = (out / "superdiagnostic" / "cnn1d" / "benchmark" / "checkpoint.pt").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        run_benchmark(synthetic_root, out, ["superdiagnostic"], ["cnn1d", "fcn_wang"], epochs=2, batch_size=8,
                      val_fold=9, test_fold=10, progress=False)  # fmt: skip
    assert "superdiagnostic / cnn1d: finished before, not retrained" in caplog.text
    assert (
        out / "superdiagnostic" / "cnn1d" / "benchmark" / "checkpoint.pt"
    ).stat().st_mtime_ns == before


def test_bad_names_and_empty_folders(tmp_path, synthetic_root):
    with pytest.raises(EcgcnnError, match="unknown model"):
        run_benchmark(synthetic_root, tmp_path / "x", ["superdiagnostic"], ["nope"])
    with pytest.raises(EcgcnnError, match="unknown task"):
        run_benchmark(synthetic_root, tmp_path / "x", ["nope"], ["cnn1d"])
    with pytest.raises(EcgcnnError, match="no model given"):
        run_benchmark(synthetic_root, tmp_path / "x", ["superdiagnostic"], [])
    with pytest.raises(EcgcnnError, match="no task given"):
        run_benchmark(synthetic_root, tmp_path / "x", [], ["cnn1d"])
    with pytest.raises(EcgcnnError, match="no finished benchmark runs"):
        leaderboard(tmp_path)


def test_markdown_says_when_a_point_lies_outside_its_interval():
    from ecgcnn.benchmark import leaderboard_markdown

    def row(point, lower, upper):
        iv = {"point": point, "mean": point, "lower": lower, "upper": upper}
        return {"roc_auc": iv, "pr_auc": iv, "excluded_classes": [], "parameters": 1,
                "train_seconds": 1.0}  # fmt: skip

    board = {"reference": "cnn1d", "level": 0.9, "n_resamples": 100,
             "tasks": {"all": {"cnn1d": row(0.8, 0.7, 0.9)}}}  # fmt: skip
    assert "outside its interval" not in leaderboard_markdown(board)
    board["tasks"]["all"]["x"] = row(0.19, 0.193, 0.23)
    assert "Point estimate outside its interval (x)" in leaderboard_markdown(board)


def test_an_entry_may_name_its_own_ensemble_size():
    """``MODEL[@RECIPE]-xK``: K members for that entry alone, so one benchmark holds a network and
    an ensemble of the same model, and ``--members`` no longer turns the reference into one."""
    name, model, recipe, own, members = parse_entry("fcn_wang-x2", "benchmark")
    assert (name, model, recipe.name, own, members) == (
        "fcn_wang-x2",
        "fcn_wang",
        "benchmark",
        False,
        2,
    )
    name, model, recipe, own, members = parse_entry("cnn1d@seed-x3", "benchmark")
    assert (model, recipe.name, own, members) == ("cnn1d", "seed", True, 3)
    assert parse_entry("cnn1d", "benchmark").members is None
    for bad in ("fcn_wang-x0", "fcn_wang-x", "fcn_wang-xa", "fcn_wang-x2-x2", "fcn_wang@-x2"):
        with pytest.raises(EcgcnnError, match="MODEL\\[@RECIPE\\]\\[-xK\\]"):
            parse_entry(bad, "benchmark")


def test_one_benchmark_holds_a_network_and_its_ensemble(synthetic_root, tmp_path):
    board = run_benchmark(synthetic_root, tmp_path / "b", ["superdiagnostic"], ["cnn1d", "cnn1d-x2"],
                          epochs=1, batch_size=8, members=3, val_fold=9, test_fold=10,
                          progress=False)  # fmt: skip
    rows = board["tasks"]["superdiagnostic"]
    assert rows["cnn1d"]["members"] == 3  # --members: entries without their own size
    assert rows["cnn1d-x2"]["members"] == 2  # the entry's own size wins
    assert rows["cnn1d-x2"]["parameters"] * 3 == rows["cnn1d"]["parameters"] * 2
    config = json.loads(
        (tmp_path / "b" / "superdiagnostic" / "cnn1d-x2" / "config.json").read_text()
    )
    assert config["model"] == "cnn1d" and config["recipe"]["members"] == 2
    assert "vs_reference" in rows["cnn1d-x2"]
    from ecgcnn.benchmark import entry_label

    assert entry_label("cnn1d-x2", rows["cnn1d-x2"]) == "cnn1d-x2"  # its size once, not twice
    assert entry_label("cnn1d", rows["cnn1d"]) == "cnn1d (3 members)"


def test_baseline_applies_to_the_benchmark_recipe_entries_alone(synthetic_root, tmp_path):
    """``--baseline`` is a setting of the benchmark's recipe, like ``--batch-size``: an entry with
    its own recipe (the original cnn1d@seed) is trained as that recipe says."""
    run_benchmark(synthetic_root, tmp_path / "b", ["superdiagnostic"], ["cnn1d", "cnn1d@seed"],
                  epochs=1, batch_size=32, baseline="median", val_fold=9, test_fold=10,
                  progress=False)  # fmt: skip
    recipes = {
        spec: json.loads((tmp_path / "b" / "superdiagnostic" / spec / "config.json").read_text())[
            "recipe"
        ]
        for spec in ("cnn1d", "cnn1d@seed")
    }
    assert recipes["cnn1d"]["baseline"] == "median" and recipes["cnn1d@seed"]["baseline"] == "keep"
    checkpoint = tmp_path / "b" / "superdiagnostic" / "cnn1d" / "benchmark" / "checkpoint.pt"
    assert load_checkpoint(checkpoint)["baseline"] == "median"
    rows = json.loads((tmp_path / "b" / "leaderboard.json").read_text())["tasks"]["superdiagnostic"]
    assert rows["cnn1d"]["baseline"] == "median" and rows["cnn1d@seed"]["baseline"] == "keep"
    markdown = (tmp_path / "b" / "leaderboard.md").read_text()
    assert "cnn1d, median baseline" in markdown and "cnn1d@seed, " not in markdown


def test_ema_and_label_smoothing_apply_to_the_benchmark_recipe_entries_alone(
    synthetic_root, tmp_path
):
    """``--ema`` and ``--label-smoothing`` are benchmark-recipe settings like ``--baseline``: written to
    the entry's config, named in its leaderboard label, and not given to an entry with its own recipe."""
    run_benchmark(synthetic_root, tmp_path / "b", ["superdiagnostic"], ["cnn1d", "cnn1d@seed"],
                  epochs=1, batch_size=32, ema=0.9, label_smoothing=0.1, val_fold=9, test_fold=10,
                  progress=False)  # fmt: skip

    def recipe(spec):
        path = tmp_path / "b" / "superdiagnostic" / spec / "config.json"
        return json.loads(path.read_text())["recipe"]

    assert recipe("cnn1d")["ema_decay"] == 0.9 and recipe("cnn1d")["label_smoothing"] == 0.1
    assert recipe("cnn1d@seed")["ema_decay"] == 0 and recipe("cnn1d@seed")["label_smoothing"] == 0
    rows = json.loads((tmp_path / "b" / "leaderboard.json").read_text())["tasks"]["superdiagnostic"]
    assert rows["cnn1d"]["ema_decay"] == 0.9 and rows["cnn1d"]["label_smoothing"] == 0.1
    markdown = (tmp_path / "b" / "leaderboard.md").read_text()
    assert "cnn1d, EMA 0.9, label smoothing 0.1" in markdown and "cnn1d@seed, " not in markdown
    # a second look with another setting is another experiment: refused before training
    with pytest.raises(EcgcnnError, match="label_smoothing"):
        run_benchmark(synthetic_root, tmp_path / "b", ["superdiagnostic"], ["cnn1d"], epochs=1,
                      batch_size=32, ema=0.9, label_smoothing=0.2, val_fold=9, test_fold=10,
                      progress=False)  # fmt: skip


def test_aux_task_applies_to_the_benchmark_recipe_entries_of_other_tasks(synthetic_root, tmp_path):
    """``--aux-task all`` trains the benchmark-recipe entries of every other task with the `all`
    labels as extra outputs; the `all` task's own entries, and entries with their own recipe, without."""
    run_benchmark(synthetic_root, tmp_path / "b", ["superdiagnostic", "all"], ["cnn1d", "cnn1d@seed"],
                  epochs=1, batch_size=32, aux_task="all", val_fold=9, test_fold=10,
                  progress=False)  # fmt: skip

    def recipe(task, spec):
        return json.loads((tmp_path / "b" / task / spec / "config.json").read_text())["recipe"]

    assert recipe("superdiagnostic", "cnn1d")["aux_task"] == "all"
    assert recipe("superdiagnostic", "cnn1d@seed")["aux_task"] is None
    assert recipe("all", "cnn1d")["aux_task"] is None
    board = json.loads((tmp_path / "b" / "leaderboard.json").read_text())["tasks"]
    assert board["superdiagnostic"]["cnn1d"]["aux_task"] == "all"
    assert board["all"]["cnn1d"]["aux_task"] is None
    markdown = (tmp_path / "b" / "leaderboard.md").read_text()
    summary = markdown.split("\n## ")[0]  # the table across tasks names the setting once
    assert "| cnn1d, all labels as auxiliary outputs |" in summary, summary
    assert "cnn1d@seed, " not in markdown
    with pytest.raises(EcgcnnError, match="unknown task 'everything'"):
        run_benchmark(synthetic_root, tmp_path / "c", ["superdiagnostic"], ["cnn1d"], epochs=1,
                      aux_task="everything", val_fold=9, test_fold=10, progress=False)  # fmt: skip
    assert not (tmp_path / "c").exists()
