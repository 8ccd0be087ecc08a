"""Bootstrap intervals of macro AUCs, single and paired, on synthetic predictions."""

import logging

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ecgcnn.bootstrap import (
    _macro_aucs,
    _multiplicity,
    bootstrap_auc,
    bootstrap_indices,
    evaluable_classes,
    paired_bootstrap_auc,
)
from ecgcnn.errors import EcgcnnError
from ecgcnn.metrics import compute_metrics


def predictions(records=300, classes=4, signal=1.0, seed=0, rates=None):
    """Labels and scores that rank positives higher by ``signal`` (0: pure noise)."""
    rng = np.random.default_rng(seed)
    rates = np.linspace(0.4, 0.1, classes) if rates is None else np.asarray(rates)
    y = (rng.random((records, classes)) < rates).astype(int)
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=y.shape))))
    return y, p


def test_point_estimates_equal_the_evaluation_metrics():
    y, p = predictions()
    result = bootstrap_auc(y, p, ["A", "B", "C", "D"])
    metrics = compute_metrics(y, p, ["A", "B", "C", "D"])
    assert result.roc_auc.point == pytest.approx(metrics["roc_auc_macro"], abs=1e-12)
    assert result.pr_auc.point == pytest.approx(metrics["pr_auc_macro"], abs=1e-12)


def test_interval_contains_the_point_estimate():
    y, p = predictions()
    result = bootstrap_auc(y, p)
    for interval in (result.roc_auc, result.pr_auc):
        assert interval.lower < interval.point < interval.upper
        assert interval.lower < interval.mean < interval.upper
    assert result.n_resamples == 100 and result.level == 0.9


def test_a_wider_level_gives_a_wider_interval():
    y, p = predictions()
    narrow, wide = bootstrap_auc(y, p, level=0.5), bootstrap_auc(y, p, level=0.99)
    assert wide.roc_auc.lower < narrow.roc_auc.lower < narrow.roc_auc.upper < wide.roc_auc.upper


def test_reproducible_for_a_seed():
    y, p = predictions()
    assert bootstrap_auc(y, p, seed=7) == bootstrap_auc(y, p, seed=7)
    assert bootstrap_auc(y, p, seed=7).roc_auc != bootstrap_auc(y, p, seed=8).roc_auc
    a, _ = bootstrap_indices(y, 20, seed=3)
    b, _ = bootstrap_indices(y, 20, seed=3)
    assert np.array_equal(a, b) and a.shape == (20, len(y))


def test_resamples_missing_a_class_are_redrawn():
    # one positive in 60 records: about a third of the draws miss it
    y, p = predictions(records=60, classes=2, rates=[0.5, 0.0], seed=1)
    y[5, 1] = 1
    index, draws = bootstrap_indices(y, 100, seed=0)
    assert draws > 100  # some draws were rejected
    assert (y[index].sum(axis=1) > 0).all()  # every kept resample holds every class
    result = bootstrap_auc(y, p)
    assert result.draws == draws and result.excluded == []
    assert np.isfinite(result.roc_auc.lower)


def test_resampled_aucs_equal_sklearn_on_the_drawn_records():
    y, p = predictions(records=40, classes=3)
    p = np.round(p, 1)  # ties, which both metrics must treat as sklearn does
    index, _ = bootstrap_indices(y, 5, seed=2)
    roc, pr = _macro_aucs(y, p, _multiplicity(index, len(y)))
    for b in range(5):
        yb, pb = y[index[b]], p[index[b]]
        assert roc[b] == pytest.approx(
            np.mean([roc_auc_score(yb[:, j], pb[:, j]) for j in range(3)])
        )
        assert pr[b] == pytest.approx(
            np.mean([average_precision_score(yb[:, j], pb[:, j]) for j in range(3)])
        )


def test_classes_without_positives_or_negatives_are_left_out_and_listed(caplog):
    y, p = predictions(classes=4)
    y[:, 1] = 0  # no positives in the test set
    y[:, 3] = 1  # no negatives
    with caplog.at_level(logging.WARNING):
        result = bootstrap_auc(y, p, ["A", "B", "C", "D"])
    assert result.classes == ["A", "C"] and result.excluded == ["B", "D"]
    assert "B, D" in caplog.text
    assert result.roc_auc.point == pytest.approx(
        np.mean([roc_auc_score(y[:, j], p[:, j]) for j in (0, 2)])
    )


def test_min_positives_leaves_out_rare_classes():
    y, _ = predictions(records=100, classes=3, rates=[0.5, 0.5, 0.0])
    y[:2, 2] = 1
    assert evaluable_classes(y).tolist() == [True, True, True]
    assert evaluable_classes(y, min_positives=3).tolist() == [True, True, False]


def test_retry_cap_fails_with_a_clear_error_instead_of_hanging():
    # five classes of one positive each: about 1% of the draws hold them all
    y = np.zeros((200, 5), dtype=int)
    y[np.arange(5), np.arange(5)] = 1
    p = np.random.default_rng(0).random(y.shape)
    with pytest.raises(EcgcnnError, match=r"after 50 draws \(the cap\).*A \(1\).*min_positives"):
        bootstrap_auc(y, p, list("ABCDE"), max_draws=50)


def test_no_evaluable_class_is_an_error():
    y = np.zeros((10, 2), dtype=int)
    with pytest.raises(EcgcnnError, match="nothing to bootstrap"):
        bootstrap_auc(y, np.zeros((10, 2)))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        (np.ones((10, 2)), np.zeros((10, 3)), "expected"),
        (np.full((10, 2), 2), np.zeros((10, 2)), "only 0 and 1"),
        (np.eye(10)[:, :2], np.full((10, 2), np.nan), "NaN"),
        (np.ones(10), np.zeros(10), "must be"),
    ],
)
def test_bad_inputs_are_user_errors(y, p, message):
    with pytest.raises(EcgcnnError, match=message):
        bootstrap_auc(y, p)


def test_bad_settings_are_user_errors():
    y, p = predictions()
    with pytest.raises(EcgcnnError, match="level"):
        bootstrap_auc(y, p, level=90)
    with pytest.raises(EcgcnnError, match="n_resamples"):
        bootstrap_auc(y, p, n_resamples=0)
    with pytest.raises(EcgcnnError, match="class names"):
        bootstrap_auc(y, p, classes=["A"])


def test_paired_interval_of_identical_predictions_is_zero():
    y, p = predictions()
    result = paired_bootstrap_auc(y, p, p.copy())
    for diff in (result.roc_auc_diff, result.pr_auc_diff):
        assert (diff.point, diff.mean, diff.lower, diff.upper) == (0.0, 0.0, 0.0, 0.0)
    assert result.a == result.b


def test_paired_interval_separates_a_better_model_from_noise():
    y, strong = predictions(signal=1.5, seed=0)
    _, weak = predictions(signal=0.5, seed=0)
    result = paired_bootstrap_auc(y, strong, weak)
    assert result.roc_auc_diff.lower > 0 and result.pr_auc_diff.lower > 0
    assert result.roc_auc_diff.point == pytest.approx(
        result.a.roc_auc.point - result.b.roc_auc.point
    )


def test_paired_uses_the_same_resamples_as_single_runs():
    y, strong = predictions(signal=1.5)
    _, weak = predictions(signal=0.5, seed=1)
    paired = paired_bootstrap_auc(y, strong, weak, seed=4)
    assert paired.a == bootstrap_auc(y, strong, seed=4)
    assert paired.b == bootstrap_auc(y, weak, seed=4)


def test_results_serialise_to_plain_dicts():
    y, p = predictions()
    d = paired_bootstrap_auc(y, p, p).to_dict()
    assert set(d) == {"a", "b", "roc_auc_diff", "pr_auc_diff"}
    assert set(d["a"]["roc_auc"]) == {"point", "mean", "lower", "upper"}


def test_indices_refuse_a_class_no_resample_can_hold():
    y = np.zeros((20, 2), dtype=int)
    y[:5, 0] = 1
    with pytest.raises(EcgcnnError, match="class\\(es\\) B have no positives"):
        bootstrap_indices(y, classes=["A", "B"])
