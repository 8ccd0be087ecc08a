"""Tests on the 1,732 real PTB-XL records of ../shared/ptbxl-dev (skipped where it is absent)."""

import ast
import csv
from collections import Counter

import numpy as np
import pytest

from ecgcnn.cache import load_signals
from ecgcnn.labels import make_labels
from ecgcnn.recipes import get_recipe
from ecgcnn.records import load_database, read_record
from ecgcnn.splits import cv_folds, cv_splits, patients_overlap
from ecgcnn.train import TrainConfig, train

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def dev_db(dev_root):
    return load_database(dev_root)


def test_every_record_loads_as_1000_by_12_at_100_hz(dev_db):
    assert len(dev_db.records) == 1732
    signals = load_signals(dev_db, 100, progress=False)
    assert signals.failed == {}
    assert signals.data.shape == (1732, 12, 1000)
    assert np.isfinite(signals.data).all()
    sig, fs = read_record(dev_db.record_path(1, 100))
    assert sig.shape == (1000, 12) and fs == 100
    np.testing.assert_array_equal(signals.data[0], sig.T)


def test_top5_are_the_known_five(dev_db):
    assert make_labels(dev_db, "top5").classes == ("NORM", "NDT", "LAFB", "ASMI", "LVH")


def test_superdiagnostic_counts_match_an_independent_count(dev_root, dev_db):
    with open(dev_root / "scp_statements.csv", newline="") as f:
        klass = {
            row[""]: row["diagnostic_class"]
            for row in csv.DictReader(f)
            if row["diagnostic"] == "1.0"
        }
    expected, labelled = Counter(), 0
    with open(dev_root / "ptbxl_database.csv", newline="") as f:
        for row in csv.DictReader(f):
            supers = {klass[code] for code in ast.literal_eval(row["scp_codes"]) if code in klass}
            expected.update(supers)
            labelled += bool(supers)
    labels = make_labels(dev_db, "superdiagnostic")
    assert labels.counts() == dict(expected)
    assert len(labels.ecg_ids) == labelled
    assert labels.classes == ("CD", "HYP", "MI", "NORM", "STTC")


def test_no_patient_crosses_cv_folds(dev_db):
    labels = make_labels(dev_db, "top5")
    pids = dev_db.records.loc[labels.ecg_ids, "patient_id"].to_numpy()
    folds = cv_folds(pids, labels.y, 5, seed=42)
    for split in cv_splits(folds, 5):
        assert not patients_overlap(pids, split.train, split.val)


@pytest.mark.slow
def test_short_cnn1d_training_beats_chance_on_a_held_out_fold(dev_root, tmp_path):
    cfg = TrainConfig(
        data_root=str(dev_root), out=str(tmp_path / "run"), task="superdiagnostic", protocol="benchmark",
        train_folds=list(range(1, 8)), val_fold=8, test_fold=9,
        recipe=get_recipe("seed").with_overrides(epochs=3, batch_size=32), progress=False,
    )  # fmt: skip
    results = train(cfg)
    test = results["test"]["folds"]["benchmark"]
    assert test["records"] > 100
    assert test["roc_auc_macro"] > 0.7  # chance is 0.5


def test_aux_labels_of_superdiagnostic_are_its_diagnostic_statements(dev_root, dev_db):
    from ecgcnn.train import aux_labels

    sup = make_labels(dev_db, "superdiagnostic")
    aux = aux_labels(dev_db, "diagnostic", sup)
    klass = dev_db.statements["diagnostic_class"]
    # a record is in a superclass exactly when it carries one of that class's statements
    for j, superclass in enumerate(sup.classes):
        members = [i for i, code in enumerate(aux.classes) if klass.get(code) == superclass]
        np.testing.assert_array_equal(aux.y[:, members].max(axis=1), sup.y[:, j])
