"""Attributions (captum), ECG paper and the `ecgcnn explain` command."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ecgcnn.checkpoint import load_model, save_checkpoint
from ecgcnn.errors import EcgcnnError
from ecgcnn.explain import (
    METHODS,
    explain_record,
    explain_signal,
    image_layer,
    last_conv_layer,
    lead_shares,
)
from ecgcnn.models import Classifier, create_model
from ecgcnn.paper import paper_figure, plot_paper
from ecgcnn.records import LEADS

PNG = b"\x89PNG\r\n\x1a\n"
V1_V4 = slice(LEADS.index("V1"), LEADS.index("V4") + 1)


def untrained(name: str) -> Classifier:
    torch.manual_seed(0)
    return Classifier(create_model(name, 5), torch.zeros(12), torch.full((12,), 0.2)).eval()


def ecg(seed: int = 0, samples: int = 1000) -> np.ndarray:
    from ecgcnn.synthetic import synthesize_ecg

    signal = synthesize_ecg({"ASMI": 100.0}, 100, samples / 100, np.random.default_rng(seed))
    return np.ascontiguousarray(signal.T, dtype=np.float32)


@pytest.mark.parametrize("model_name", ["cnn1d", "cnn2d"])
@pytest.mark.parametrize("method", METHODS)
def test_attributions_have_the_input_shape_and_are_finite(model_name, method):
    model, x = untrained(model_name), ecg()
    ex = explain_signal(model, x, 3, method)
    assert ex.attribution.shape == x.shape == (12, 1000)
    assert np.isfinite(ex.attribution).all()
    assert np.abs(ex.attribution).sum() > 0
    assert 0.0 < ex.probability < 1.0
    np.testing.assert_array_equal(ex.signal, x)
    if model_name == "cnn2d":  # the rendered image and a map over it
        assert ex.image.shape == ex.image_attribution.shape == (64, 256)
        assert np.isfinite(ex.image_attribution).all()
        with torch.no_grad():  # the image the network sees: rendered after standardisation
            seen = model.net.render((torch.from_numpy(x)[None] - model.mean) / model.std)
        np.testing.assert_allclose(ex.image, seen[0, 0].numpy(), rtol=1e-5, atol=1e-6)
    else:
        assert ex.image is None and ex.image_attribution is None


def test_gradcam_of_a_1d_model_is_a_time_map_shared_by_the_leads():
    ex = explain_signal(untrained("cnn1d"), ecg(), 0, "gradcam")
    assert (ex.attribution >= 0).all()  # ReLU'd, as Grad-CAM is
    np.testing.assert_allclose(ex.attribution, np.broadcast_to(ex.attribution[0], (12, 1000)))


def test_last_conv_layer_follows_the_forward_pass_not_the_definition_order():
    class Reversed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.late = nn.Conv1d(8, 4, 3, padding=1)  # defined first, runs last
            self.early = nn.Conv1d(12, 8, 3, padding=1)
            self.head = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.late(self.early(x)).mean(-1))

    net = Reversed()
    assert last_conv_layer(net, torch.zeros(1, 12, 100)) is net.late
    model = untrained("cnn2d")
    assert last_conv_layer(model) is model.net.features[8]
    assert image_layer(model) is model.net.render
    assert image_layer(untrained("cnn1d")) is None
    with pytest.raises(EcgcnnError, match="no Conv1d/Conv2d"):
        last_conv_layer(nn.Sequential(nn.Flatten(), nn.Linear(1200, 2)), torch.zeros(1, 12, 100))


def test_bad_method_and_class_are_user_errors():
    with pytest.raises(EcgcnnError, match="unknown method"):
        explain_signal(untrained("cnn1d"), ecg(), 0, "occlusion")
    with pytest.raises(EcgcnnError, match="class index 7"):
        explain_signal(untrained("cnn1d"), ecg(), 7, "saliency")


def test_lead_shares_sum_to_one():
    a = np.zeros((12, 50))
    np.testing.assert_allclose(lead_shares(a), np.full(12, 1 / 12))
    a[6:10] = -2.0
    a[0] = 1.0
    shares = lead_shares(a)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[V1_V4].sum() == pytest.approx(8 / 9)


def test_paper_drawing_validates_its_input(tmp_path):
    x = ecg()
    with pytest.raises(EcgcnnError, match="expected an ECG of shape"):
        paper_figure(x[:6], 100)
    with pytest.raises(EcgcnnError, match="missing V6"):
        paper_figure(x[:11], 100, leads=LEADS[:11])
    with pytest.raises(EcgcnnError, match="does not match"):
        paper_figure(x, 100, attribution=x[:, :10])
    path = plot_paper(x, None, 100, tmp_path / "plain.png", record="no attribution")
    assert path.read_bytes()[:8] == PNG
    short = plot_paper(x[:, :430], x[:, :430], 100, tmp_path / "short.png")  # 4.3 s of ECG
    assert short.read_bytes()[:8] == PNG


def test_a_record_shorter_than_the_page_still_shows_every_lead():
    """A windowed model explains records from 2.5 s on: in the 3 x 4 layout (2.5 s a column, one
    after another) a 3 s record once left the V1-V6 columns blank while the bar chart gave them
    most of the attribution. Each column now shows 2.5 s of its leads, the last it can."""
    x = ecg(samples=300)  # 3 s at 100 Hz
    fig = paper_figure(x, 100, attribution=np.abs(x))
    try:
        page = fig.axes[0]
        drawn = {t.get_text() for t in page.texts}
        assert {"V1", "V2", "V3", "V4", "V5", "V6", "aVR", "aVL", "aVF"} <= drawn
        # every column holds a full 2.5 s of trace (the traces are the lines of 250 points)
        assert sum(len(line.get_xdata()) == 250 for line in page.lines) == 12
        note = " ".join(t.get_text() for t in fig.texts)
        assert "columns from 0, 0.5, 0.5, 0.5 s" in note
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


# --- a checkpoint without training, for the command ---------------------------------------------


def fake_checkpoint(path: Path, name: str, **extra: object) -> Path:
    model = untrained(name)
    meta = extra | {
        "model": {"name": name, "kwargs": {}},
        "task": "top5",
        "classes": ["NORM", "NDT", "IMI", "LVH", "ASMI"],
        "leads": list(LEADS),
        "fs": 100,
        "input_length": 1000,
        "preprocess": {"mean": [0.0] * 12, "std": [0.2] * 12},
        "thresholds": [0.5] * 5,
        "threshold_source": ["fallback"] * 5,
        "metrics": {},
        "epoch": 0,
        "fold": "fold_0",
        "config": {},
    }
    save_checkpoint(path, model, meta | extra)
    return path


@pytest.mark.parametrize("aggregate", ["max", "mean"])
@pytest.mark.parametrize("method", METHODS)
def test_a_windowed_model_is_explained_with_the_probability_predict_gives(
    synthetic_root, tmp_path, aggregate, method
):
    """A benchmark-recipe checkpoint scores 2.5 s windows and aggregates them: explain must show
    (and attribute) that record probability, not one pass over the whole record."""
    from ecgcnn.predict import Predictor

    ckpt = fake_checkpoint(
        tmp_path / "w.pt", "fcn_wang", window=250, stride=125, aggregate=aggregate
    )
    record = synthetic_root / "records100" / "00000" / "00005_lr"
    predicted = Predictor.load(ckpt).predict_record(record)
    results = explain_record(ckpt, tmp_path / "out", record=record, method=method, top=5)
    for r in results:
        assert r.probability == pytest.approx(predicted.probabilities[r.class_name], abs=1e-5)
    assert all(p.read_bytes()[:8] == PNG for r in results for p in r.paths)


def test_a_windowed_model_explains_a_record_shorter_than_ten_seconds(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "w.pt", "fcn_wang", window=250, stride=125, aggregate="mean")
    np.save(
        tmp_path / "three_s.npy", ecg(samples=300).T
    )  # longer than one window: predict takes it
    for method in METHODS:
        results = explain_record(
            ckpt, tmp_path / "o", record=tmp_path / "three_s.npy", fs=100, method=method
        )
        assert results and results[0].paths[0].read_bytes()[:8] == PNG
    np.save(tmp_path / "short.npy", ecg(samples=995).T)  # 0.5% short of an unwindowed model's 10 s
    results = explain_record(fake_checkpoint(tmp_path / "c.pt", "cnn1d"), tmp_path / "o2",
                             record=tmp_path / "short.npy", fs=100)  # fmt: skip
    assert results[0].paths[0].read_bytes()[:8] == PNG


def test_a_windowed_model_explains_a_record_longer_than_ten_seconds_as_predict_scores_it(
    tmp_path, monkeypatch, caplog
):
    """`predict --every 30` flags a 30 s part, `explain --segment` shows it: a windowed model scores
    all of it there too (it once kept the first 10 s, so the two disagreed)."""
    from ecgcnn.predict import Predictor

    ckpt = fake_checkpoint(tmp_path / "w.pt", "fcn_wang", window=250, stride=125, aggregate="max")
    signal = np.concatenate([ecg(samples=1000, seed=s).T for s in (1, 2, 3)])  # 30 s, three ECGs
    np.save(tmp_path / "long.npy", signal)
    predicted = Predictor.load(ckpt).predict_record(tmp_path / "long.npy", fs=100)
    assert predicted.windows > 7
    results = explain_record(ckpt, tmp_path / "o", record=tmp_path / "long.npy", fs=100, top=5)
    for r in results:
        assert r.probability == pytest.approx(predicted.probabilities[r.class_name], abs=1e-5)
    assert all(p.read_bytes()[:8] == PNG for r in results for p in r.paths)
    # a whole Holter is bounded: the first WINDOWED_MAX_S, with a word on --segment
    from ecgcnn import explain

    monkeypatch.setattr(explain, "WINDOWED_MAX_S", 20.0)
    with caplog.at_level(logging.WARNING):
        explain_record(ckpt, tmp_path / "o", record=tmp_path / "long.npy", fs=100)
    assert "using the first 20 s of 30 s (--segment START:END" in caplog.text


def test_explain_record_of_an_image_model_writes_paper_and_image(synthetic_root, tmp_path):
    ckpt = fake_checkpoint(tmp_path / "cnn2d.pt", "cnn2d")
    results = explain_record(ckpt, tmp_path / "out", data_root=synthetic_root, ecg_id=3,
                             method="integrated-gradients", class_name="IMI")  # fmt: skip
    assert [r.class_name for r in results] == ["IMI"]
    names = sorted(p.name for p in results[0].paths)
    assert names == ["ecg3_IMI_integrated-gradients.png", "ecg3_IMI_integrated-gradients_image.png"]
    assert all(p.read_bytes()[:8] == PNG for p in results[0].paths)


def test_explain_record_input_errors(synthetic_root, tmp_path):
    ckpt = fake_checkpoint(tmp_path / "cnn1d.pt", "cnn1d")
    record = synthetic_root / "records100" / "00000" / "00005_lr"
    with pytest.raises(EcgcnnError, match="not both"):
        explain_record(ckpt, tmp_path, record=record, class_name="LVH", top=2)
    with pytest.raises(EcgcnnError, match="--top must be between 1 and 5"):
        explain_record(ckpt, tmp_path, record=record, top=6)
    with pytest.raises(EcgcnnError, match="give either --record PATH or --data-root"):
        explain_record(ckpt, tmp_path)
    with pytest.raises(EcgcnnError, match="--data-root needs --ecg-id"):
        explain_record(ckpt, tmp_path, data_root=synthetic_root)
    with pytest.raises(EcgcnnError, match="not found"):
        explain_record(ckpt, tmp_path, record=tmp_path / "nope.hea")
    np.save(tmp_path / "ecg.npy", ecg().T)
    with pytest.raises(EcgcnnError, match="--fs"):
        explain_record(ckpt, tmp_path, record=tmp_path / "ecg.npy")
    with pytest.raises(EcgcnnError, match="unknown method"):
        explain_record(ckpt, tmp_path, record=record, method="lime")


def test_explain_refuses_a_directory_as_its_record(tmp_path, monkeypatch):
    """`--record .` once ended in a ValueError traceback (Path('.').with_name), and another folder
    in 'unsupported file type (none)': explain takes one recording, predict reads folders."""
    ckpt = fake_checkpoint(tmp_path / "cnn1d.pt", "cnn1d")
    folder = tmp_path / "ecgs"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for record in (Path("."), folder):
        with pytest.raises(EcgcnnError, match=r"a directory, not a recording file"):
            explain_record(ckpt, tmp_path / "o", record=record)


def test_explain_record_resamples_and_checks_the_length(synthetic_root, tmp_path, caplog):
    ckpt = fake_checkpoint(tmp_path / "cnn1d.pt", "cnn1d")
    payload = torch.load(ckpt, weights_only=True)
    payload["fs"] = 500
    torch.save(payload, tmp_path / "500.pt")
    record = synthetic_root / "records100" / "00000" / "00001_lr"
    results = explain_record(tmp_path / "500.pt", tmp_path / "o", record=record)
    assert "resampled from 100 Hz to the model's 500 Hz" in caplog.text
    assert "using the first 2 s of 10 s" in caplog.text  # 1000 samples at 500 Hz
    assert results[0].paths[0].name.startswith("00001_lr_")
    payload["fs"], payload["input_length"] = 100, 5000
    torch.save(payload, tmp_path / "long.pt")
    with pytest.raises(EcgcnnError, match="holds 10 s at 100 Hz; the model expects 50 s"):
        explain_record(tmp_path / "long.pt", tmp_path / "o", data_root=synthetic_root, ecg_id=1)
    with pytest.raises(EcgcnnError, match="ecg_id 99999 is not in"):
        explain_record(ckpt, tmp_path / "o", data_root=synthetic_root, ecg_id=99999)
    # fewer samples than leads: too short, not an array to transpose
    np.save(tmp_path / "short.npy", np.random.default_rng(0).normal(0, 0.1, (5, 12)))
    with pytest.raises(EcgcnnError, match=r"short holds 0\.05 s at 100 Hz; the model expects 10 s"):
        explain_record(ckpt, tmp_path / "o", record=tmp_path / "short.npy", fs=100)


# --- the sanity check: a trained model looks where the class signal is ---------------------------


@pytest.fixture(scope="module")
def asmi_run(tmp_path_factory):
    """cnn1d, 2-fold CV with a fixed seed, on synthetic PTB-XL whose ASMI changes V1-V4 and nothing else.

    Training adds 0.5 mV of Gaussian noise to the inputs: input noise is a penalty on the input
    gradient (Bishop 1995), which pins down the model's sensitivity to leads without class signal;
    the 12 leads are nearly linear combinations of each other, so nothing else does. With the seed
    recipe's 0.02 mV the share below is about uniform (0.30-0.34 over seeds).
    """
    from ecgcnn.recipes import get_recipe
    from ecgcnn.synthetic import write_synthetic_ptbxl
    from ecgcnn.train import TrainConfig, train

    base = tmp_path_factory.mktemp("asmi")
    root = write_synthetic_ptbxl(base / "ptbxl", n_patients=300, seed=0)
    recipe = get_recipe("seed").with_overrides(epochs=10, batch_size=32, noise_std=0.5)
    train(TrainConfig(data_root=str(root), out=str(base / "run"), folds=2, seed=0, recipe=recipe,
                      progress=False))  # fmt: skip
    return root, base / "run"


def share_on_v1_v4(root: Path, run: Path, method: str) -> tuple[float, int]:
    """Mean share of |attribution| for ASMI on V1-V4 over every ASMI record, each by its fold's model."""
    from ecgcnn.cache import load_signals
    from ecgcnn.records import load_database

    signals = load_signals(load_database(root), 100, progress=False)
    shares = []
    for fold in ("fold_0", "fold_1"):  # two models: one model's share varies with its seed
        model = load_model(run / fold / "checkpoint.pt")
        asmi = model.meta["classes"].index("ASMI")
        pred = np.load(run / fold / "predictions_val.npz")
        ids = pred["ecg_ids"][pred["y_true"][:, asmi] == 1]
        for row in signals.rows(ids):
            attribution = explain_signal(model, signals.data[row], asmi, method).attribution
            shares.append(lead_shares(attribution)[V1_V4].sum())
    return float(np.mean(shares)), len(shares)


@pytest.mark.slow
def test_attribution_sits_on_the_leads_that_carry_the_class(asmi_run):
    share, records = share_on_v1_v4(*asmi_run, "saliency")
    ig_share, _ = share_on_v1_v4(*asmi_run, "integrated-gradients")
    print(f"share of |attribution| for ASMI on V1-V4 over {records} ASMI records: saliency "
          f"{share:.3f}, integrated gradients {ig_share:.3f} (uniform: 0.333)")  # fmt: skip
    assert records >= 60
    # Over seeds 0-3 one model gives 0.37-0.47; two folds average it out. Uniform is 4/12.
    assert share > 0.40


# --- the command --------------------------------------------------------------------------------


def ecgcnn(*args):
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "ecgcnn", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip


def assert_one_line_error(proc, pattern):
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and pattern in lines[0], proc.stderr


@pytest.mark.slow
def test_explain_command(synthetic_root, tmp_path):
    ckpt = fake_checkpoint(tmp_path / "cnn1d.pt", "cnn1d")
    proc = ecgcnn("explain", "--checkpoint", ckpt, "--data-root", synthetic_root, "--ecg-id", 5,
                  "--method", "gradcam", "--top", 2, "--out", tmp_path / "out")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    paths = [Path(line) for line in proc.stdout.splitlines()]
    assert len(paths) == 2 and all(p.parent == tmp_path / "out" for p in paths)
    assert all(p.name.startswith("ecg5_") and p.name.endswith("_gradcam.png") for p in paths)
    assert all(p.read_bytes()[:8] == PNG for p in paths)
    assert "probability" in proc.stderr  # the summary table

    record = synthetic_root / "records100" / "00000" / "00005_lr.hea"
    proc = ecgcnn("explain", "--checkpoint", ckpt, "--record", record, "--class", "LVH",
                  "--out", tmp_path / "rec")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / "rec" / "00005_lr_LVH_saliency.png")]

    assert_one_line_error(
        ecgcnn("explain", "--checkpoint", ckpt, "--record", record, "--class", "XYZ", "--out", tmp_path),
        "class 'XYZ' is not one of the model's: NORM, NDT, IMI, LVH, ASMI",
    )  # fmt: skip
    np.save(tmp_path / "ecg.npy", ecg().T)  # (samples, leads) in mV, no header: needs --fs
    proc = ecgcnn("explain", "--checkpoint", ckpt, "--record", tmp_path / "ecg.npy", "--fs", 100,
                  "--out", tmp_path / "npy")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).name.startswith("ecg_")


@pytest.mark.parametrize("method", METHODS)
def test_windowed_attributions_cover_the_whole_record(method):
    model, x = untrained("fcn_wang"), ecg()
    ex = explain_signal(model, x, 2, method, window=250, stride=125, aggregate="max")
    assert ex.attribution.shape == x.shape and np.isfinite(ex.attribution).all()
    with torch.no_grad():  # the probability is the max over the 7 windows' probabilities
        from ecgcnn.windows import sliding_windows

        windows = sliding_windows(torch.from_numpy(x)[None], 250, 125)[0]
        assert ex.probability == pytest.approx(
            float(torch.sigmoid(model(windows))[:, 2].max()), abs=1e-6
        )
    if method == "gradcam":  # a time map, shared by the leads, reaching the record's last sample
        np.testing.assert_array_equal(ex.attribution[0], ex.attribution[5])
        assert ex.attribution.shape[1] == 1000


def test_a_recording_in_microvolts_is_explained_with_units(tmp_path, ecgcnn_here):
    ckpt = fake_checkpoint(tmp_path / "c.pt", "cnn1d")
    np.save(tmp_path / "uv.npy", ecg().T * 1000)  # the same ECG in microvolts
    args = ("explain", "--checkpoint", ckpt, "--record", tmp_path / "uv.npy", "--fs", 100)
    refused = ecgcnn_here(*args, "--out", tmp_path / "a")
    assert refused.returncode == 1 and "--units uV" in refused.stderr
    done = ecgcnn_here(*args, "--out", tmp_path / "b", "--units", "uV")
    assert done.returncode == 0, done.stderr
    np.save(tmp_path / "mv.npy", ecg().T)
    same = explain_record(ckpt, tmp_path / "c", record=tmp_path / "mv.npy", fs=100)
    assert f"{same[0].probability:.3f}" in done.stdout + done.stderr


def test_the_title_says_time_only_when_the_map_is_the_same_on_every_lead():
    x = ecg()
    texts = {}
    for name, attribution in (("1d", np.tile(np.linspace(0, 1, 1000), (12, 1))),
                              ("2d", np.random.default_rng(0).random((12, 1000)))):  # fmt: skip
        fig = paper_figure(x, 100, attribution, record="r", class_name="IMI", probability=0.5371,
                           method="gradcam", threshold=0.5412)  # fmt: skip
        texts[name] = " ".join(t.get_text() for t in fig.texts)
    assert "time only" in texts["1d"] and "time only" not in texts["2d"]
    assert (
        "predicted probability 0.537  (below its threshold 0.541)" in texts["2d"]
    )  # not 0.54 vs 0.54


@pytest.mark.parametrize("how", ["max", "mean"])
def test_a_confident_windowed_score_keeps_its_gradient(how):
    """A probability of 1 - 1e-9 is still explained: the aggregated logit is computed in log space,
    not by clamping the probability (a clamp made a confident record's saliency all zeros)."""
    from ecgcnn.explain import WindowedScore

    class Confident(nn.Module):  # a logit of 25 + the window's mean: saturates float32 sigmoid
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 25.0 + x.mean(dim=(1, 2))[:, None] * torch.tensor([1.0, -1.0])

    x = torch.from_numpy(ecg())[None].requires_grad_(True)
    score = WindowedScore(Confident(), 250, 125, how)(x)
    from ecgcnn.windows import sliding_windows

    with torch.no_grad():  # the reference in float64, where the sigmoid does not saturate
        logits = Confident()(sliding_windows(x.detach(), 250, 125)[0]).double()
        p = torch.sigmoid(logits).amax(0) if how == "max" else torch.sigmoid(logits).mean(0)
        expected = torch.log(p) - torch.log1p(-p)
    assert torch.allclose(score[0].double(), expected, atol=1e-3)
    score[0, 0].backward()
    assert x.grad is not None and x.grad.abs().max() > 0


def test_a_dotted_record_name_gives_one_picture_per_class(tmp_path):
    """ecg.2024.01.05.npy (or a DICOM named by its UID): every class its own file, none cut at a dot
    and overwritten by the next."""
    ckpt = fake_checkpoint(tmp_path / "c.pt", "cnn1d")
    np.save(tmp_path / "ecg.2024.01.05.npy", ecg().T)
    results = explain_record(ckpt, tmp_path / "o", record=tmp_path / "ecg.2024.01.05.npy", fs=100,
                             top=3)  # fmt: skip
    paths = [p for r in results for p in r.paths]
    assert len(paths) == 3 == len(set(paths)) and all(p.is_file() for p in paths)
    assert all(p.name.startswith("ecg.2024.01.05_") for p in paths), paths


def test_explain_a_ptbxl_record_of_a_root_with_only_the_other_rate(tmp_path):
    from ecgcnn.synthetic import write_synthetic_ptbxl

    root = write_synthetic_ptbxl(tmp_path / "ptbxl", n_patients=10, seed=4, rates=(100, 500))
    ckpt = fake_checkpoint(tmp_path / "cnn1d.pt", "cnn1d")
    at100 = explain_record(ckpt, tmp_path / "a", data_root=root, ecg_id=2, class_name="NORM")
    (root / "records100").rename(tmp_path / "away")
    from500 = explain_record(ckpt, tmp_path / "b", data_root=root, ecg_id=2, class_name="NORM")
    assert abs(at100[0].probability - from500[0].probability) < 0.02
    assert from500[0].paths[0].read_bytes()[:8] == PNG


def test_the_service_explains_an_image_model_from_many_threads_at_once(tmp_path, monkeypatch):
    """The web page asks for ?explain=true: requests served at once on one image model must not
    share hooks (the image maps, which the service does not return, used to hook the shared model
    and failed other threads' requests with 'differentiated Tensor ... not used in the graph')."""
    from concurrent.futures import ThreadPoolExecutor

    from ecgcnn import explain
    from ecgcnn.predict import Predictor
    from ecgcnn.recording import Recording
    from ecgcnn.serve import explain_prediction

    p = Predictor.from_checkpoint(fake_checkpoint(tmp_path / "cnn2d.pt", "cnn2d"))

    def no_image_maps(*args: object, **kwargs: object) -> None:
        raise AssertionError("the service asked for image maps")

    monkeypatch.setattr(explain, "image_layer", no_image_maps)
    records = [
        Recording(
            f"r{i}",
            np.random.default_rng(i).normal(scale=0.3, size=(1000, 12)).astype(np.float32),
            100,
            tuple(LEADS),
        )
        for i in range(12)
    ]

    def one(rec: Recording) -> dict:
        return explain_prediction(p, rec, p.predict(rec.signal, rec.fs, rec.leads, name=rec.name))

    with ThreadPoolExecutor(6) as pool:
        maps = list(pool.map(one, records))
    alone = one(records[0])
    assert all(len(m["saliency"]) == 12 for m in maps)
    np.testing.assert_allclose(maps[0]["saliency"], alone["saliency"], atol=1e-3)


def test_explain_takes_the_missing_leads_option_its_error_suggests(tmp_path, ecgcnn_here):
    ckpt = fake_checkpoint(tmp_path / "c.pt", "cnn1d")
    six = np.delete(ecg(), [6, 7], axis=0).T  # without V1 and V2
    import pandas as pd

    pd.DataFrame(six, columns=[lead for lead in LEADS if lead not in ("V1", "V2")]).to_csv(
        tmp_path / "ten.csv", index=False
    )
    proc = ecgcnn_here("explain", "--checkpoint", ckpt, "--record", tmp_path / "ten.csv",
                       "--fs", 100, "--out", tmp_path / "o")  # fmt: skip
    assert proc.returncode != 0 and "--allow-missing-leads" in proc.stderr
    proc = ecgcnn_here("explain", "--checkpoint", ckpt, "--record", tmp_path / "ten.csv",
                       "--fs", 100, "--out", tmp_path / "o", "--allow-missing-leads")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "o").glob("*.png"))


def test_integrated_gradients_of_minutes_of_windows_is_scored_in_bounded_batches(
    tmp_path, monkeypatch
):
    """IG sends steps x windows through the model: for minutes of 2.5 s windows, tens of GB at
    once. The passes are bounded by IG_BATCH inputs, and the attribution is the same."""
    from ecgcnn import explain
    from ecgcnn.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = fake_checkpoint(tmp_path / "w.pt", "fcn_wang", window=250, stride=125, aggregate="mean")
    model = model_from_checkpoint(load_checkpoint(ckpt), str(ckpt))
    signal = np.concatenate([ecg(seed=s) for s in range(6)], axis=1)  # 60 s: 47 windows
    whole = explain_signal(model, signal, 0, "integrated-gradients", 250, 125, "mean")
    seen: list[int] = []
    original = model.forward

    def counting(x):
        seen.append(len(x))
        return original(x)

    monkeypatch.setattr(model, "forward", counting)
    monkeypatch.setattr(explain, "IG_BATCH", 100)
    bounded = explain_signal(model, signal, 0, "integrated-gradients", 250, 125, "mean")
    assert max(seen) <= 100 + 47  # at least one step's windows per pass
    np.testing.assert_allclose(bounded.attribution, whole.attribution, rtol=1e-4, atol=1e-6)


def test_a_page_of_a_long_record_shows_the_ten_seconds_with_the_most_attribution():
    """A max-aggregated windowed model attributes only its winning window: a page of the first
    10 s of a 30 s part would show no heat at all. The page shows the part that holds it."""
    from ecgcnn.paper import paper_figure

    signal = np.concatenate([ecg(seed=s) for s in range(3)], axis=1)  # 30 s
    attribution = np.zeros_like(signal)
    attribution[:, 2250:] = 1.0  # 22.5-30 s only
    fig = paper_figure(signal, 100, attribution)
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "20-30 s of 30 s drawn (the most attribution)" in notes
    fig = paper_figure(signal, 100)  # no attribution: the first 10 s
    assert "0-10 s of 30 s drawn" in " ".join(t.get_text() for t in fig.texts)
    fig = paper_figure(signal, 100, attribution, start_s=100.0)  # explain --segment 100:130
    assert "120-130 s of 100-130 s drawn" in " ".join(t.get_text() for t in fig.texts)
    fig = paper_figure(signal, 100, np.zeros_like(signal))  # none anywhere: the first, unclaimed
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "0-10 s of 30 s drawn" in notes and "most attribution" not in notes
