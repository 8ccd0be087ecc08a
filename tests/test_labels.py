import numpy as np
import pandas as pd
import pytest

from ecgcnn.errors import EcgcnnError
from ecgcnn.labels import TASKS, make_labels
from ecgcnn.records import load_database
from ecgcnn.synthetic import SCP_STATEMENTS_CSV


def write_root(root, scp_codes):
    """A metadata-only PTB-XL root with one record per scp_codes dict (labels need no signals)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "scp_statements.csv").write_text(SCP_STATEMENTS_CSV)
    pd.DataFrame(
        {
            "ecg_id": range(1, len(scp_codes) + 1),
            "patient_id": [float(i) for i in range(len(scp_codes))],
            "scp_codes": [repr(c) for c in scp_codes],
            "strat_fold": [1 + i % 10 for i in range(len(scp_codes))],
            "filename_lr": [f"records100/00000/{i:05d}_lr" for i in range(1, len(scp_codes) + 1)],
            "filename_hr": [f"records500/00000/{i:05d}_hr" for i in range(1, len(scp_codes) + 1)],
        }
    ).to_csv(root / "ptbxl_database.csv", index=False)
    return load_database(root)


CODES = [
    {"NORM": 100.0, "SR": 0.0},
    {"NORM": 100.0, "SR": 0.0},
    {"NORM": 80.0, "LVOLT": 0.0, "SR": 0.0},
    {"IMI": 100.0, "ISC_": 50.0, "SR": 0.0},
    {"IMI": 35.0, "SR": 0.0},  # below the top5 likelihood threshold
    {"ASMI": 100.0, "AFIB": 0.0},
    {"LVH": 100.0, "NDT": 100.0, "SR": 0.0},
    {"CRBBB": 100.0, "SR": 0.0},
    {"AFIB": 0.0},  # no diagnostic statement at all
]


def test_top5_counts_only_diagnostic_codes_with_likelihood_50_or_more(tmp_path):
    db = write_root(tmp_path, CODES)
    labels = make_labels(db, "top5")
    # NORM 3, IMI 1 (the 35 does not count), then ties at 1 broken by name: ASMI, CRBBB, ISC_
    assert labels.classes == ("NORM", "ASMI", "CRBBB", "IMI", "ISC_")
    assert len(labels.ecg_ids) == len(CODES)  # top5 keeps every record, as the original
    imi = labels.classes.index("IMI")
    assert labels.y[:, imi].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_superdiagnostic_maps_through_diagnostic_class_without_threshold(tmp_path):
    db = write_root(tmp_path, CODES)
    labels = make_labels(db, "superdiagnostic")
    assert labels.classes == ("CD", "HYP", "MI", "NORM", "STTC")
    assert 9 not in labels.ecg_ids  # no diagnostic label: dropped
    row = dict(zip(labels.ecg_ids.tolist(), labels.y.tolist(), strict=True))
    assert row[5] == [0, 0, 1, 0, 0]  # IMI at likelihood 35 still counts in the benchmark tasks
    assert row[4] == [0, 0, 1, 0, 1]  # IMI -> MI, ISC_ -> STTC
    assert row[7] == [0, 1, 0, 0, 1]  # LVH -> HYP, NDT -> STTC


def test_subdiagnostic_form_rhythm_and_all(tmp_path):
    db = write_root(tmp_path, CODES)
    sub = make_labels(db, "subdiagnostic").classes
    assert sub == ("AMI", "CRBBB", "IMI", "ISC_", "LVH", "NORM", "STTC")  # ASMI -> AMI, NDT -> STTC
    assert make_labels(db, "form").classes == ("LVOLT", "NDT")
    rhythm = make_labels(db, "rhythm")
    assert rhythm.classes == ("AFIB", "SR") and len(rhythm.ecg_ids) == len(CODES)
    everything = make_labels(db, "all")
    assert list(everything.classes) == sorted(everything.classes)
    assert {"NORM", "SR", "AFIB", "LVOLT", "NDT", "IMI"} <= set(everything.classes)


def test_fixed_classes_match_by_name_and_keep_their_order(tmp_path):
    db = write_root(tmp_path, CODES)
    labels = make_labels(db, "top5", classes=("LVH", "NORM", "WPW"))
    assert labels.classes == ("LVH", "NORM", "WPW")
    assert labels.counts() == {"LVH": 1, "NORM": 3, "WPW": 0}


def test_unknown_task_and_too_few_statements(tmp_path):
    db = write_root(tmp_path, CODES[:2])
    with pytest.raises(EcgcnnError, match="unknown task 'top3'"):
        make_labels(db, "top3")
    with pytest.raises(EcgcnnError, match="at least 5 diagnostic"):
        make_labels(db, "top5")
    assert set(TASKS) == {
        "top5",
        "all",
        "diagnostic",
        "subdiagnostic",
        "superdiagnostic",
        "form",
        "rhythm",
    }


def test_synthetic_root_labels(synthetic_root):
    labels = make_labels(load_database(synthetic_root), "top5")
    assert "NORM" in labels.classes
    assert labels.y.shape == (len(labels.ecg_ids), 5)
    assert np.all(labels.y.sum(axis=0) > 10)
