"""ONNX export: agreement with PyTorch for every registered model, metadata, Predictor on onnxruntime."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ecgcnn import Predictor
from ecgcnn.checkpoint import load_checkpoint, save_checkpoint
from ecgcnn.errors import EcgcnnError
from ecgcnn.export import (
    DEFAULT_OPSET,
    decode_metadata,
    export_onnx,
    onnx_metadata,
    opset_range,
    sidecar_path,
)
from ecgcnn.models import Classifier, create_model, list_models
from ecgcnn.records import LEADS
from test_predict import checkpoint, probs, run_cli  # noqa: F401  (checkpoint is a fixture)
from test_recording import ecg, write_wfdb

CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]
WINDOW = 250  # 2.5 s at 100 Hz, the benchmark recipe's window (and 4x less work than 10 s)


def random_checkpoint(name, path):
    """An untrained model with non-trivial standardisation and batch-norm statistics.

    The statistics are those of a batch of random ECG-sized input (as training would leave them),
    and the output layer is scaled to logits of a trained model's size (std 3): float32 rounding
    grows with the logits, and an untrained 100-layer net can emit logits in the hundreds.
    """
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    mean, std = torch.randn(12, generator=gen) * 0.05, torch.rand(12, generator=gen) * 0.3 + 0.1
    model = Classifier(create_model(name, len(CLASSES)), mean, std)
    calibration = torch.randn(8, 12, WINDOW, generator=gen) * 0.3
    with torch.no_grad():
        model.train()(calibration)
        model.eval()
        heads = [m for m in model.modules()
                 if isinstance(m, torch.nn.Linear) and m.out_features == len(CLASSES)]  # fmt: skip
        if heads:
            scale = 3.0 / model(calibration).std()
            heads[-1].weight *= scale
            heads[-1].bias *= scale
    meta = {
        "model": {"name": name, "kwargs": {}}, "task": "superdiagnostic", "classes": CLASSES,
        "leads": list(LEADS), "fs": 100, "input_length": WINDOW,
        "preprocess": {"mean": mean.tolist(), "std": std.tolist()},
        "thresholds": [0.1, 0.2, 0.3, 0.4, 0.5], "threshold_source": ["tuned"] * 5,
        "metrics": {}, "epoch": 3, "fold": "fold_0", "config": {},
    }  # fmt: skip
    save_checkpoint(path, model, meta)
    return model


@pytest.mark.parametrize("name", list_models())
def test_onnx_matches_pytorch_for_every_registered_model(name, tmp_path):
    model = random_checkpoint(name, tmp_path / "checkpoint.pt")
    info = export_onnx(tmp_path / "checkpoint.pt", tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the batch axis is dynamic (the export traced a batch of 2)
        x = (
            np.random.default_rng(batch)
            .normal(scale=0.5, size=(batch, 12, WINDOW))
            .astype(np.float32)
        )
        logits, prob = session.run(["logits", "probabilities"], {"ecg": x})
        with torch.inference_mode():
            want = model(torch.from_numpy(x)).numpy()
        assert logits.shape == (batch, len(CLASSES))
        assert np.abs(logits - want).max() < 1e-4, name
        np.testing.assert_allclose(prob, 1 / (1 + np.exp(-want)), atol=1e-5)
    assert info["max_abs_diff_vs_pytorch"] < 1e-4


def test_an_ensemble_of_confident_members_exports_exact_logits(tmp_path):
    """The ensemble's log-space mean must survive ONNX: logits far beyond +-17 (a confident
    member) once came back as +-inf from onnxruntime, so such ensembles could not be exported."""
    from ecgcnn.models import Ensemble

    class Fixed(torch.nn.Module):  # a member whose logits are its input's first samples, scaled
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 0, :5] * self.scale

    ensemble = Ensemble([Fixed(1.0), Fixed(1.5)]).eval()
    x = torch.tensor([[-120.0, -30.0, -17.0, 17.0, 30.0]]).repeat(12, 1)[None]
    buf = tmp_path / "e.onnx"
    torch.onnx.export(ensemble, (x,), str(buf), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)  # fmt: skip
    got = ort.InferenceSession(str(buf), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()}
    )[0]
    with torch.no_grad():
        want = ensemble(x).numpy()
    assert np.isfinite(want).all() and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_metadata_travels_in_the_onnx_file_and_the_sidecar(tmp_path):
    random_checkpoint("cnn1d", tmp_path / "checkpoint.pt")
    export_onnx(tmp_path / "checkpoint.pt", tmp_path / "model.onnx")
    proto = onnx.load(str(tmp_path / "model.onnx"))
    embedded = decode_metadata({p.key: p.value for p in proto.metadata_props}, "model.onnx")
    meta = load_checkpoint(tmp_path / "checkpoint.pt")
    assert embedded == onnx_metadata(meta)
    assert embedded["classes"] == CLASSES and embedded["fs"] == 100 and embedded["window"] == WINDOW
    assert embedded["thresholds"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert embedded["preprocess"]["mean"] == pytest.approx(meta["preprocess"]["mean"])
    assert embedded["preprocess"]["in_graph"] is True
    assert embedded["model"]["name"] == "cnn1d" and embedded["task"] == "superdiagnostic"
    assert embedded["version"] == meta["version"]
    sidecar = json.loads(sidecar_path(tmp_path / "model.onnx").read_text())
    assert {k: sidecar[k] for k in embedded} == embedded
    assert sidecar["onnx_file"] == "model.onnx" and len(sidecar["sha256"]) == 64
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 12, WINDOW]


def retrained_as(path, out, **meta):
    """The checkpoint at ``path`` saved again at ``out`` with these metadata (e.g. its baseline)."""
    from ecgcnn.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(path))
    kept = {k: v for k, v in model.meta.items() if k not in ("format", "version")}
    save_checkpoint(out, model, kept | meta)
    return out


@pytest.mark.parametrize(("trained", "default"), [("keep", "highpass"), ("median", "median")])
def test_the_export_says_how_predict_treats_a_recording_s_baseline(trained, default, tmp_path):
    """predict, serve and Predictor high-pass filter recordings for a model that learnt records as
    recorded: an ONNX user must be told so, by the metadata and the graph's description."""
    random_checkpoint("cnn1d", tmp_path / "keep.pt")
    ckpt = retrained_as(tmp_path / "keep.pt", tmp_path / f"{trained}.pt", baseline=trained)
    sidecar = export_onnx(ckpt, tmp_path / "model.onnx")
    proto = onnx.load(str(tmp_path / "model.onnx"))
    embedded = decode_metadata({p.key: p.value for p in proto.metadata_props}, "model.onnx")
    assert embedded["baseline"] == trained and embedded["default_baseline"] == default
    assert sidecar["default_baseline"] == default
    assert (
        json.loads(sidecar_path(tmp_path / "model.onnx").read_text())["default_baseline"] == default
    )
    assert Predictor.from_onnx(tmp_path / "model.onnx").default_baseline == default
    assert Predictor.from_checkpoint(ckpt).default_baseline == default
    doc = proto.doc_string
    assert "raw" not in doc and "millivolts at 100 Hz" in doc
    treated = {"highpass": "high-pass filtered below 0.5 Hz", "median": "median subtracted"}[
        default
    ]
    assert treated in doc and f'remove_baseline(x, fs, "{default}")' in doc
    assert "windows 125 samples apart, the last aligned to the record's end" in doc
    assert "aggregated by max" in doc


def test_predictor_from_onnx_agrees_with_the_checkpoint(checkpoint, tmp_path):  # noqa: F811
    export_onnx(checkpoint, tmp_path / "model.onnx")
    torch_p = Predictor.from_checkpoint(checkpoint)
    onnx_p = Predictor.from_onnx(tmp_path / "model.onnx")
    assert onnx_p.backend == "onnxruntime" and torch_p.backend == "pytorch"
    assert (onnx_p.classes, onnx_p.fs, onnx_p.window, onnx_p.leads) == (
        torch_p.classes, torch_p.fs, torch_p.window, torch_p.leads)  # fmt: skip
    np.testing.assert_allclose(onnx_p.thresholds, torch_p.thresholds)
    for seed in range(6):
        sig = ecg(seconds=15, seed=50 + seed, statements=[["NORM"], ["IMI"], ["LVH"]][seed % 3])
        a, b = torch_p.predict(sig, fs=100), onnx_p.predict(sig, fs=100)
        assert a.labels == b.labels
        assert np.abs(probs(a) - probs(b)).max() < 1e-5
    assert Predictor.load(tmp_path / "model.onnx").backend == "onnxruntime"


def test_onnx_predict_windows_checks_shapes_before_onnxruntime(tmp_path):
    random_checkpoint("cnn1d", tmp_path / "checkpoint.pt")
    export_onnx(tmp_path / "checkpoint.pt", tmp_path / "model.onnx")
    onnx_p = Predictor.from_onnx(tmp_path / "model.onnx")
    torch_p = Predictor.from_checkpoint(tmp_path / "checkpoint.pt")
    x = np.random.default_rng(0).normal(scale=0.5, size=(3, 12, WINDOW)).astype(np.float32)
    np.testing.assert_allclose(onnx_p.predict_windows(x), torch_p.predict_windows(x), atol=1e-5)
    for bad in (x[:, :, :-1], x[0], x[:, :6], np.where(x > 1, np.nan, x)):
        errors = []
        for p in (onnx_p, torch_p):
            with pytest.raises(EcgcnnError) as exc:
                p.predict_windows(bad)
            errors.append(str(exc.value))
        assert errors[0] == errors[1] and "\n" not in errors[0]  # not onnxruntime's own error


def test_sidecar_only_and_foreign_onnx_files(tmp_path):
    random_checkpoint("cnn1d", tmp_path / "checkpoint.pt")
    export_onnx(tmp_path / "checkpoint.pt", tmp_path / "model.onnx")
    proto = onnx.load(str(tmp_path / "model.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(EcgcnnError, match="not an ecgcnn ONNX export"):
        Predictor.from_onnx(tmp_path / "bare.onnx")
    sidecar_path(tmp_path / "bare.onnx").write_text(
        sidecar_path(tmp_path / "model.onnx").read_text()
    )
    assert Predictor.from_onnx(tmp_path / "bare.onnx").classes == CLASSES
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(EcgcnnError, match="nor a loadable ONNX model"):
        Predictor.from_onnx(tmp_path / "junk.onnx")


def test_load_model_puts_the_model_on_map_location(tmp_path, monkeypatch):
    """The network is built on the CPU; the model must end on the device asked for, not only the
    tensors read from the file (no GPU here: CUDA is pretended, and the move recorded)."""
    from ecgcnn.checkpoint import load_model

    random_checkpoint("cnn1d", tmp_path / "checkpoint.pt")
    real_load, loaded_to, moved_to = torch.load, [], []

    def load(f, map_location=None, weights_only=False):
        loaded_to.append(map_location)
        return real_load(f, map_location="cpu", weights_only=weights_only)

    def to(self, *args, **kwargs):
        moved_to.append(args[0] if args else kwargs["device"])
        return self

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch, "load", load)
    monkeypatch.setattr(Classifier, "to", to)
    model = load_model(tmp_path / "checkpoint.pt", map_location="cuda")
    assert isinstance(model, Classifier) and not model.training
    assert loaded_to == [torch.device("cuda")] and moved_to == [torch.device("cuda")]
    load_model(tmp_path / "checkpoint.pt", map_location="auto")  # cuda where there is one
    assert moved_to[-1] == torch.device("cuda")


def test_cuda_asked_of_a_machine_without_it_is_said_so_not_blamed_on_the_file(
    tmp_path, monkeypatch
):
    from ecgcnn.checkpoint import load_model, resolve_device

    random_checkpoint("cnn1d", tmp_path / "checkpoint.pt")
    path = tmp_path / "checkpoint.pt"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for call, what in (
        (lambda: load_model(path, map_location="cuda"), "map_location 'cuda'"),
        (lambda: load_checkpoint(path, map_location="cuda:0"), "map_location 'cuda:0'"),
        (lambda: load_model(path, map_location=torch.device("cuda")), "map_location 'cuda'"),
        (lambda: Predictor.from_checkpoint(path, device="cuda"), "device 'cuda'"),
        (lambda: Predictor.load(path, device="cuda"), "device 'cuda'"),
    ):
        with pytest.raises(EcgcnnError, match="CUDA is not available") as exc:
            call()
        message = str(exc.value)
        assert message.startswith(what) and "\n" not in message, message
        assert "not a loadable" not in message and "cpu" in message
    auto = Predictor.from_checkpoint(path, device="auto")  # cpu here
    assert {p.device.type for p in auto.model.parameters()} == {"cpu"}
    x = np.zeros((1, 12, WINDOW), np.float32)
    np.testing.assert_allclose(
        auto.predict_windows(x), Predictor.from_checkpoint(path).predict_windows(x)
    )
    assert load_model(path, map_location="auto").mean.device.type == "cpu"
    with pytest.raises(
        EcgcnnError, match="device 'gpu': expected auto, cpu, cuda or cuda:N"
    ) as exc:
        Predictor.from_checkpoint(path, device="gpu")
    assert "\n" not in str(exc.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(
        EcgcnnError, match="device 'cuda:2': no such GPU \\(2 visible: cuda:0 to cuda:1\\)"
    ):
        resolve_device("cuda:2")


class Arbitrary:  # an object only a full (unsafe) unpickling would build
    pass


class Evil:  # the classic: unpickling it would run a shell command
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickled_object_checkpoint_is_refused_without_advice_to_load_it_unsafely(tmp_path):
    for name, obj in (("object", Arbitrary()), ("evil", Evil())):
        torch.save({"format": "ecgcnn-checkpoint/2", "x": obj}, tmp_path / f"{name}.pt")
        with pytest.raises(EcgcnnError, match="Python objects beyond tensors") as exc:
            load_checkpoint(tmp_path / f"{name}.pt")
        message = str(exc.value)
        assert "weights_only" not in message and "trust" not in message and "\x1b" not in message
    # a damaged pickle stream is not called one of objects
    import zipfile

    random_checkpoint("cnn1d", tmp_path / "good.pt")
    with (
        zipfile.ZipFile(tmp_path / "good.pt") as src,
        zipfile.ZipFile(tmp_path / "bad.pt", "w") as dst,
    ):
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"\x80\x02garbage" if item.filename.endswith("data.pkl") else data)
    with pytest.raises(EcgcnnError, match="damaged") as exc:
        load_checkpoint(tmp_path / "bad.pt")
    assert "Python objects" not in str(exc.value) and "weights_only" not in str(exc.value)


def test_a_model_is_told_from_a_checkpoint_by_its_content_not_its_name(tmp_path):
    from ecgcnn.checkpoint import load_checkpoint

    random_checkpoint("cnn1d", tmp_path / "checkpoint.pt")
    export_onnx(tmp_path / "checkpoint.pt", tmp_path / "model")  # --out without .onnx
    assert Predictor.load(tmp_path / "model").backend == "onnxruntime"
    with pytest.raises(
        EcgcnnError, match="looks like an ONNX model, which predict and serve take"
    ) as exc:
        load_checkpoint(tmp_path / "model")  # what explain, evaluate and export read
    assert "\n" not in str(exc.value) and "weights_only" not in str(exc.value)
    with pytest.raises(
        EcgcnnError, match=r"--out .* is a folder; give the model's file name, e\.g\. .*model\.onnx"
    ):
        export_onnx(tmp_path / "checkpoint.pt", tmp_path)
    sidecar = sidecar_path(tmp_path / "model")
    assert sidecar.is_file()
    with pytest.raises(
        EcgcnnError, match="neither an ecgcnn checkpoint.*nor a loadable ONNX model"
    ) as exc:
        Predictor.load(sidecar)  # the JSON beside the model, passed by mistake
    assert "\n" not in str(exc.value)


def test_pytorch_prediction_never_imports_onnxruntime(checkpoint, tmp_path):  # noqa: F811
    write_wfdb(tmp_path / "rec", ecg())
    code = (
        "import sys, ecgcnn\n"
        f"p = ecgcnn.Predictor.from_checkpoint({str(checkpoint)!r})\n"
        f"p.predict_record({str(tmp_path / 'rec')!r})\n"
        "print('onnxruntime' in sys.modules, 'onnx' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_cli_export_then_predict_with_onnx(checkpoint, tmp_path):  # noqa: F811
    proc = run_cli(
        "export", "--checkpoint", checkpoint, "--format", "onnx", "--out", tmp_path / "m.onnx"
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m.onnx.json").is_file()
    write_wfdb(tmp_path / "rec", ecg(seed=60))
    proc = run_cli(
        "predict", "--checkpoint", tmp_path / "m.onnx", tmp_path / "rec", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"]["backend"] == "onnxruntime" and len(out["predictions"]) == 1
    want = Predictor.from_checkpoint(checkpoint).predict_record(tmp_path / "rec")
    got = out["predictions"][0]
    assert got["labels"] == want.labels
    assert max(abs(got["probabilities"][c] - v) for c, v in want.probabilities.items()) < 1e-5
    proc = run_cli(
        "export", "--checkpoint", checkpoint, "--format", "tflite", "--out", tmp_path / "m.tfl"
    )
    assert proc.returncode == 1 and "error: unknown export format 'tflite'" in proc.stderr


def test_an_opset_torch_cannot_write_is_refused_before_the_checkpoint_is_read(tmp_path, capfd):
    lo, hi = opset_range()
    assert lo <= DEFAULT_OPSET <= hi and (lo, hi) == (7, 20)  # torch 2.x's TorchScript exporter
    random_checkpoint("cnn1d", tmp_path / "checkpoint.pt")
    for opset in (lo - 1, hi + 1, 30):
        for source in (tmp_path / "checkpoint.pt", tmp_path / "missing.pt"):
            with pytest.raises(EcgcnnError) as exc:
                export_onnx(source, tmp_path / "model.onnx", opset)
            assert str(exc.value) == (
                f"--opset {opset}: this PyTorch ({torch.__version__}) exports ONNX opsets {lo} "
                f"to {hi}; the default, {DEFAULT_OPSET}, exports every ecgcnn model"
            )
    assert not (tmp_path / "model.onnx").exists()
    assert capfd.readouterr().out == ""


@pytest.mark.slow
def test_cli_export_at_an_opset_that_fails_is_one_line_without_torch_s_graph(tmp_path):
    random_checkpoint("cnn1d", tmp_path / "cnn1d.pt")
    random_checkpoint("cnn2d", tmp_path / "cnn2d.pt")  # its rendering needs opset 13
    for name, opset, want in (
        ("cnn1d", 30, "error: --opset 30: this PyTorch"),
        ("cnn2d", 11, "error: ONNX export of model 'cnn2d' at opset 11 failed (SymbolicValueError: "
                      "Unsupported: ONNX export of repeat_interleave in opset 9."),
    ):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "ecgcnn", "export", "--checkpoint", str(tmp_path / f"{name}.pt"),
             "--out", str(tmp_path / "m.onnx"), "--opset", str(opset)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 1 and proc.stdout == "", proc.stdout[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(want), proc.stderr[-3000:]
        assert f"the default, --opset {DEFAULT_OPSET}" in lines[0] or opset > 20
        assert "Caused by" not in lines[0] and len(lines[0]) < 400
        assert not (tmp_path / "m.onnx").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "ecgcnn", "export", "--checkpoint", str(tmp_path / "cnn2d.pt"),
         "--out", str(tmp_path / "m.onnx"), "--opset", "13"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "wrote " in proc.stderr and (tmp_path / "m.onnx").is_file()
