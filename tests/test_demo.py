"""The embedded default: a short demo run learns the synthetic classes."""

import json

import pytest

from ecgcnn.demo import run_demo

pytestmark = pytest.mark.slow


def test_short_demo_reaches_macro_roc_auc_above_0_8(tmp_path):
    results = run_demo(tmp_path / "demo", n_patients=150, folds=3, epochs=4, progress=False)
    roc = results["mean_std"]["roc_auc_macro"]["mean"]
    assert roc > 0.8, json.dumps(results["mean_std"], indent=1)
    assert (tmp_path / "demo" / "synthetic-ptbxl" / "ptbxl_database.csv").is_file()
    assert (tmp_path / "demo" / "cv_results.json").is_file()
    assert len(list((tmp_path / "demo").glob("fold_*/evaluation/confusion_val_*.png"))) == 3 * 5


def test_a_demo_run_again_continues_and_other_settings_start_afresh(tmp_path, caplog):
    """The same demo again reuses its finished folds (as `ecgcnn train` does); other training
    settings or another patient count are refused, as by `ecgcnn train`, before anything is
    rewritten; synthetic data left without a run is written again for the new count."""
    import logging
    import shutil

    import pandas as pd

    from ecgcnn.errors import EcgcnnError

    out = tmp_path / "demo"
    first = run_demo(out, n_patients=40, folds=2, epochs=1, progress=False)
    checkpoint = out / "fold_0" / "checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        again = run_demo(out, n_patients=40, folds=2, epochs=1, progress=False)
    assert checkpoint.stat().st_mtime_ns == before
    assert "continuing" in caplog.text
    assert again["mean_std"] == first["mean_std"]

    database = out / "synthetic-ptbxl" / "ptbxl_database.csv"
    data_before = database.stat().st_mtime_ns
    with pytest.raises(EcgcnnError, match=r"other settings \(recipe.epochs: 1 there, 2 now\)"):
        run_demo(out, n_patients=40, folds=2, epochs=2, progress=False)
    with pytest.raises(EcgcnnError, match="holds a demo on 40 synthetic patients, not 50"):
        run_demo(out, n_patients=50, folds=2, epochs=1, progress=False)
    assert database.stat().st_mtime_ns == data_before and checkpoint.stat().st_mtime_ns == before

    for run_file in out.iterdir():  # the data alone is left
        if run_file.name != "synthetic-ptbxl":
            shutil.rmtree(run_file) if run_file.is_dir() else run_file.unlink()
    run_demo(out, n_patients=50, folds=2, epochs=1, progress=False)
    assert pd.read_csv(database)["patient_id"].nunique() == 50


def test_a_demo_folder_holding_another_database_is_refused_in_one_line(tmp_path):
    from ecgcnn.errors import EcgcnnError

    database = tmp_path / "demo" / "synthetic-ptbxl" / "ptbxl_database.csv"
    database.parent.mkdir(parents=True)
    database.write_text("ecg_id,foo\n1,2\n")
    with pytest.raises(EcgcnnError, match="not the demo's synthetic database"):
        run_demo(tmp_path / "demo", n_patients=40, folds=2, epochs=1, progress=False)
