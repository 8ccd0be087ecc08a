"""A recipe's baseline (``--baseline`` on train): the records learnt from, scored by evaluate, explained
and predicted on are all treated the same way, and the checkpoint says which way."""

import errno
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from ecgcnn.errors import EcgcnnError
from ecgcnn.recipes import get_recipe
from ecgcnn.recording import (
    checkpoint_baseline,
    default_baseline,
    remove_baseline,
    remove_baseline_records,
)


def _records(n: int = 7, samples: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(samples) / 100
    drift = 0.4 * np.sin(2 * np.pi * 0.1 * t)  # slower than 0.5 Hz: the filter's to remove
    return (rng.normal(0, 0.1, (n, 12, samples)) + rng.normal(0, 1, (n, 12, 1)) + drift).astype(
        np.float32
    )


@pytest.mark.parametrize("how", ["median", "highpass"])
def test_a_stack_of_records_is_filtered_as_each_recording_would_be(how, tmp_path):
    data = _records()
    np.save(tmp_path / "cache.npy", data)
    mapped = np.load(tmp_path / "cache.npy", mmap_mode="r")  # as the record cache is read
    stacked = remove_baseline_records(mapped, 100, how, chunk=3)  # chunks not dividing 7
    one_by_one = np.stack([remove_baseline(r.T, 100, how).T for r in data])
    assert stacked.dtype == np.float32 and stacked.shape == data.shape
    np.testing.assert_allclose(stacked, one_by_one, atol=1e-5)
    assert np.abs(np.median(stacked, axis=2)).max() < 0.05  # offsets gone
    assert np.abs(stacked - data).max() > 0.5  # and something was done


def test_keep_returns_the_records_themselves_and_an_unknown_baseline_is_refused():
    data = _records(2)
    assert remove_baseline_records(data, 100, "keep") is data
    with pytest.raises(
        EcgcnnError, match="baseline 'mean': expected one of keep, median, highpass"
    ):
        remove_baseline_records(data, 100, "mean")
    recipe = get_recipe("benchmark").with_overrides(baseline="detrend")
    with pytest.raises(EcgcnnError, match="unknown baseline 'detrend'; expected one of keep"):
        recipe.validate()


def test_models_saved_before_the_setting_learnt_records_as_recorded():
    assert checkpoint_baseline({}) == "keep" and checkpoint_baseline({"baseline": None}) == "keep"
    # recordings from elsewhere: as the model learnt, highpass for a model that kept baselines
    assert default_baseline("keep") == "highpass"
    assert default_baseline("median") == "median" and default_baseline("highpass") == "highpass"


@pytest.mark.slow
def test_a_highpass_model_is_scored_the_same_by_evaluate_explain_and_predict(
    synthetic_root, tmp_path, caplog
):
    from ecgcnn import load_model
    from ecgcnn.checkpoint import checkpoint_format, load_checkpoint
    from ecgcnn.evaluate import evaluate_checkpoint
    from ecgcnn.explain import _record_signal
    from ecgcnn.export import onnx_metadata
    from ecgcnn.predict import Predictor
    from ecgcnn.records import load_database, read_record
    from ecgcnn.train import TrainConfig, train

    recipe = get_recipe("benchmark").with_overrides(epochs=1, batch_size=32, baseline="highpass")
    cfg = TrainConfig(data_root=str(synthetic_root), out=str(tmp_path / "run"), model="cnn1d",
                      task="superdiagnostic", protocol="benchmark", train_folds=list(range(1, 8)),
                      val_fold=8, test_fold=9, recipe=recipe, progress=False)  # fmt: skip
    train(cfg)
    fold = tmp_path / "run" / "benchmark"
    meta = load_model(fold / "checkpoint.pt").meta
    assert meta["baseline"] == "highpass" and meta["config"]["recipe"]["baseline"] == "highpass"
    assert onnx_metadata(meta)["baseline"] == "highpass"
    # a format an ecgcnn from before the setting refuses, rather than scoring unfiltered records
    assert load_checkpoint(fold / "checkpoint.pt")["format"] == "ecgcnn-checkpoint/2"
    assert onnx_metadata(meta)["format"] == "ecgcnn-onnx/2"
    keep_meta = {k: v for k, v in meta.items() if k != "baseline"}
    assert checkpoint_format(keep_meta) == "ecgcnn-checkpoint/1"
    assert onnx_metadata(keep_meta)["format"] == "ecgcnn-onnx/1"
    saved = np.load(fold / "predictions_test.npz")

    # evaluate reads the same records from the cache and filters them as training did
    evaluate_checkpoint(fold / "checkpoint.pt", synthetic_root, tmp_path / "ev", test_fold=9,
                        progress=False)  # fmt: skip
    scored = np.load(tmp_path / "ev" / "predictions_fold9.npz")
    np.testing.assert_array_equal(scored["ecg_ids"], saved["ecg_ids"])
    np.testing.assert_allclose(scored["y_prob"], saved["y_prob"], atol=1e-5)

    # predict on the record's file: the model's own baseline by default, no warning
    ecg_id = int(saved["ecg_ids"][0])
    db = load_database(synthetic_root)
    predictor = Predictor.from_checkpoint(fold / "checkpoint.pt")
    assert predictor.default_baseline == "highpass"
    assert predictor.describe()["trained_baseline"] == "highpass"
    with caplog.at_level(logging.WARNING):
        pred = predictor.predict_record(db.record_path(ecg_id, 100))
    assert not [r for r in caplog.records if "the model learnt" in r.getMessage()]
    np.testing.assert_allclose(
        [pred.probabilities[c] for c in predictor.classes], saved["y_prob"][0], atol=1e-5
    )
    assert not [w for w in pred.warnings if "the model learnt" in w]
    kept = predictor.predict_record(db.record_path(ecg_id, 100), baseline="keep")
    assert "the model learnt records with the baseline treated as 'highpass'" in caplog.text
    # and in the record's own warnings, which reach the CSV, the table and the API's responses
    mismatch = "baseline treated as 'keep', but the model learnt records treated as 'highpass' (its default)"
    assert mismatch in kept.warnings
    # its ONNX export (format /2) reads back with the same baseline and probabilities
    from ecgcnn.export import export_onnx

    export_onnx(fold / "checkpoint.pt", tmp_path / "model.onnx")
    onnx = Predictor.from_onnx(tmp_path / "model.onnx")
    assert onnx.default_baseline == "highpass"
    by_onnx = onnx.predict_record(db.record_path(ecg_id, 100))
    np.testing.assert_allclose(
        [by_onnx.probabilities[c] for c in predictor.classes], saved["y_prob"][0], atol=1e-5
    )
    from fastapi.testclient import TestClient

    from ecgcnn.serve import Settings, create_app, example_body

    with TestClient(create_app(Settings(str(fold / "checkpoint.pt")))) as client:
        body = example_body("inferior-mi")
        for _ in range(600):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        served = client.post("/v1/predict", json=body).json()
        assert not [w for w in served["warnings"] if "the model learnt" in w]
        served = client.post("/v1/predict", json={**body, "baseline": "keep"}).json()
        assert mismatch in served["warnings"]
    assert not np.allclose(
        [kept.probabilities[c] for c in predictor.classes], saved["y_prob"][0], atol=1e-5
    )

    # explain --data-root --ecg-id shows the record as the model learnt such records
    signal, _, _ = _record_signal(meta, None, synthetic_root, ecg_id)
    raw, _ = read_record(db.record_path(ecg_id, 100), tuple(meta["leads"]))
    np.testing.assert_allclose(signal, remove_baseline(raw, 100, "highpass").T, atol=1e-6)
    # unless told otherwise: --baseline applies there too, checked like everywhere else
    kept_signal, _, _ = _record_signal(meta, None, synthetic_root, ecg_id, baseline="keep")
    np.testing.assert_allclose(kept_signal, raw.T)
    with pytest.raises(EcgcnnError, match="--baseline 'foo': expected one of keep"):
        _record_signal(meta, None, synthetic_root, ecg_id, baseline="foo")


def test_a_median_model_predicts_with_its_own_baseline_unless_told(caplog):
    from ecgcnn.predict import Predictor

    meta = {"classes": ["A"], "fs": 100, "input_length": 1000, "thresholds": [0.5],
            "baseline": "median"}  # fmt: skip
    predictor = Predictor(lambda x: np.full((len(x), 1), 0.5, np.float32), meta, "test")
    assert predictor.input_spec().baseline == "median"
    with caplog.at_level(logging.WARNING):
        assert predictor.input_spec(baseline="highpass").baseline == "highpass"
    assert "the model learnt records with the baseline treated as 'median'" in caplog.text
    predictor.input_spec(baseline="highpass")  # told once, not for every record
    assert caplog.text.count("the model learnt records") == 1
    old = Predictor(predictor._infer, {k: v for k, v in meta.items() if k != "baseline"}, "test")
    assert old.input_spec().baseline == "highpass"
    with pytest.raises(EcgcnnError, match="unknown baseline 'bandpass'"):
        Predictor(predictor._infer, meta | {"baseline": "bandpass"}, "test")


def test_train_refuses_an_unknown_baseline_in_one_line(ecgcnn_here, synthetic_root, tmp_path):
    result = ecgcnn_here("train", "--data-root", synthetic_root, "--out", tmp_path / "run",
                         "--baseline", "mean", "--no-progress")  # fmt: skip
    assert result.returncode != 0
    assert "unknown baseline 'mean'; expected one of keep, median, highpass" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "fold_0").exists()


def test_benchmark_refuses_an_unknown_baseline_before_training(
    ecgcnn_here, synthetic_root, tmp_path
):
    result = ecgcnn_here("benchmark", "--data-root", synthetic_root, "--out", tmp_path / "b",
                         "--tasks", "superdiagnostic", "--models", "cnn1d", "--baseline", "Highpass",
                         "--no-progress")  # fmt: skip
    assert result.returncode != 0
    assert "unknown baseline 'Highpass'; expected one of keep, median, highpass" in result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("b/*/*"))


def test_a_format_newer_than_this_ecgcnn_asks_for_a_newer_one(tmp_path):
    import torch

    from ecgcnn.checkpoint import load_checkpoint
    from ecgcnn.export import decode_metadata

    path = tmp_path / "future.pt"
    torch.save({"format": "ecgcnn-checkpoint/9", "version": "9.0", "state_dict": {}}, path)
    with pytest.raises(
        EcgcnnError,
        match=r"format 'ecgcnn-checkpoint/9', written by ecgcnn 9.0; this ecgcnn \(.*\) reads "
        r"ecgcnn-checkpoint/1 and ecgcnn-checkpoint/2: use ecgcnn 9.0 or newer",
    ):
        load_checkpoint(path)
    torch.save({"format": "something else"}, path)
    with pytest.raises(EcgcnnError, match="not an ecgcnn checkpoint .* or ecgcnn-checkpoint/2"):
        load_checkpoint(path)
    with pytest.raises(EcgcnnError, match=r"'ecgcnn-onnx/3'; this ecgcnn .* use a newer ecgcnn"):
        decode_metadata({"format": '"ecgcnn-onnx/3"'}, "m.onnx")
    with pytest.raises(EcgcnnError, match=r"exported by ecgcnn 9.1; .* use ecgcnn 9.1 or newer"):
        decode_metadata({"format": '"ecgcnn-onnx/3"', "exported_by": '"ecgcnn 9.1"'}, "m.onnx")
    with pytest.raises(EcgcnnError, match="not an ecgcnn ONNX export .* or ecgcnn-onnx/2"):
        decode_metadata({"format": '"other"'}, "m.onnx")


def test_a_roots_treated_records_are_cached_once_and_rebuilt_when_their_source_changes(
    synthetic_root, tmp_path, monkeypatch, caplog
):
    from ecgcnn import cache as cache_module
    from ecgcnn.cache import load_signals
    from ecgcnn.records import load_database

    db = load_database(synthetic_root)
    where = tmp_path / "cache"
    raw = load_signals(db, 100, where, progress=False)
    with caplog.at_level(logging.INFO, logger="ecgcnn"):
        treated = load_signals(db, 100, where, progress=False, baseline="highpass")
    assert "cached in" in caplog.text
    npy = where / "signals_100hz_highpass.npy"
    assert isinstance(treated.data, np.memmap)
    assert Path(treated.data.filename).resolve() == npy.resolve()
    np.testing.assert_array_equal(treated.ecg_ids, raw.ecg_ids)
    np.testing.assert_allclose(treated.data, remove_baseline_records(raw.data, 100, "highpass"))
    built = npy.stat().st_mtime_ns
    expected = np.array(treated.data)  # a copy: the file is damaged below
    del treated

    # a second run opens it (torchrun's other ranks too): nothing filtered again
    again = load_signals(db, 100, where, progress=False, baseline="highpass")
    assert npy.stat().st_mtime_ns == built
    np.testing.assert_array_equal(again.data, expected)
    del again
    median = load_signals(db, 100, where, progress=False, baseline="median")  # a file of its own
    assert (where / "signals_100hz_median.npy").is_file()
    assert not np.allclose(median.data, expected)

    # damaged, or made from records cached anew: built again
    with open(npy, "r+b") as f:
        f.truncate(npy.stat().st_size - 4)
    np.testing.assert_allclose(
        load_signals(db, 100, where, progress=False, baseline="highpass").data, expected
    )
    (where / "signals_100hz.npy").touch()  # the source cache changed: rebuilt, then this too
    rebuilt = npy.stat().st_mtime_ns
    load_signals(db, 100, where, progress=False, baseline="highpass")
    assert npy.stat().st_mtime_ns != rebuilt

    # a fold of the root (evaluate --test-fold): the root's treated file where a run cached it...
    from ecgcnn.cache import load_some_signals

    median = load_signals(db, 100, where, progress=False, baseline="median")  # a run's
    fold = raw.ecg_ids[::10]
    some = load_some_signals(db, fold, 100, where, progress=False, baseline="median")
    assert isinstance(some.data, np.memmap)
    np.testing.assert_array_equal(some.data[some.rows(fold)], median.data[median.rows(fold)])
    # ...else those records alone, treated in memory (not the whole root)
    (where / "manifest_100hz_median.json").unlink()
    some = load_some_signals(db, fold, 100, where, progress=False, baseline="median")
    assert not isinstance(some.data, np.memmap) and len(some.data) == len(fold)
    np.testing.assert_allclose(some.data, median.data[median.rows(fold)], atol=1e-6)
    assert not (where / "manifest_100hz_median.json").exists()  # and nothing built for them

    # a new filter (or a scipy that filters otherwise): built again
    from ecgcnn import recording

    monkeypatch.setattr(recording, "HIGHPASS_HZ", 0.7)
    moved = load_signals(db, 100, where, progress=False, baseline="highpass")
    assert not np.allclose(moved.data, expected, atol=1e-4)
    monkeypatch.undo()

    # no room for the file (its blocks are reserved before they are written: ENOSPC, not SIGBUS),
    # or a read-only folder: the run goes on with the records treated in memory, and says so
    def full_disk(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    def read_only(**kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    for patch, says in (((cache_module.os, "posix_fallocate", full_disk), "No space left"),
                        ((cache_module.tempfile, "mkstemp", read_only), "Read-only")):  # fmt: skip
        (where / "manifest_100hz_median.json").unlink(missing_ok=True)
        caplog.clear()
        with monkeypatch.context() as m, caplog.at_level(logging.WARNING, logger="ecgcnn"):
            m.setattr(*patch)
            in_memory = load_signals(db, 100, where, progress=False, baseline="median")
        assert says in caplog.text and "treating them in memory" in caplog.text
        assert not isinstance(in_memory.data, np.memmap)
        np.testing.assert_allclose(in_memory.data, median.data)
        assert not list(where.glob("*.tmp"))
    # the record cache itself has no such way out: one line saying where and what to do
    with monkeypatch.context() as m:
        m.setattr(cache_module.os, "posix_fallocate", full_disk)
        with pytest.raises(
            EcgcnnError, match="No space left on device; the record cache .*--cache-dir"
        ):
            load_signals(db, 100, tmp_path / "elsewhere", progress=False)
    assert not list((tmp_path / "elsewhere").glob("*.tmp"))
    with pytest.raises(EcgcnnError, match="--baseline 'mean'"):
        load_signals(db, 100, where, progress=False, baseline="mean")
