import logging

import numpy as np
import pytest

from ecgcnn.metrics import compute_metrics, summarize, tune_thresholds

CLASSES = ("A", "B", "C")


def test_perfect_predictions_score_one():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    m = compute_metrics(y, y * 0.9 + 0.05, CLASSES)
    assert m["pr_auc_macro"] == pytest.approx(1.0)
    assert m["roc_auc_macro"] == pytest.approx(1.0)
    assert m["f1_macro"] == pytest.approx(1.0) and m["f1_micro"] == pytest.approx(1.0)
    assert set(m["per_class"]) == set(CLASSES)


def test_class_without_positives_is_null_and_left_out_with_a_warning(caplog):
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    prob = np.array([[0.9, 0.2, 0.7], [0.1, 0.8, 0.1], [0.8, 0.7, 0.2], [0.2, 0.1, 0.3]])
    with caplog.at_level(logging.WARNING):
        m = compute_metrics(y, prob, CLASSES)
    assert m["per_class"]["C"]["roc_auc"] is None and m["per_class"]["C"]["pr_auc"] is None
    assert m["classes_without_auc"] == ["C"]
    assert m["roc_auc_macro"] == pytest.approx(1.0)  # mean of A and B only, not dragged to 0.67
    # so are the label metrics: C has nothing to recall (its false positive still costs micro F1)
    assert m["f1_macro"] == pytest.approx(1.0)
    assert m["precision_macro"] == pytest.approx(1.0) and m["recall_macro"] == pytest.approx(1.0)
    assert m["f1_micro"] < 1.0
    assert "C" in caplog.text and "macro means" in caplog.text


def test_wrong_shapes_are_rejected():
    with pytest.raises(ValueError, match="must both be"):
        compute_metrics(np.zeros((4, 3)), np.zeros((4, 2)), CLASSES)


def test_thresholds_maximise_f1_and_fall_back_without_positives():
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    prob = np.array([[0.3, 0.1], [0.25, 0.2], [0.2, 0.3], [0.1, 0.4]])
    thr, source = tune_thresholds(y, prob)
    assert thr[0] == pytest.approx(
        0.25
    )  # the lowest threshold that keeps both positives, no negative
    assert source == ["tuned", "fallback"] and thr[1] == 0.5
    m = compute_metrics(y, prob, ("A", "B"), thr)
    assert m["per_class"]["A"]["f1"] == pytest.approx(1.0)


def test_summarize_gives_mean_and_std():
    s = summarize(
        [{"roc_auc_macro": 0.8}, {"roc_auc_macro": 0.9}, {"roc_auc_macro": None}],
        ("roc_auc_macro",),
    )
    assert s["roc_auc_macro"]["mean"] == pytest.approx(0.85)
    assert s["roc_auc_macro"]["std"] == pytest.approx(0.05)
    assert s["roc_auc_macro"]["n"] == 2
