import numpy as np
import pytest

from ecgcnn.errors import EcgcnnError
from ecgcnn.splits import benchmark_split, cv_folds, cv_splits, patient_leaks, patients_overlap


def make_data(n_patients=60, seed=0):
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 4, n_patients)
    patient_ids = np.repeat(np.arange(n_patients) * 7 + 1000, per)
    y = (rng.random((len(patient_ids), 4)) < [0.5, 0.2, 0.1, 0.05]).astype(np.float32)
    return patient_ids, y


def test_no_patient_is_in_two_folds_and_every_record_is_placed():
    pids, y = make_data()
    folds = cv_folds(pids, y, k=5, seed=1)
    assert set(folds.tolist()) == set(range(5))
    for s in cv_splits(folds, 5):
        assert not patients_overlap(pids, s.train, s.val)
        assert len(s.train) + len(s.val) == len(pids)


def test_folds_are_deterministic_for_a_seed_and_change_with_it():
    pids, y = make_data()
    assert np.array_equal(cv_folds(pids, y, 5, seed=3), cv_folds(pids, y, 5, seed=3))
    assert not np.array_equal(cv_folds(pids, y, 5, seed=3), cv_folds(pids, y, 5, seed=4))


def test_folds_are_stratified_by_label():
    pids, y = make_data(n_patients=400)
    folds = cv_folds(pids, y, k=5, seed=0)
    for j in range(y.shape[1]):
        per_fold = np.array([y[folds == f, j].sum() for f in range(5)])
        assert per_fold.max() - per_fold.min() <= max(6, 0.35 * per_fold.mean()), per_fold


def test_a_task_of_one_class_is_stratified_too():
    """One label column (a binary task, or a root whose records all share one class): the
    stratifier wants two, so the column's complement is balanced with it."""
    pids, y = make_data(n_patients=200)
    one = y[:, :1]
    folds = cv_folds(pids, one, k=5, seed=0)
    assert set(folds.tolist()) == set(range(5))
    per_fold = np.array([one[folds == f, 0].sum() for f in range(5)])
    assert per_fold.max() - per_fold.min() <= max(6, 0.35 * per_fold.mean()), per_fold
    every = cv_folds(pids, np.ones((len(pids), 1), np.float32), k=5, seed=0)
    assert set(every.tolist()) == set(range(5))


def test_more_folds_than_patients_is_a_clear_error():
    pids, y = make_data(n_patients=3)
    with pytest.raises(EcgcnnError, match="larger than the number of patients"):
        cv_folds(pids, y, k=5)
    with pytest.raises(EcgcnnError, match="at least 2"):
        cv_folds(pids, y, k=1)


def test_benchmark_split_by_strat_fold():
    strat = np.array([1, 2, 3, 8, 9, 10, 10, 9])
    s = benchmark_split(strat, list(range(1, 9)), 9, 10)
    assert (
        s.train.tolist() == [0, 1, 2, 3] and s.val.tolist() == [4, 7] and s.test.tolist() == [5, 6]
    )
    with pytest.raises(
        EcgcnnError, match="test strat_fold.*hold no records.*--val-fold 8 --test-fold 9"
    ):
        benchmark_split(np.array([1, 2, 9]), [1], 9, 10)
    # fold 9 relabelled 10: advice to pass fold 9 as the test fold would fail again
    with pytest.raises(
        EcgcnnError, match=r"validation strat_fold\(s\) \[9\] hold no records"
    ) as info:
        benchmark_split(np.array([1, 2, 8, 10]), [1, 2], 9, 10)
    assert "--test-fold 9" not in str(info.value) and "choose the folds among those" in str(
        info.value
    )
    with pytest.raises(EcgcnnError, match="must not overlap"):
        benchmark_split(strat, [1, 9], 9, 10)


def test_patients_across_the_split_s_parts_are_found():
    """PTB-XL's strat_folds keep a patient's records in one fold; a user's own folds may not."""
    pids = np.array([1, 1, 2, 3, 3, 4, 5, 5])
    strat = np.array([1, 9, 1, 2, 10, 9, 10, 10])
    split = benchmark_split(strat, [1, 2], 9, 10)
    leaks = patient_leaks(pids, split)
    assert leaks == {"validation and training": {1}, "test and training/validation": {3}}
    tidy = benchmark_split(np.array([1, 1, 1, 2, 2, 9, 10, 10]), [1, 2], 9, 10)
    assert patient_leaks(pids, tidy) == {}
