"""End-to-end training on synthetic PTB-XL: run folder, determinism, folds, holdout, benchmark split."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from ecgcnn import load_model
from ecgcnn.checkpoint import load_checkpoint
from ecgcnn.errors import EcgcnnError
from ecgcnn.recipes import get_recipe
from ecgcnn.splits import patients_overlap
from ecgcnn.train import TrainConfig, cv_summary, prepare, resume_config, train

pytestmark = pytest.mark.slow


def config(root, out, **kw):
    recipe = get_recipe("seed").with_overrides(epochs=kw.pop("epochs", 2), batch_size=32)
    return TrainConfig(data_root=str(root), out=str(out), folds=kw.pop("folds", 3), recipe=recipe,
                       progress=False, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def cv_run(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cv"
    results = train(config(synthetic_root, out))
    return out, results


def test_run_folder_holds_everything(cv_run):
    out, results = cv_run
    assert (out / "config.json").is_file() and (out / "splits.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["name"] == "seed" and config["recipe"]["epochs"] == 2
    assert config["classes"] == results["classes"] and len(config["classes"]) == 5
    for fold in ("fold_0", "fold_1", "fold_2"):
        for name in ("checkpoint.pt", "history.json", "predictions_val.npz", "metrics.json"):
            assert (out / fold / name).is_file(), f"{fold}/{name}"
        history = json.loads((out / fold / "history.json").read_text())
        assert [h["epoch"] for h in history] == [1, 2]
        preds = np.load(out / fold / "predictions_val.npz")
        assert preds["y_prob"].shape == preds["y_true"].shape == (len(preds["ecg_ids"]), 5)
    assert set(results["folds"]) == {"fold_0", "fold_1", "fold_2"}
    assert results["mean_std"]["roc_auc_macro"]["n"] == 3
    # Every record validated exactly once across the folds.
    ids = np.concatenate(
        [np.load(out / f / "predictions_val.npz")["ecg_ids"] for f in results["folds"]]
    )
    assert len(ids) == len(set(ids.tolist()))


def test_checkpoint_is_self_describing_and_loads_in_one_line(cv_run):
    out, _ = cv_run
    model = load_model(out / "fold_0" / "checkpoint.pt")
    meta = model.meta
    assert meta["model"]["name"] == "cnn1d" and meta["task"] == "top5" and meta["fs"] == 100
    assert meta["input_length"] == 1000 and len(meta["thresholds"]) == len(meta["classes"]) == 5
    assert set(meta["threshold_source"]) <= {"tuned", "fallback"}
    assert len(meta["preprocess"]["mean"]) == 12 and meta["version"]
    assert meta["metrics"]["val"]["roc_auc_macro"] is not None
    with torch.no_grad():
        prob = torch.sigmoid(model(torch.zeros(2, 12, 1000)))
    assert prob.shape == (2, 5)
    # The stored probabilities are reproduced by the loaded model.
    payload = load_checkpoint(out / "fold_0" / "checkpoint.pt")
    assert payload["format"].startswith("ecgcnn-checkpoint")


def test_training_is_deterministic_for_a_seed(synthetic_root, tmp_path, cv_run):
    out, _ = cv_run
    train(config(synthetic_root, tmp_path / "again", only_fold=1))
    a = np.load(out / "fold_1" / "predictions_val.npz")
    b = np.load(tmp_path / "again" / "fold_1" / "predictions_val.npz")
    np.testing.assert_array_equal(a["ecg_ids"], b["ecg_ids"])
    np.testing.assert_allclose(a["y_prob"], b["y_prob"], atol=1e-6)


def test_only_fold_runs_merge_into_the_same_cv_results(synthetic_root, tmp_path, cv_run):
    out, full = cv_run
    for k in range(3):
        train(config(synthetic_root, tmp_path / "split", only_fold=k))
    merged = cv_summary(tmp_path / "split")
    for key in ("pr_auc_macro", "roc_auc_macro", "f1_macro"):
        assert merged["mean_std"][key]["mean"] == pytest.approx(
            full["mean_std"][key]["mean"], abs=1e-6
        )
    assert (
        json.loads((tmp_path / "split" / "cv_results.json").read_text())["folds"].keys()
        == full["folds"].keys()
    )


def test_cv_summary_names_missing_folds(synthetic_root, tmp_path):
    train(config(synthetic_root, tmp_path / "part", only_fold=0, epochs=1))
    with pytest.raises(EcgcnnError, match="fold_1, fold_2 not trained yet"):
        cv_summary(tmp_path / "part")


def test_cv_summary_refuses_a_fold_trained_with_other_settings(synthetic_root, tmp_path):
    """Folds trained apart (parallel --only-fold jobs) can end up in one folder with different
    settings, past the start-up check: their figures must not be merged as one run's."""
    train(config(synthetic_root, tmp_path / "a", epochs=1))
    # a metrics.json that is valid JSON but not a fold's metrics: named, not a traceback
    metrics = tmp_path / "a" / "fold_2" / "metrics.json"
    saved = metrics.read_text()
    for damaged in ("[]", '{"split": "val"}'):
        metrics.write_text(damaged)
        with pytest.raises(EcgcnnError, match=r"fold_2/metrics.json: expected .*per_class"):
            cv_summary(tmp_path / "a")
    metrics.write_text(saved)
    train(config(synthetic_root, tmp_path / "b", only_fold=1, epochs=1, seed=7))
    shutil.rmtree(tmp_path / "a" / "fold_1")
    shutil.copytree(tmp_path / "b" / "fold_1", tmp_path / "a" / "fold_1")
    with pytest.raises(EcgcnnError, match=r"fold_1 was trained with other settings .*seed: 7"):
        cv_summary(tmp_path / "a")


def test_holdout_fold_is_kept_out_of_cv_and_scored_by_every_fold_and_the_ensemble(
    synthetic_root, tmp_path
):
    cfg = config(synthetic_root, tmp_path / "h", holdout_fold=10, epochs=1)
    data = prepare(cfg)
    for s in data.splits:
        assert (
            not (data.strat_fold[s.train] == 10).any() and not (data.strat_fold[s.val] == 10).any()
        )
        assert (data.strat_fold[s.test] == 10).all()
        assert not patients_overlap(data.patient_ids, s.train, s.val)
    results = train(cfg)
    assert set(results["holdout"]["folds"]) == {"fold_0", "fold_1", "fold_2"}
    assert results["holdout"]["ensemble"]["models"] == 3
    assert results["holdout"]["ensemble"]["records"] == int((data.strat_fold == 10).sum())
    # cv-summary: held-out predictions that went missing are named and the merged results kept;
    # a corrupt saved file is a one-line error naming it
    saved = (tmp_path / "h" / "cv_results.json").read_text()
    (tmp_path / "h" / "fold_1" / "predictions_test.npz").unlink()
    with pytest.raises(EcgcnnError, match=r"fold_1/predictions_test.npz is missing"):
        cv_summary(tmp_path / "h")
    assert (tmp_path / "h" / "cv_results.json").read_text() == saved
    (tmp_path / "h" / "fold_2" / "metrics.json").write_text('{"a":')
    with pytest.raises(EcgcnnError, match=r"fold_2/metrics.json: not readable JSON"):
        cv_summary(tmp_path / "h")
    (tmp_path / "h" / "config.json").write_text("{")
    with pytest.raises(EcgcnnError, match=r"h/config.json: not readable JSON"):
        cv_summary(tmp_path / "h")


def test_a_patient_in_two_strat_folds_is_warned_of(synthetic_copy, tmp_path, caplog):
    """Folds of a user's own data that split a patient's records: the test is not a clean one."""
    import logging

    from ecgcnn.train import prepare

    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    clean = prepare(config(synthetic_copy, tmp_path / "a", protocol="benchmark"))
    assert clean.splits[0].test is not None and not caplog.records
    patient = int(df.loc[df.strat_fold == 10, "patient_id"].iloc[0])
    df.loc[df.index[df.strat_fold == 1][0], "patient_id"] = patient  # one of its records in fold 1
    df.to_csv(csv, index=False)
    for kw in ({"protocol": "benchmark"}, {"holdout_fold": 10}):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            prepare(config(synthetic_copy, tmp_path / "b", **kw))
        messages = [r.getMessage() for r in caplog.records]
        assert any("1 patient(s) have records in both test and training" in m
                   and f"patient {patient}" in m for m in messages), messages  # fmt: skip


def test_benchmark_protocol_uses_strat_folds(synthetic_root, tmp_path):
    cfg = config(synthetic_root, tmp_path / "b", protocol="benchmark", task="superdiagnostic", epochs=1,
                 val_fold=8, test_fold=9, train_folds=list(range(1, 8)), model="cnn2d")  # fmt: skip
    results = train(cfg)
    assert list(results["folds"]) == ["benchmark"]
    assert results["classes"] == sorted(results["classes"])
    test = np.load(tmp_path / "b" / "benchmark" / "predictions_test.npz")
    assert len(test["ecg_ids"]) == results["test"]["folds"]["benchmark"]["records"]


def test_data_without_strat_folds_trains_with_cross_validation_only(synthetic_copy, tmp_path):
    """A user's own data in PTB-XL layout may have no strat_fold: patient-wise CV needs none."""

    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df["strat_fold"] = df["strat_fold"].astype(object)
    df.loc[3, "strat_fold"] = None  # one blank cell
    df.to_csv(csv, index=False)
    blank_id = int(df.loc[3, "ecg_id"])
    for why, overrides in (("--protocol benchmark", {"protocol": "benchmark", "val_fold": 9, "test_fold": 10}),
                           ("--holdout-fold", {"holdout_fold": 10})):  # fmt: skip
        with pytest.raises(EcgcnnError, match=f"ecg_id {blank_id} has no strat_fold; {why} needs"):
            prepare(config(synthetic_copy, tmp_path / "x", **overrides))
    df.drop(columns="strat_fold").to_csv(csv, index=False)  # no column at all
    with pytest.raises(EcgcnnError, match="has no strat_fold column; --protocol benchmark needs"):
        prepare(
            config(synthetic_copy, tmp_path / "x", protocol="benchmark", val_fold=9, test_fold=10)
        )
    results = train(config(synthetic_copy, tmp_path / "cv", epochs=1, folds=2))
    assert set(results["folds"]) == {"fold_0", "fold_1"}
    from ecgcnn.evaluate import evaluate_checkpoint

    checkpoint = tmp_path / "cv" / "fold_0" / "checkpoint.pt"
    with pytest.raises(EcgcnnError, match="has no strat_fold column; --test-fold needs"):
        evaluate_checkpoint(
            checkpoint, synthetic_copy, tmp_path / "ev", test_fold=10, progress=False
        )
    every = evaluate_checkpoint(checkpoint, synthetic_copy, tmp_path / "ev", progress=False)
    assert every["records"] == len(df)


def test_a_relative_cache_dir_is_kept_absolute_for_a_resume_elsewhere(
    synthetic_root, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    train(config(synthetic_root, "run", only_fold=0, epochs=1, cache_dir="mycache"))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["cache_dir"] == str(tmp_path / "mycache") and saved["out"] == str(tmp_path / "run")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    train(resume_config(tmp_path / "run", progress=False))  # finished: nothing retrained
    assert not (tmp_path / "elsewhere" / "mycache").exists()


def test_benchmark_folds_without_records_are_refused_before_any_record_is_read(
    synthetic_copy, tmp_path
):
    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df.loc[df.strat_fold == 9, "strat_fold"] = 10
    df.to_csv(csv, index=False)
    cfg = config(synthetic_copy, tmp_path / "x", protocol="benchmark", train_folds=list(range(1, 9)),
                 val_fold=9, test_fold=10, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    with pytest.raises(EcgcnnError, match=r"validation strat_fold\(s\) \[9\] hold no records"):
        prepare(cfg)
    assert not list((tmp_path / "cache").glob("signals_*.npy"))


def test_bad_settings_fail_before_any_work(synthetic_root, tmp_path):
    with pytest.raises(EcgcnnError, match="unknown model"):
        train(config(synthetic_root, tmp_path / "x", model="cnn3d"))
    with pytest.raises(EcgcnnError, match="unknown task"):
        train(config(synthetic_root, tmp_path / "x", task="top6"))
    with pytest.raises(EcgcnnError, match="larger than the number of patients"):
        train(config(synthetic_root, tmp_path / "x", folds=10_000))
    assert not (tmp_path / "x").exists()


def test_a_run_folder_refuses_a_different_run(synthetic_root, tmp_path):
    train(config(synthetic_root, tmp_path / "r", only_fold=0, epochs=1))
    train(config(synthetic_root, tmp_path / "r", only_fold=1, epochs=1))  # same run, another fold
    with pytest.raises(
        EcgcnnError, match="already holds a run with other settings.*seed: 42 there, 7 now"
    ):
        train(config(synthetic_root, tmp_path / "r", only_fold=2, epochs=1, seed=7))


def test_protocol_specific_flags_are_checked(synthetic_root, tmp_path):
    with pytest.raises(EcgcnnError, match="--only-fold 3 is not a fold of 0..0"):
        train(config(synthetic_root, tmp_path / "x", protocol="benchmark", only_fold=3))
    with pytest.raises(EcgcnnError, match="--holdout-fold applies to --protocol cv"):
        train(config(synthetic_root, tmp_path / "x", protocol="benchmark", holdout_fold=10))


def test_benchmark_recipe_trains_on_windows_and_scores_with_sliding_windows(
    synthetic_root, tmp_path
):
    recipe = get_recipe("benchmark").with_overrides(epochs=2, batch_size=64)
    assert (
        recipe.optimizer == "adamw" and recipe.schedule == "onecycle" and not recipe.class_weighted
    )
    cfg = TrainConfig(data_root=str(synthetic_root), out=str(tmp_path / "b"), protocol="benchmark",
                      task="superdiagnostic", val_fold=9, test_fold=10, train_folds=list(range(1, 9)),
                      recipe=recipe, progress=False)  # fmt: skip
    results = train(cfg)
    model = load_model(tmp_path / "b" / "benchmark" / "checkpoint.pt")
    assert (model.meta["window"], model.meta["stride"], model.meta["aggregate"]) == (
        250,
        125,
        "max",
    )
    assert results["folds"]["benchmark"]["epoch"] == 2  # the final epoch is kept, as published
    for split in ("train", "val", "test"):
        assert (tmp_path / "b" / "benchmark" / f"predictions_{split}.npz").is_file()
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["recipe"]["window_s"] == 2.5 and config["recipe"]["lr"] == 0.01


def test_sliding_window_scores_are_the_max_over_windows(cv_run):
    from ecgcnn.evaluate import predict_proba
    from ecgcnn.windows import sliding_windows

    out, _ = cv_run
    model = load_model(out / "fold_0" / "checkpoint.pt")
    data = np.random.default_rng(0).normal(scale=0.3, size=(3, 12, 1000)).astype(np.float32)
    prob = predict_proba(model, data, np.arange(3), window=250, stride=125, aggregate="max")
    w = sliding_windows(torch.from_numpy(data), 250, 125)
    assert w.shape == (3, 7, 12, 250)
    with torch.no_grad():
        each = torch.sigmoid(model(w.flatten(0, 1))).reshape(3, 7, -1).numpy()
    np.testing.assert_allclose(prob, each.max(axis=1), atol=1e-6)
    mean = predict_proba(model, data, np.arange(3), window=250, stride=125, aggregate="mean")
    np.testing.assert_allclose(mean, each.mean(axis=1), atol=1e-6)


def _benchmark_cfg(root, out, **overrides):
    recipe = get_recipe("benchmark").with_overrides(epochs=4, batch_size=64, **overrides)
    return TrainConfig(data_root=str(root), out=str(out), protocol="benchmark", task="superdiagnostic",
                       val_fold=9, test_fold=10, train_folds=list(range(1, 9)), recipe=recipe,
                       progress=False)  # fmt: skip


def test_ema_and_augmented_run_resumes_to_the_same_result(synthetic_root, tmp_path, monkeypatch):
    """The averaged weights and the augmentation's random stream survive an interruption."""
    import ecgcnn.train as train_module

    settings = {"ema_decay": 0.9, "mixup_alpha": 0.2, "lead_dropout": 0.1, "scale_std": 0.1,
                "wander_mv": 0.1, "label_smoothing": 0.1}  # fmt: skip
    straight = train(_benchmark_cfg(synthetic_root, tmp_path / "straight", **settings))
    plain = train(_benchmark_cfg(synthetic_root, tmp_path / "plain"))
    # the EMA weights are the ones scored: another model than the last step's
    assert (
        straight["folds"]["benchmark"]["roc_auc_macro"]
        != plain["folds"]["benchmark"]["roc_auc_macro"]
    )

    calls = {"n": 0}
    real = train_module.compute_metrics

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # validation of epoch 3: epochs 1-2 are in state.pt
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    cfg = _benchmark_cfg(synthetic_root, tmp_path / "resumed", **settings)
    monkeypatch.setattr(train_module, "compute_metrics", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(train_module, "compute_metrics", real)
    assert (
        torch.load(tmp_path / "resumed" / "benchmark" / "state.pt", weights_only=True)["epoch"] == 2
    )
    train(cfg, resume=True)
    for split in ("val", "test"):
        a = np.load(tmp_path / "straight" / "benchmark" / f"predictions_{split}.npz")
        b = np.load(tmp_path / "resumed" / "benchmark" / f"predictions_{split}.npz")
        np.testing.assert_allclose(a["y_prob"], b["y_prob"], atol=1e-6)
    config = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert config["recipe"]["ema_decay"] == 0.9 and config["recipe"]["mixup_alpha"] == 0.2
    assert config["recipe"]["label_smoothing"] == 0.1


def test_aux_task_trains_extra_outputs_and_cuts_them_off(synthetic_root, tmp_path):
    from ecgcnn.evaluate import predict_proba
    from ecgcnn.labels import Labels, make_labels
    from ecgcnn.records import load_database
    from ecgcnn.train import aux_labels

    cfg = _benchmark_cfg(synthetic_root, tmp_path / "aux", aux_task="diagnostic")
    data = prepare(cfg)
    assert data.aux is not None and data.aux.task == "diagnostic"
    np.testing.assert_array_equal(data.aux.ecg_ids, data.labels.ecg_ids)
    # every superdiagnostic label comes from a diagnostic statement the record carries
    assert (data.aux.y.sum(axis=1)[data.labels.y.sum(axis=1) > 0] > 0).all()
    train(cfg)
    model = load_model(tmp_path / "aux" / "benchmark" / "checkpoint.pt")
    assert model.meta["classes"] == list(data.labels.classes)  # the task's 5, not 5 + the extras
    assert model.net.head[-1].out_features == len(data.labels.classes)
    saved = np.load(tmp_path / "aux" / "benchmark" / "predictions_test.npz")
    rows = data.signals.rows(saved["ecg_ids"])
    again = predict_proba(model, data.signals.data, rows, window=250, stride=125, aggregate="max")
    np.testing.assert_allclose(again, saved["y_prob"], atol=1e-5)
    config = json.loads((tmp_path / "aux" / "config.json").read_text())
    assert config["recipe"]["aux_task"] == "diagnostic"
    # a record without a label in the auxiliary task gets a row of zeros
    db = load_database(synthetic_root)
    some = make_labels(db, "superdiagnostic")
    ids = np.array([some.ecg_ids[0], 10**9])  # the second is in no task
    aux = aux_labels(db, "rhythm", Labels("superdiagnostic", some.classes, ids, some.y[[0, 0]]))
    assert aux.y.shape == (2, len(aux.classes))
    assert aux.y[0].sum() > 0 and aux.y[1].sum() == 0


def test_unknown_aux_task_is_refused(synthetic_root, tmp_path):
    with pytest.raises(EcgcnnError, match="unknown task 'diag'"):
        train(_benchmark_cfg(synthetic_root, tmp_path / "x", aux_task="diag"))
    with pytest.raises(EcgcnnError, match="--aux-task superdiagnostic is the task itself"):
        train(_benchmark_cfg(synthetic_root, tmp_path / "x", aux_task="superdiagnostic"))
    assert not (tmp_path / "x").exists()


def test_task_and_aux_loss_weighs_each_part_as_a_mean_of_its_own_outputs():
    from ecgcnn.train import TaskAndAuxLoss

    torch.manual_seed(0)
    logits, y = torch.randn(6, 12), (torch.rand(6, 12) > 0.5).float()
    loss = TaskAndAuxLoss(torch.nn.BCEWithLogitsLoss(), 2)(logits, y)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(logits[:, :2], y[:, :2]) + bce(logits[:, 2:], y[:, 2:])
    torch.testing.assert_close(loss, expected)


def test_a_recipe_with_an_unknown_setting_is_a_clear_error(synthetic_root, tmp_path):
    from ecgcnn.train import resume_config

    cfg = config(synthetic_root, tmp_path / "r", only_fold=0, epochs=1)
    train(cfg)
    path = tmp_path / "r" / "config.json"
    saved = json.loads(path.read_text())
    saved["recipe"]["warp"] = 0.3
    path.write_text(json.dumps(saved))
    with pytest.raises(EcgcnnError, match="recipe has unknown setting\\(s\\) warp"):
        resume_config(tmp_path / "r")
    with pytest.raises(EcgcnnError, match="recipe has unknown setting\\(s\\) warp"):
        train(cfg, resume=True)


def test_a_run_from_before_new_recipe_settings_still_resumes(synthetic_root, tmp_path):
    """config.json written before a recipe setting existed: the setting had its default."""
    cfg = config(synthetic_root, tmp_path / "old", only_fold=0, epochs=1)
    train(cfg)
    path = tmp_path / "old" / "config.json"
    saved = json.loads(path.read_text())
    for name in ("mixup_alpha", "ema_decay", "aux_task"):
        del saved["recipe"][name]
    path.write_text(json.dumps(saved))
    train(cfg, resume=True)  # not refused as "other settings"
    with pytest.raises(EcgcnnError, match="recipe.mixup_alpha: 0.0 there, 0.2 now"):
        train(dataclasses.replace(cfg, recipe=cfg.recipe.with_overrides(mixup_alpha=0.2)))


def test_class_weight_warnings_say_what_happened(caplog):
    """A class without positives is not 'clamped' (its weight does nothing); one with a weight over
    the cap is, and says from what."""
    import logging

    from ecgcnn.train import class_weights

    y = np.zeros((300, 3))
    y[:100, 0] = 1  # weight 2
    y[:2, 1] = 1  # weight 149: clamped to 100
    with caplog.at_level(logging.WARNING):
        w = class_weights(y, ("A", "B", "C"), 100.0)
    assert w.tolist()[:2] == pytest.approx([2.0, 100.0])
    messages = [r.getMessage() for r in caplog.records]
    assert any("C: no positives in the training fold" in m for m in messages), messages
    assert any("B (pos_weight 149)" in m and "clamped to 100" in m for m in messages), messages
    assert not any(" A" in m for m in messages)


def test_an_unusable_device_or_weight_decay_is_refused_before_any_work(synthetic_root, tmp_path):
    with pytest.raises(EcgcnnError, match="--device 'nope': expected auto, cpu, cuda"):
        train(config(synthetic_root, tmp_path / "x", device="nope"))
    with pytest.raises(EcgcnnError, match="weight decay must be a number >= 0, got -1"):
        train(dataclasses.replace(config(synthetic_root, tmp_path / "x"),
                                  recipe=get_recipe("seed").with_overrides(weight_decay=-1.0)))  # fmt: skip
    assert not (tmp_path / "x").exists()
