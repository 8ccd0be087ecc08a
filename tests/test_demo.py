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
