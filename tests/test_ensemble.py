"""Ensembles (``--members K``): K networks trained from different seeds, their probabilities averaged."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from ecgcnn import load_model
from ecgcnn.errors import EcgcnnError
from ecgcnn.evaluate import predict_proba
from ecgcnn.export import export_onnx
from ecgcnn.models import Classifier, Ensemble, count_parameters, create_model
from ecgcnn.recipes import Recipe, get_recipe
from ecgcnn.train import TrainConfig, prepare, train


def test_an_ensemble_outputs_the_logit_of_its_members_mean_probability():
    torch.manual_seed(0)
    members = [nn.Linear(4, 3) for _ in range(3)]
    ensemble = Ensemble(members)
    x = torch.randn(5, 4)
    expected = torch.stack([torch.sigmoid(m(x)) for m in members]).mean(0)
    torch.testing.assert_close(torch.sigmoid(ensemble(x)), expected)
    assert count_parameters(ensemble) == 3 * count_parameters(members[0])
    # confident members: finite logits and a gradient that does not vanish
    with torch.no_grad():
        for m, bias in zip(members, (60.0, 70.0, -80.0), strict=True):
            m.weight.zero_()
            m.bias.fill_(bias)
    x.requires_grad_(True)
    out = ensemble(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(torch.sigmoid(out), torch.full_like(out, 2 / 3))
    for m in members:
        m.weight.data.normal_()
    ensemble(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_the_ensembles_log_sigmoid_matches_torchs_in_value_and_gradient():
    """Written for ONNX, it must still be log(sigmoid(x)) for saliency: the gradient too, at 0."""
    from ecgcnn.models import _logsigmoid

    x = torch.tensor([-200.0, -30.0, -1.0, 0.0, 1e-4, 2.0, 40.0, 300.0], dtype=torch.float64)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.testing.assert_close(_logsigmoid(a), torch.nn.functional.logsigmoid(b))
    _logsigmoid(a).sum().backward()
    torch.nn.functional.logsigmoid(b).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_an_ensemble_needs_a_member():
    with pytest.raises(EcgcnnError, match="at least one"):
        Ensemble([])
    with pytest.raises(EcgcnnError, match="members must be a whole number of at least 1, got 0"):
        get_recipe("benchmark").with_overrides(members=0).validate()
    for wrong in (2.0, True, "2"):  # e.g. a sweep variant's JSON
        with pytest.raises(EcgcnnError, match="members must be a whole number"):
            Recipe.from_dict({"name": "variant", "members": wrong}).validate()


def _cfg(root, out, **overrides):
    recipe = get_recipe("benchmark").with_overrides(**({"epochs": 2, "batch_size": 64} | overrides))
    return TrainConfig(data_root=str(root), out=str(out), protocol="benchmark", task="superdiagnostic",
                       val_fold=9, test_fold=10, train_folds=list(range(1, 9)), recipe=recipe,
                       progress=False)  # fmt: skip


def train_until_interrupted(cfg, monkeypatch, call: int) -> None:
    """Train ``cfg``, stopped by a KeyboardInterrupt (as Ctrl-C) at the ``call``-th validation."""
    import ecgcnn.train as train_module

    real = train_module.compute_metrics
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "compute_metrics", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(train_module, "compute_metrics", real)


@pytest.fixture(scope="module")
def runs(synthetic_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("ensemble")
    train(_cfg(synthetic_root, base / "single"))
    train(_cfg(synthetic_root, base / "pair", members=2, aggregate="mean"))
    return base


@pytest.mark.slow
def test_members_train_one_after_another_and_the_first_is_the_single_model(runs, synthetic_root):
    fold = runs / "pair" / "benchmark"
    model = load_model(fold / "checkpoint.pt")
    single = load_model(runs / "single" / "benchmark" / "checkpoint.pt")
    assert isinstance(model.net, Ensemble) and len(model.net.members) == 2
    assert model.meta["model"] == {"name": "cnn1d", "kwargs": {}, "members": 2}
    assert count_parameters(model) == 2 * count_parameters(single)
    # member 0 is trained exactly as a one-network run of the same seed; member 1 from another seed
    first, second = (m.state_dict() for m in model.net.members)
    for key, value in single.net.state_dict().items():
        torch.testing.assert_close(first[key], value)
    assert any(not torch.equal(first[k], second[k]) for k in first)
    # the saved predictions are the ensemble's (mean of the members' window-averaged probabilities)
    data = prepare(_cfg(synthetic_root, runs / "unused"))
    for split in ("val", "test"):
        saved = np.load(fold / f"predictions_{split}.npz")
        rows = data.signals.rows(saved["ecg_ids"])
        each = [
            predict_proba(Classifier(member, model.mean.flatten(), model.std.flatten()).eval(),
                          data.signals.data, rows, window=250, stride=125, aggregate="mean")
            for member in model.net.members
        ]  # fmt: skip
        np.testing.assert_allclose(saved["y_prob"], np.mean(each, axis=0), atol=1e-5)
    history = json.loads((fold / "history.json").read_text())
    assert [(h["member"], h["epoch"]) for h in history] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert sorted(p.name for p in fold.iterdir()) == [
        "checkpoint.pt", "history.json", "metrics.json", "metrics_test.json",
        "predictions_test.npz", "predictions_train.npz", "predictions_val.npz",
    ]  # fmt: skip
    config = json.loads((runs / "pair" / "config.json").read_text())
    assert config["recipe"]["members"] == 2
    assert json.loads((runs / "pair" / "cv_results.json").read_text())["members"] == 2


@pytest.mark.slow
def test_an_interrupted_ensemble_keeps_its_finished_members(
    runs, synthetic_root, tmp_path, monkeypatch, caplog
):
    cfg = _cfg(synthetic_root, tmp_path / "pair", members=2, aggregate="mean")
    # at member 1's second epoch: member 0 is finished, member 1 has epoch 1
    train_until_interrupted(cfg, monkeypatch, call=4)
    fold = tmp_path / "pair" / "benchmark"
    assert (fold / "member0.pt").is_file() and not (fold / "metrics.json").exists()
    assert not (fold / "state-member0.pt").exists()  # a finished member keeps its weights only
    assert torch.load(fold / "state-member1.pt", weights_only=True)["epoch"] == 1
    with caplog.at_level("INFO", logger="ecgcnn"):
        train(cfg, resume=True)
    assert "benchmark: member 0 of 2 finished before, not retrained" in caplog.text
    assert "benchmark: member 1 of 2 resuming after epoch 1" in caplog.text
    for split in ("val", "test"):
        a = np.load(runs / "pair" / "benchmark" / f"predictions_{split}.npz")
        b = np.load(fold / f"predictions_{split}.npz")
        np.testing.assert_allclose(a["y_prob"], b["y_prob"], atol=1e-6)
    history = json.loads((fold / "history.json").read_text())
    assert [(h["member"], h["epoch"]) for h in history] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert not list(fold.glob("member*.pt")) and not list(fold.glob("state*.pt"))


@pytest.mark.slow
def test_a_finished_fold_found_on_resume_drops_what_an_interruption_left(
    runs, synthetic_root, tmp_path
):
    """Stopped after metrics.json but before the clean-up: the resume that skips the fold removes it."""
    import shutil

    shutil.copytree(runs / "pair", tmp_path / "pair")
    fold = tmp_path / "pair" / "benchmark"
    for name in ("member0.pt", "member1.pt", "state-member1.pt"):
        (fold / name).write_bytes(b"left over")
    train(_cfg(synthetic_root, tmp_path / "pair", members=2, aggregate="mean"), resume=True)
    assert not list(fold.glob("member*.pt")) and not list(fold.glob("state*.pt"))


@pytest.mark.slow
def test_a_fresh_start_discards_the_members_of_an_interrupted_run(
    synthetic_root, tmp_path, monkeypatch
):
    import ecgcnn.train as train_module

    real = train_module.compute_metrics
    cfg = _cfg(synthetic_root, tmp_path / "pair", members=2)
    train_until_interrupted(cfg, monkeypatch, call=3)
    assert (tmp_path / "pair" / "benchmark" / "member0.pt").is_file()
    seen = []

    def counting(*args, **kwargs):
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "compute_metrics", counting)
    train(cfg)  # not --resume: both members are trained again
    assert len(seen) >= 4


@pytest.mark.slow
def test_aux_outputs_are_cut_from_every_member_also_a_finished_one(
    synthetic_root, tmp_path, monkeypatch
):
    cfg = _cfg(synthetic_root, tmp_path / "aux", members=2, aux_task="diagnostic", epochs=1)
    # at member 1's first epoch: member 0 (cut to the task's outputs) is saved
    train_until_interrupted(cfg, monkeypatch, call=2)
    train(cfg, resume=True)
    model = load_model(tmp_path / "aux" / "benchmark" / "checkpoint.pt")
    assert [m.head[-1].out_features for m in model.net.members] == [5, 5]
    assert model(torch.zeros(1, 12, 250)).shape == (1, 5)


def test_an_ensemble_exports_to_onnx_and_agrees_with_pytorch(tmp_path):
    from test_export import CLASSES, WINDOW, random_checkpoint

    one = random_checkpoint("fcn_wang", tmp_path / "one.pt")
    torch.manual_seed(1)
    other = create_model("fcn_wang", len(CLASSES)).eval()
    model = Classifier(Ensemble([one.net, other]), one.mean.flatten(), one.std.flatten()).eval()
    from ecgcnn.checkpoint import load_checkpoint, save_checkpoint

    meta = {k: v for k, v in load_checkpoint(tmp_path / "one.pt").items() if k != "state_dict"}
    meta["model"] = {"name": "fcn_wang", "kwargs": {}, "members": 2}
    save_checkpoint(tmp_path / "pair.pt", model, meta)
    loaded = load_model(tmp_path / "pair.pt")
    x = torch.randn(4, 12, WINDOW) * 0.3
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    sidecar = export_onnx(tmp_path / "pair.pt", tmp_path / "pair.onnx")
    assert sidecar["model"]["members"] == 2
    session = ort.InferenceSession(str(tmp_path / "pair.onnx"), providers=["CPUExecutionProvider"])
    logits, prob = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-expected)), atol=1e-5)


@pytest.mark.slow
def test_the_benchmark_trains_ensembles_and_counts_all_their_parameters(synthetic_root, tmp_path):
    from ecgcnn.benchmark import run_benchmark

    out = tmp_path / "bench"
    board = run_benchmark(synthetic_root, out, ["superdiagnostic"], ["cnn1d", "cnn1d@seed"], epochs=1,
                          batch_size=64, members=2, val_fold=9, test_fold=10, progress=False)  # fmt: skip
    rows = board["tasks"]["superdiagnostic"]
    one = count_parameters(create_model("cnn1d", 5))
    assert (rows["cnn1d"]["parameters"], rows["cnn1d"]["members"], rows["cnn1d"]["epochs"]) == (
        2 * one,
        2,
        1,
    )
    # an entry with its own recipe keeps it: one network, 10 epochs
    assert (rows["cnn1d@seed"]["parameters"], rows["cnn1d@seed"]["members"]) == (one, 1)
    assert rows["cnn1d@seed"]["epochs"] == 10
    assert "| cnn1d (2 members) |" in (out / "leaderboard.md").read_text()
    from test_predict import run_cli

    printed = run_cli("leaderboard", out)
    assert printed.returncode == 0 and "cnn1d (2 members)" in printed.stderr, printed.stderr
    with pytest.raises(EcgcnnError, match="other settings"):
        run_benchmark(synthetic_root, out, ["superdiagnostic"], ["cnn1d"], epochs=1, batch_size=64,
                      val_fold=9, test_fold=10, progress=False)  # fmt: skip


def test_members_on_the_command_line(synthetic_root, tmp_path):
    from test_predict import run_cli

    bad = run_cli("train", "--data-root", synthetic_root, "--out", tmp_path / "r", "--members", "0")
    assert (
        bad.returncode != 0 and "members must be a whole number of at least 1, got 0" in bad.stderr
    )
    assert not (tmp_path / "r").exists()
    assert "--members" in run_cli("benchmark", "--help").stdout


@pytest.mark.slow
def test_the_report_draws_each_members_training_and_names_the_ensemble(runs):
    from ecgcnn.report import load_run, training_curves, write_report

    run = load_run(runs / "pair")
    curves = training_curves(run.folds[0])
    assert [(label, [h["epoch"] for h in rows], best) for label, rows, best in curves] == [
        ("benchmark member 0", [1, 2], 2),
        ("benchmark member 1", [1, 2], 2),
    ]
    single = training_curves(load_run(runs / "single").folds[0])
    assert [(label, best) for label, _, best in single] == [("benchmark", 2)]
    html = write_report(runs / "pair", examples=False).read_text()
    assert "cnn1d (2 members)" in html


def test_grad_cam_of_an_ensemble_follows_every_member_not_only_the_last():
    """The last convolution of a forward pass is the last member's: Grad-CAM must look at each member's."""
    from ecgcnn.explain import _gradcam_layer, explain_signal, last_conv_layer

    torch.manual_seed(0)
    alive, dead = create_model("fcn_wang", 5).eval(), create_model("fcn_wang", 5).eval()
    with torch.no_grad():  # the second member says the same for every input: no gradient through it
        dead.head[-1].weight.zero_()
    model = Classifier(Ensemble([alive, dead]), torch.zeros(12), torch.ones(12)).eval()
    x = torch.randn(12, 1000) * 0.5
    cam = explain_signal(model, x, class_index=1, method="gradcam").attribution
    assert np.abs(cam).sum() > 0
    layer = last_conv_layer(Classifier(alive, torch.zeros(12), torch.ones(12)), x[None])
    own = _gradcam_layer(model, layer, x[None], 1)
    own = torch.nn.functional.interpolate(own, size=1000, mode="linear", align_corners=False)
    np.testing.assert_allclose(cam, own[0].expand(12, -1).numpy() / 2, rtol=1e-4, atol=1e-7)
    # an ensemble of image models has no single picture to show: input maps only, Grad-CAM refused
    pair2d = Classifier(Ensemble([create_model("cnn2d", 5), create_model("cnn2d", 5)]),
                        torch.zeros(12), torch.ones(12)).eval()  # fmt: skip
    assert explain_signal(pair2d, x, 0, method="saliency").image is None
    with pytest.raises(EcgcnnError, match="ensemble of image models"):
        explain_signal(pair2d, x, 0, method="gradcam")


@pytest.mark.slow
def test_predict_and_explain_take_an_ensemble_checkpoint(runs, synthetic_root, tmp_path):
    from ecgcnn import Predictor
    from ecgcnn.explain import explain_record

    checkpoint = runs / "pair" / "benchmark" / "checkpoint.pt"
    predictor = Predictor.load(checkpoint)
    assert predictor.describe()["members"] == 2
    saved = np.load(runs / "pair" / "benchmark" / "predictions_test.npz")
    ecg_id = int(saved["ecg_ids"][0])
    header = next(synthetic_root.rglob(f"{ecg_id:05d}_lr.hea"))
    prediction = predictor.predict_record(header, baseline="keep")  # as the benchmark scored it
    np.testing.assert_allclose(
        [prediction.probabilities[c] for c in predictor.classes], saved["y_prob"][0], atol=1e-5
    )
    for method in ("saliency", "gradcam"):
        explained = explain_record(checkpoint, tmp_path / method, data_root=synthetic_root,
                                   ecg_id=ecg_id, method=method, top=1)  # fmt: skip
        assert explained and all(p.is_file() for e in explained for p in e.paths)


def test_a_checkpoint_whose_members_do_not_fit_its_weights_is_a_clear_error(tmp_path):
    from ecgcnn.checkpoint import load_checkpoint
    from test_export import random_checkpoint

    random_checkpoint("cnn1d", tmp_path / "one.pt")
    payload = load_checkpoint(tmp_path / "one.pt")
    for members, message in (("two", "members"), (0, "members"), (2, "weights")):
        payload["model"]["members"] = members
        torch.save(payload, tmp_path / "bad.pt")
        with pytest.raises(EcgcnnError, match=message) as caught:
            load_model(tmp_path / "bad.pt")
        assert "bad.pt" in str(caught.value)


@pytest.mark.slow
def test_class_weights_are_computed_once_per_fold_not_per_member(
    synthetic_root, tmp_path, monkeypatch
):
    import ecgcnn.train as train_module

    real, calls = train_module.class_weights, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "class_weights", counted)
    train(_cfg(synthetic_root, tmp_path / "w", members=2, epochs=1, class_weighted=True))
    assert (
        len(calls) == 1
    )  # one pos_weight (and one clamping warning) for the fold's training records
