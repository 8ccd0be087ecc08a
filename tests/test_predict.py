"""Prediction: windows, the Predictor API on every input format, batches with bad records, the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import ecgcnn.predict
from ecgcnn import Prediction, Predictor
from ecgcnn.errors import EcgcnnError, RecordError
from ecgcnn.predict import BatchResult, windows
from ecgcnn.recipes import get_recipe
from ecgcnn.records import LEADS
from ecgcnn.train import TrainConfig, train
from test_recording import ecg, write_cinc_mat, write_wfdb

# Probabilities of the same ECG reached by two routes (500 Hz resampled here vs the 100 Hz file)
# differ only by 16-bit storage (<= 0.5 µV per sample and file) after the same anti-aliasing
# filter: measured ~4e-6 with the one-epoch test model. 1e-3 leaves a 250x margin, and still fails
# for plain decimation without the low-pass (~1.4e-3 here), a wrong rate or a wrong unit (far off).
ROUTE_TOLERANCE = 1e-3


@pytest.fixture(scope="session")
def checkpoint(synthetic_root, tmp_path_factory):
    """A one-epoch cnn1d on the synthetic root, trained once per session (test_export reuses it)."""
    out = tmp_path_factory.getbasetemp() / "predict-checkpoint"
    if (out / "fold_0" / "checkpoint.pt").is_file():
        return out / "fold_0" / "checkpoint.pt"
    train(TrainConfig(data_root=str(synthetic_root), out=str(out), folds=2, only_fold=0, progress=False,
                      recipe=get_recipe("seed").with_overrides(epochs=1, batch_size=32)))  # fmt: skip
    return out / "fold_0" / "checkpoint.pt"


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor.from_checkpoint(checkpoint)


def probs(prediction):
    return np.array(list(prediction.probabilities.values()))


# --- windows ---------------------------------------------------------------------------------------


def test_windows_cover_the_record_and_align_the_last_to_its_end():
    x = np.arange(2 * 2500, dtype=np.float32).reshape(2, 2500)
    w = windows(x, 1000, 500)
    assert w.shape == (4, 2, 1000) and w.dtype == np.float32
    assert [int(v[0, 0]) for v in w] == [0, 500, 1000, 1500]
    w = windows(x[:, :2300], 1000, 500)
    assert [int(v[0, 0]) for v in w] == [0, 500, 1000, 1300]  # last aligned to the end
    np.testing.assert_array_equal(w[-1], x[:, 1300:2300])
    assert windows(x[:, :1000], 1000, 500).shape == (1, 2, 1000)
    with pytest.raises(EcgcnnError):
        windows(x[:, :999], 1000, 500)


# --- formats and rates --------------------------------------------------------------------------


def test_500_hz_dat_and_mat_predict_like_the_100_hz_original(predictor, tmp_path):
    for seed, statements in ((3, ["IMI"]), (4, ["ASMI", "LVH"]), (5, ["NORM"])):
        hi = ecg(fs=500, seed=seed, statements=statements)
        lo = ecg(fs=100, seed=seed, statements=statements)  # the same ECG, decimated as PTB-XL's
        write_wfdb(tmp_path / f"hr{seed}", hi, fs=500)
        write_cinc_mat(tmp_path / f"mat{seed}", hi, fs=500)
        write_wfdb(tmp_path / f"lr{seed}", lo, fs=100)
        want = predictor.predict_record(tmp_path / f"lr{seed}")
        for path in (tmp_path / f"hr{seed}.hea", tmp_path / f"mat{seed}.mat"):
            got = predictor.predict_record(path)
            assert got.fs == 500 and got.windows == 1 and got.warnings == []
            assert np.abs(probs(got) - probs(want)).max() < ROUTE_TOLERANCE, path


def test_csv_npy_and_arrays_match_the_wfdb_record(predictor, tmp_path):
    sig = np.round(ecg(seed=7, statements=["LVH"]), 3)
    write_wfdb(tmp_path / "rec", sig)
    want = probs(predictor.predict_record(tmp_path / "rec"))
    np.save(tmp_path / "rec.npy", sig.T)
    pd.DataFrame(sig, columns=list(LEADS)).to_csv(tmp_path / "rec.csv", index=False)
    for got in (predictor.predict_record(tmp_path / "rec.npy", fs=100),
                predictor.predict_record(tmp_path / "rec.csv", fs=100),
                predictor.predict(sig, fs=100), predictor.predict(sig.T, fs=100)):  # fmt: skip
        np.testing.assert_allclose(probs(got), want, atol=1e-6)


def test_aliased_reordered_leads_give_the_canonical_probabilities(predictor, tmp_path):
    sig = ecg(seed=8, statements=["IMI"])
    order = np.random.default_rng(0).permutation(12)
    alias = {"AVR": "aVR", "AVL": "aVL", "AVF": "aVF", "I": "Lead I", "V2": "C2"}
    names = [alias.get(LEADS[i], LEADS[i]) for i in order]
    want = probs(predictor.predict(sig, fs=100))
    got = predictor.predict(sig[:, order], fs=100, leads=names)
    np.testing.assert_allclose(probs(got), want, atol=1e-6)
    pd.DataFrame(sig[:, order], columns=names).to_csv(tmp_path / "shuffled.csv", index=False)
    np.testing.assert_allclose(
        probs(predictor.predict_record(tmp_path / "shuffled.csv", fs=100)), want, atol=1e-6
    )
    # a scrambled order without names is a different ECG: the names are what makes it right
    assert np.abs(probs(predictor.predict(sig[:, order], fs=100)) - want).max() > 1e-4


def test_prediction_result(predictor):
    p = predictor.predict(ecg(seed=9), fs=100, name="mine")
    assert isinstance(p, Prediction) and p.record == "mine"
    assert list(p.probabilities) == predictor.classes
    assert all(0.0 <= v <= 1.0 for v in p.probabilities.values())
    want = [
        c
        for c, t in zip(predictor.classes, predictor.thresholds, strict=True)
        if p.probabilities[c] >= t
    ]
    assert p.labels == want
    assert p.to_dict()["probabilities"] == p.probabilities


def test_the_baseline_is_filtered_by_default_and_kept_on_request_with_a_warning(
    predictor, tmp_path
):
    """Device exports are often not centred; the model learnt PTB-XL's centred leads."""
    sig = ecg(seed=9)
    centred = sig - np.median(sig, axis=0)
    shifted = centred + np.linspace(-1.5, 1.5, 12)  # each lead its own offset, up to 1.5 mV
    kept = predictor.predict(shifted, fs=100, baseline="keep")
    assert kept.warnings == ["lead(s) I, II, V5, V6 more than 1 mV off zero (median), kept: the model "
                             "learnt centred leads (--baseline highpass removes it)"]  # fmt: skip
    assert predictor.predict(centred, fs=100, baseline="keep").warnings == []
    base = probs(predictor.predict(centred, fs=100, baseline="keep"))
    assert np.abs(probs(kept) - base).max() > 1e-3  # the offset changes the prediction
    median = predictor.predict(shifted, fs=100, baseline="median")
    np.testing.assert_allclose(probs(median), base, atol=1e-5)
    assert median.warnings == []
    default = predictor.predict(shifted, fs=100)
    assert default.warnings == []
    np.testing.assert_allclose(probs(default), probs(predictor.predict(centred, fs=100)), atol=1e-5)
    np.testing.assert_allclose(
        probs(default), probs(predictor.predict(shifted, fs=100, baseline="highpass"))
    )
    np.save(tmp_path / "shifted.npy", shifted)
    batch = predictor.predict_paths([tmp_path / "shifted.npy"], fs=100, baseline="median")
    np.testing.assert_allclose(probs(batch.predictions[0]), base, atol=1e-5)
    with pytest.raises(
        EcgcnnError, match="--baseline 'mean': expected one of keep, median, highpass"
    ):
        predictor.predict(sig, fs=100, baseline="mean")


def test_remove_baseline_takes_offset_and_drift_and_keeps_the_ecg():
    from ecgcnn.recording import remove_baseline

    fs, t = 500, np.arange(5000)[:, None] / 500
    ecg_like = 0.5 * np.sin(2 * np.pi * 8 * t)  # the band a classifier reads (QRS, T)
    drift = 0.8 * np.sin(2 * np.pi * 0.1 * t) + np.array([1.0, -2.0])  # breathing, offsets
    x = (ecg_like + drift).astype(np.float32)
    median = remove_baseline(x, fs, "median")
    assert median.dtype == np.float32 and np.abs(np.median(median, axis=0)).max() < 1e-6
    high = remove_baseline(x, fs, "highpass")
    error = np.abs(high - ecg_like)
    assert high.dtype == np.float32 and error.max() < 0.08 and error[500:-500].max() < 0.01
    assert remove_baseline(x, fs, "keep") is x


# --- windows, segments, thresholds ----------------------------------------------------------------


def test_long_records_are_windowed_and_aggregated(predictor, checkpoint):
    sig = ecg(
        seconds=25, seed=10, statements=["ASMI"]
    )  # as recorded: each window filtered alone differs
    starts = [0, 500, 1000, 1500]
    each = np.stack(
        [probs(predictor.predict(sig[s : s + 1000], fs=100, baseline="keep")) for s in starts]
    )
    got = predictor.predict(sig, fs=100, baseline="keep")
    assert got.windows == 4 and got.duration_s == 25
    np.testing.assert_allclose(probs(got), each.max(axis=0), atol=1e-6)
    mean = Predictor.from_checkpoint(checkpoint, aggregate="mean").predict(
        sig, fs=100, baseline="keep"
    )
    np.testing.assert_allclose(probs(mean), each.mean(axis=0), atol=1e-6)
    part = predictor.predict(sig, fs=100, segment=(5.0, 15.0), baseline="keep")
    np.testing.assert_allclose(
        probs(part), probs(predictor.predict(sig[500:1500], fs=100, baseline="keep")), atol=1e-6
    )
    with pytest.raises(
        RecordError,
        match=r"too short: 5 s, the model needs at least 10 s \(1000 samples at 100 Hz\)",
    ):
        predictor.predict(sig[:500], fs=100)
    # a record a little short of the window (9.95 s for 10 s; devices cut at 9.98 s) is padded
    # with its last value, with a warning; beyond 1% short it is too short
    nearly = predictor.predict(sig[:995], fs=100, baseline="keep")
    padded = np.concatenate([sig[:995], np.repeat(sig[994:995], 5, axis=0)])
    again = predictor.predict(padded, fs=100, baseline="keep")
    np.testing.assert_allclose(probs(nearly), probs(again), atol=1e-6)
    assert any(
        "9.95 s, 0.05 s short of the model's 10 s window: padded" in w for w in nearly.warnings
    )
    with pytest.raises(RecordError, match="too short: 9.89 s"):
        predictor.predict(sig[:989], fs=100)
    noise = np.random.default_rng(0).normal(0, 0.1, (13, 12))  # no flat lead, however short
    for n in (3, 11, 13):  # fewer samples than leads: too short, not an array to transpose
        for fs in (100, 500):
            with pytest.raises(RecordError, match=rf"too short: {n / fs:g} s, the model needs"):
                predictor.predict(noise[:n], fs=fs, leads=LEADS)
    with pytest.raises(EcgcnnError, match="unknown aggregate 'median'"):
        Predictor.from_checkpoint(checkpoint, aggregate="median")
    with pytest.raises(EcgcnnError, match="--units 'mmHg': expected mV, uV or V"):
        predictor.predict(sig, fs=100, units="mmHg")


def test_predict_windows_takes_only_the_model_s_windows(predictor):
    x = np.stack([ecg(seed=s).T for s in (20, 21)]).astype(np.float32)  # (2, 12, 1000)
    assert predictor.predict_windows(x).shape == (2, len(predictor.classes))
    assert predictor.predict_windows(x[:0]).shape == (0, len(predictor.classes))
    want = "windows: expected shape (n, 12, 1000) (12 leads, 1000 samples: 10 s at 100 Hz)"
    for bad, got in ((x[:, :, :999], "(2, 12, 999)"), (np.concatenate([x, x], axis=2), "(2, 12, 2000)"),
                     (x[:, :11], "(2, 11, 1000)"), (x[0], "(12, 1000)"), (x[None], "(1, 2, 12, 1000)")):  # fmt: skip
        with pytest.raises(EcgcnnError) as exc:
            predictor.predict_windows(bad)
        assert str(exc.value).startswith(want) and f"got {got}" in str(exc.value), str(exc.value)
        assert "\n" not in str(exc.value)
    with pytest.raises(EcgcnnError, match=r"add a batch axis: x\[None\]"):
        predictor.predict_windows(x[0])
    for value in (np.nan, np.inf):
        holed = x.copy()
        holed[1, 4, 10:13] = value
        with pytest.raises(
            EcgcnnError,
            match=rf"3 NaN or infinite value\(s\) \(first in window 1, lead {LEADS[4]}\)",
        ):
            predictor.predict_windows(holed)
    with pytest.raises(EcgcnnError, match="expected numbers"):
        predictor.predict_windows(np.full((1, 12, 1000), "a"))


def test_meta_window_and_stride_are_honoured(predictor):
    meta = predictor.meta | {"window": 1000, "stride": 250, "aggregate": "mean"}
    p = Predictor(predictor._infer, meta, "pytorch")
    got = p.predict(ecg(seconds=20, seed=11), fs=100)
    assert got.windows == 5  # starts 0, 250, 500, 750, 1000
    none = Predictor(predictor._infer, predictor.meta | {"window": None, "stride": None}, "pytorch")
    assert (none.window, none.stride, none.aggregate) == (1000, 500, "max")


def test_threshold_override_and_zero_filled_leads(checkpoint):
    sig = ecg(seed=12)
    assert Predictor.from_checkpoint(checkpoint, threshold=0.0).predict(sig, fs=100).labels == list(
        Predictor.from_checkpoint(checkpoint).classes
    )
    assert Predictor.from_checkpoint(checkpoint, threshold=1.0).predict(sig, fs=100).labels == []
    with pytest.raises(EcgcnnError, match="between 0 and 1"):
        Predictor.from_checkpoint(checkpoint, threshold=2.0)
    p = Predictor.from_checkpoint(checkpoint).predict(
        sig[:, :11], fs=100, leads=LEADS[:11], allow_missing_leads=True
    )
    assert p.filled_leads == ["V6"] and any("V6 missing" in w for w in p.warnings)
    flat = sig.copy()
    flat[:, 10] = 0.1  # a disconnected V5
    with pytest.raises(RecordError, match=r"flat lead\(s\) V5"):
        Predictor.from_checkpoint(checkpoint).predict(flat, fs=100)
    p = Predictor.from_checkpoint(checkpoint).predict(flat, fs=100, allow_missing_leads=True)
    zeroed = flat.copy()
    zeroed[:, 10] = 0.0
    want = Predictor.from_checkpoint(checkpoint).predict(
        zeroed, fs=100, leads=LEADS, allow_missing_leads=True
    )
    assert p.filled_leads == ["V5"] and any("V5: filled with zeros" in w for w in p.warnings)
    np.testing.assert_allclose(probs(p), probs(want), atol=1e-6)


# --- batches --------------------------------------------------------------------------------------


def corrupt_folder(tmp_path):
    folder = tmp_path / "records"
    (folder / "sub").mkdir(parents=True)
    for k in range(5):
        write_wfdb(folder / "sub" / f"r{k}", ecg(seed=20 + k))
    write_wfdb(folder / "bad", ecg(seed=30))
    (folder / "bad.dat").write_bytes((folder / "bad.dat").read_bytes()[:7000])
    return folder


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_record_is_reported_and_the_rest_predicted(
    predictor, tmp_path, workers, monkeypatch
):
    pools = []

    class Pool(ecgcnn.predict.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ecgcnn.predict, "ProcessPoolExecutor", Pool)
    folder = corrupt_folder(tmp_path)
    result = predictor.predict_paths([folder], workers=workers)
    assert len(pools) == (1 if workers else 0)  # records read by worker processes, or in-process
    assert isinstance(result, BatchResult)
    assert [p.record for p in result.predictions] == [
        str(folder / "sub" / f"r{k}") for k in range(5)
    ]
    assert [f.record for f in result.failures] == [str(folder / "bad")]
    assert "truncated" in result.failures[0].problem
    assert result.summary() == "predicted 5 of 6 record(s); 1 failed"
    alone = predictor.predict_record(folder / "sub" / "r3")
    np.testing.assert_allclose(probs(result.predictions[3]), probs(alone), atol=1e-6)
    table, csv_text = result.render("table"), result.render("csv")
    assert "failed" in table and "r3" in table
    rows = list(csv_text.splitlines())
    assert rows[0].startswith("record,labels,p_") and len(rows) == 7
    assert json.loads(result.render("json"))["summary"] == {
        "records": 6,
        "predicted": 5,
        "failed": 1,
    }


# --- the command line -----------------------------------------------------------------------------


def run_cli(*args):
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "ecgcnn", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_cli_predict_a_folder_with_a_corrupt_record(checkpoint, tmp_path):
    folder = corrupt_folder(tmp_path)
    np.save(folder / "arr.npy", ecg(seed=40))
    proc = run_cli("predict", "--checkpoint", checkpoint, folder, "--format", "json", "--fs", 100)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["summary"] == {"records": 7, "predicted": 6, "failed": 1}
    assert out["failures"][0]["record"] == str(folder / "bad")
    failed = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert failed == [f"failed: {folder / 'bad'}: {out['failures'][0]['error']}"]
    assert "predicted 6 of 7 record(s); 1 failed" in proc.stderr
    (folder / "bad.dat").unlink()
    (folder / "bad.hea").unlink()
    proc = run_cli("predict", "--checkpoint", checkpoint, folder / "sub" / "r0", folder / "sub" / "r1.hea",
                  "--format", "csv", "--out", tmp_path / "out.csv", "--threshold", 0.0)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(tmp_path / "out.csv")
    assert list(df["record"]) == [str(folder / "sub" / "r0"), str(folder / "sub" / "r1")]
    assert df["labels"].str.split(";").map(len).tolist() == [5, 5]


@pytest.mark.slow
def test_cli_predict_bad_options_are_one_line_errors(checkpoint, tmp_path):
    proc = run_cli("predict", "--checkpoint", checkpoint, tmp_path, "--format", "xml")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and lines == [
        "error: unknown format 'xml'; expected one of table, csv, json"
    ]
    proc = run_cli("predict", "--checkpoint", tmp_path / "none.pt", tmp_path)
    assert (
        proc.returncode == 1 and "error: checkpoint" in proc.stderr and "not found" in proc.stderr
    )
    np.save(tmp_path / "a.npy", ecg())
    proc = run_cli("predict", "--checkpoint", checkpoint, tmp_path / "a.npy", "--fs", 100,
                   "--baseline", "mean")  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and lines == [
        "error: --baseline 'mean': expected one of keep, median, highpass"
    ]


def test_cli_predict_checks_its_outputs_before_any_work(
    checkpoint, tmp_path, ecgcnn_here, monkeypatch
):
    """A bad --out or --plot is found before hours of Holters are scored, and is named as typed;
    an --out that is one of the recordings (or its files) is refused, not overwritten."""
    from ecgcnn import predict

    def never(*args, **kwargs):
        raise AssertionError("predicted before the outputs were checked")

    monkeypatch.setattr(predict, "predict_files", never)
    csv = tmp_path / "sig.csv"
    csv.write_text("I\n1\n")
    write_wfdb(tmp_path / "rec", ecg())
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    cases = [
        (["--out", tmp_path / "folder"], "--out " + str(tmp_path / "folder") + " is a folder"),
        (["--out", csv], "is one of the recordings to predict"),
        (["--out", tmp_path / "rec.hea", "--format", "csv"], "is one of the recordings to predict"),
        (["--out", tmp_path / "a-file" / "x.csv"], "--out " + str(tmp_path / "a-file" / "x.csv")),
        (
            ["--every", 10, "--plot", tmp_path / "a-file"],
            "--plot " + str(tmp_path / "a-file") + " is a file",
        ),
    ]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("I\n1\n")
    proc = ecgcnn_here("predict", "--checkpoint", checkpoint, tmp_path / "in", "--fs", 100,
                       "--format", "csv", "--out", tmp_path / "in" / "a.csv")  # fmt: skip
    assert "is in a folder being predicted" in proc.stderr and proc.returncode != 0
    assert (tmp_path / "in" / "a.csv").read_text() == "I\n1\n"
    # without --fs a folder's .csv files are not read: a table written there is no recording
    from ecgcnn.cli import check_outputs

    check_outputs(("--out", tmp_path / "in" / "table.csv", False), inputs=[tmp_path / "in"])
    for extra, message in cases:
        proc = ecgcnn_here(
            "predict", "--checkpoint", checkpoint, csv, tmp_path / "rec", "--fs", 100, *extra
        )
        assert proc.returncode != 0 and message in proc.stderr, (extra, proc.stderr)
        assert ".tmp" not in proc.stderr and "Traceback" not in proc.stderr
    assert csv.read_text() == "I\n1\n"


def test_explain_and_evaluate_check_their_output_folder_first(checkpoint, tmp_path, ecgcnn_here):
    (tmp_path / "a-file").write_text("x")
    write_wfdb(tmp_path / "rec", ecg())
    proc = ecgcnn_here("explain", "--checkpoint", checkpoint, "--record", tmp_path / "rec",
                       "--out", tmp_path / "a-file")  # fmt: skip
    assert proc.returncode != 0 and f"--out {tmp_path / 'a-file'} is a file" in proc.stderr
    proc = ecgcnn_here("evaluate", "--checkpoint", checkpoint, "--data-root", tmp_path,
                       "--out", tmp_path / "a-file" / "sub")  # fmt: skip
    assert proc.returncode != 0 and "cannot be made" in proc.stderr, proc.stderr


def test_cli_predict_interrupted_says_nothing_was_written(
    checkpoint, tmp_path, ecgcnn_here, monkeypatch
):
    from ecgcnn import predict

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "predict_files", interrupted)
    (tmp_path / "old.csv").write_text("kept\n")
    write_wfdb(tmp_path / "rec", ecg())
    proc = ecgcnn_here(
        "predict", "--checkpoint", checkpoint, tmp_path / "rec", "--out", tmp_path / "old.csv"
    )
    assert proc.returncode == 130
    assert f"interrupted: nothing written ({tmp_path / 'old.csv'} is as it was)" in proc.stderr
    assert (tmp_path / "old.csv").read_text() == "kept\n"


def test_cli_predict_interrupted_while_drawing_says_so(
    checkpoint, tmp_path, ecgcnn_here, monkeypatch
):
    from ecgcnn import timeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(timeline, "plot_timelines", interrupted)
    write_wfdb(tmp_path / "rec", ecg())
    proc = ecgcnn_here("predict", "--checkpoint", checkpoint, tmp_path / "rec", "--every", 10,
                       "--plot", tmp_path / "plots")  # fmt: skip
    assert proc.returncode == 130
    assert (
        f"interrupted: nothing written; the timelines drawn so far are in {tmp_path / 'plots'}"
        in proc.stderr
    )
